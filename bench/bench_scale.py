"""Figure 3, scale: the training pipeline at 100k, 1M, 5M and 20M rows in the window, step by step.

    python bench/bench_scale.py --json out.json [--quick] [--sizes 100000,1000000] [--profile train]

Per size: a fresh project (params.yaml defaults: 28-day window, 3 holdout days), its SQL source
seeded by ``retrainer.datagen`` (seed 42) with the size spread over the window. Then the six steps of
``retrainer.pipeline``, each step at every size back to back (so the two sizes of a growth ratio are
measured minutes apart), each in its own Python process (``python bench/bench_scale.py step ...``,
under ``/usr/bin/time -v``; quick mode runs the six steps of a size in one process, which pays the
imports once). Inside that process the libraries are imported first (``retrainer_airflow.preload``, as the
preloading executor does), then the peak resident size is reset (Linux ``clear_refs``) and the
step runs: its wall and CPU time and its own peak memory above the process's baseline exclude the
imports. The step's input is then loaded to measure its in-memory size (pandas, deep):

* ingest: the largest one-day partition (it works one day at a time); validate: the largest group of
  partitions it validates at once (``retrainer.validate.window.stack_groups``);
* prepare: every partition of the window; train: train + holdout sets; evaluate: the holdout set;
* register: reads no table (reported, no ratio).

That size is pandas' default reading of the table (text as Python objects), the yardstick the
figure has always used; the same ratio over the table's Arrow bytes (text as UTF-8, what Parquet
readers hold) is reported beside it and is the stricter of the two.

``train`` runs the project's model as users run it (boosting stops early on a validation split), and
``train_fixed`` the same model at a fixed ``max_iter`` (early stopping off), which separates the cost per
row from the number of iterations a bigger window needs.

At the smallest size the steps also run "cold" (no preloading, on a second copy of the project):
the difference is what each task process pays for imports under a plain LocalExecutor, and the
heavy packages each step imports are listed.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "include"), str(Path(__file__).resolve().parents[1])]

from bench.common import (  # noqa: E402
    PYTHON,
    Figure,
    fmt,
    frame_mb,
    growth_per_10x,
    peak_rss_kb,
    reset_peak_rss,
    run_timed,
    write_json,
)

STEPS = ("ingest", "validate", "prepare", "train", "train_fixed", "evaluate", "register")
# The steps of a training run (train_fixed is train again with early stopping off, for comparison).
PIPELINE_STEPS = tuple(s for s in STEPS if s != "train_fixed")
WINDOW_DAYS = 28
PROJECT = {"prepare": {"window_days": WINDOW_DAYS, "holdout_days": 3, "min_train_rows": 500}}
# train_fixed: params.yaml's max_iter at every size. With early stopping (the default, the train step)
# bigger windows may train longer, which multiplies train's time by the iteration ratio.
FIXED_ITERATIONS = {"early_stopping": False}
FULL_SIZES = (100_000, 1_000_000, 5_000_000, 20_000_000)
QUICK_SIZES = (20_000, 100_000)
TIME_TARGET = 11.0
MEMORY_TARGET = 2.5
HEAVY = ("pandas", "numpy", "pyarrow", "sqlalchemy", "sklearn", "scipy", "mlflow", "great_expectations",
         "evidently", "dvc", "matplotlib", "skops")


# --- one step in this process ----------------------------------------------------------------


def _run_step(step: str, params, state: dict) -> dict:
    from datetime import date

    from retrainer import pipeline
    from tests.conftest import AS_OF

    as_of: date = AS_OF
    context = {"dag_id": "bench-scale"}
    if step == "ingest":
        return pipeline.step_ingest(params, as_of)
    if step == "validate":
        return pipeline.step_validate(params, as_of, state["ingest"])
    if step == "prepare":
        return pipeline.step_prepare(params, as_of)
    if step == "train":
        return pipeline.step_train(params, state["prepare"], context)
    if step == "train_fixed":
        from retrainer.lineage import run_key

        fixed = fixed_iterations(params)
        prepared = state["prepare"]
        key = run_key(context["dag_id"], prepared["as_of"], prepared["data_hash"], fixed)
        return pipeline.step_train(fixed, {**prepared, "run_key": key}, context)
    if step == "evaluate":
        return pipeline.step_evaluate(params, state["prepare"], state["train"])
    if step == "register":
        return pipeline.step_register(params, state["train"], state["evaluate"], {"run_type": "bench", **context})
    raise ValueError(step)


def fixed_iterations(params):
    """``params`` with boosting at a fixed ``max_iter`` (early stopping off)."""
    model = params.model
    return params.model_copy(update={"model": model.model_copy(
        update={"hyperparameters": {**model.hyperparameters, **FIXED_ITERATIONS}})})


def _input_tables(step: str, params, state: dict, output: dict) -> tuple[list[list[str]], str]:
    """The tables ``step`` holds at once, as groups of files (the largest group counts), and what they are."""
    if step == "ingest":
        return [[p["path"]] for p in output["new_partitions"] if p.get("path")], "largest one-day partition"
    if step == "validate":
        import pyarrow.parquet as pq

        from retrainer.validate.window import CHUNK_ROWS, stack_groups

        parts = [p for p in state["ingest"]["new_partitions"] if p.get("path")]
        rows = [pq.ParquetFile(p["path"]).metadata.num_rows for p in parts]
        groups = stack_groups(rows, [p["day"] for p in parts], CHUNK_ROWS, {state["ingest"]["as_of"]})
        return [[parts[i]["path"] for i in group] for group in groups], "largest group of partitions validated at once"
    if step == "prepare":
        manifest = json.loads(Path(output["manifest_path"]).read_text())
        return [[str(params.path(part["path"])) for part in manifest["partitions"]]], "all partitions of the window"
    if step in ("train", "train_fixed"):
        prepared = state["prepare"]
        return [[prepared["train_path"], prepared["holdout_path"]]], "train + holdout sets"
    if step == "evaluate":
        return [[state["prepare"]["holdout_path"]]], "holdout set"
    return [], "no table"


def _input_mb(step: str, params, state: dict, output: dict) -> tuple[float | None, float | None, str]:
    """The in-memory size of the largest group of tables ``step`` holds at once: as pandas reads it by
    default (text as Python objects), and as Arrow bytes; and what the tables are."""
    import pyarrow.parquet as pq

    groups, what = _input_tables(step, params, state, output)
    if not groups:
        return None, None, what
    sizes: dict[str, tuple[float, float]] = {}
    for path in {path for group in groups for path in group}:
        table = pq.read_table(path)
        # pandas' default read of the same file (text as Python objects), as pd.read_parquet gives it.
        sizes[path] = frame_mb(table.to_pandas()), table.nbytes / 2**20
        del table
    pandas_mb = max(sum(sizes[path][0] for path in group) for group in groups)
    arrow_mb = max(sum(sizes[path][1] for path in group) for group in groups)
    return pandas_mb, arrow_mb, what


def step_main(args: argparse.Namespace) -> int:
    """Run ``args.steps`` (comma list) one after the other in this process, each measured on its own."""
    from retrainer.config import load_params

    state = json.loads(args.state.read_text()) if args.state.exists() else {}
    before = {name.split(".")[0] for name in sys.modules}
    import_s = 0.0
    if not args.cold:
        from retrainer_airflow.preload import preload

        started = time.perf_counter()
        preload()
        import_s = time.perf_counter() - started
    params = load_params(args.params)
    for step in args.steps.split(","):
        result = _measure_step(step, params, state, args.profile)
        result |= {"preload_s": round(import_s, 2),
                   "heavy_imported_in_process": sorted(({m.split(".")[0] for m in sys.modules} - before) & set(HEAVY))}
        output = result.pop("output")
        (args.out_dir / f"bench-{step}.json").write_text(json.dumps(result, default=str))
        state[step] = output
        args.state.write_text(json.dumps(state, default=str))
    return 0


def _measure_step(step: str, params, state: dict, profile_path: Path | None) -> dict:
    # The peak resident size is reset to the current size first: the step's peak above it is its own,
    # also when an earlier step ran in this process (what it left allocated is in the baseline).
    baseline_kb = reset_peak_rss()
    modules_before = set(sys.modules)
    profiler = cProfile.Profile() if profile_path else None
    wall0, cpu0, usage0 = time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
    if profiler:
        profiler.enable()
    output = _run_step(step, params, state)
    if profiler:
        profiler.disable()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_kb = peak_rss_kb()
    imported = sorted({m.split(".")[0] for m in set(sys.modules) - modules_before} & set(HEAVY))
    input_mb, input_arrow_mb, input_what = _input_mb(step, params, state, output)
    iterations = visits = None
    if step in ("train", "train_fixed"):
        # Boosting stops early on a validation split: bigger windows may need more iterations.
        import mlflow.sklearn

        estimator = mlflow.sklearn.load_model(output["model_uri"]).steps[-1][1]
        iterations = int(getattr(estimator, "n_iter_", 0)) or None
        visits = _split_visits_per_row(estimator)
    result = {
        "step": step,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        # The kernel's share of the CPU time and the page faults: they tell memory management (first
        # touch of fresh pages, which follows what a step allocates) from the step's own work.
        "sys_s": round(usage.ru_stime - usage0.ru_stime, 3),
        "minor_faults": usage.ru_minflt - usage0.ru_minflt,
        "major_faults": usage.ru_majflt - usage0.ru_majflt,
        "baseline_rss_mb": round(baseline_kb / 1024, 1),
        "step_peak_rss_mb": round(peak_kb / 1024, 1),
        "step_extra_mb": round((peak_kb - baseline_kb) / 1024, 1),
        "input_mb": None if input_mb is None else round(input_mb, 1),
        "input_arrow_mb": None if input_arrow_mb is None else round(input_arrow_mb, 1),
        "input": input_what,
        "iterations": iterations,
        "split_visits_per_row": visits,
        "heavy_imported_during_step": imported,
        "output": output,
    }
    if profiler:
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats("cumulative").print_stats(35)
        profiler.dump_stats(str(profile_path))
        result["profile_top"] = buffer.getvalue()[-12000:]
    return result


def _split_visits_per_row(estimator) -> float | None:
    """How many split nodes a training row passes through, summed over the boosting trees.

    Fitting partitions each split node's rows, and predicting walks a row down its path, so the trees'
    work grows with rows x this. It is a property of the fitted model: with more rows the trees can
    afford to split bigger nodes deeper (see the growth per split visit in the figure).
    """
    predictors = getattr(estimator, "_predictors", None)
    if not predictors:
        return None
    rows = predictors[0][0].nodes[0]["count"]
    total = sum(int(tree.nodes["count"][tree.nodes["is_leaf"] == 0].sum()) for (tree,) in predictors)
    return round(total / rows, 2)


# --- the curve ---------------------------------------------------------------------------------


def seeded_project(rows: int, work: Path, kind: str) -> dict:
    """A fresh project with ``rows`` generated rows spread over its window."""
    from tests.conftest import AS_OF, seed, write_project

    project = work / f"{kind}-{rows}"
    params_file = write_project(project, PROJECT, git=True)
    started = time.perf_counter()
    seed(params_file, end=AS_OF, days=WINDOW_DAYS, rows_per_day=rows // WINDOW_DAYS)
    return {"rows": rows, "kind": kind, "project": project, "params": params_file,
            "seed_s": round(time.perf_counter() - started, 1)}


def run_steps(point: dict, group: list[str], work: Path, profile: str | None = None) -> dict:
    """Run ``group`` (steps, in order) on ``point``'s project in one process; return each step's measurements."""
    rows, kind, project = point["rows"], point["kind"], point["project"]
    argv = [PYTHON, __file__, "step", "--params", str(point["params"]), "--steps", ",".join(group),
            "--state", str(project / "bench-state.json"), "--out-dir", str(project)]
    if kind == "cold":
        argv.append("--cold")
    if profile in group:
        argv += ["--profile", str(work / f"profile-{profile}-{rows}.prof")]
    log = work / f"log-{kind}-{rows}-{'-'.join(group) if len(group) == 1 else 'all'}.txt"
    done, t = run_timed(argv, log=log, timeout=7200)
    if done.returncode != 0:
        raise RuntimeError(f"steps {group} at {rows:,} rows failed:\n{done.stderr[-4000:]}")
    steps = {}
    for step in group:
        result = json.loads((project / f"bench-{step}.json").read_text())
        if len(group) == 1:
            result["process_wall_s"] = round(t.wall, 2)
            result["process_peak_rss_mb"] = round(t.peak_rss_mb or 0, 1)
        if result["input_mb"]:
            result["extra_over_input"] = round(result["step_extra_mb"] / result["input_mb"], 2)
            result["extra_over_arrow_input"] = round(result["step_extra_mb"] / result["input_arrow_mb"], 2)
        steps[step] = result
        print(f"  {rows:>9,} {kind} {step:<9} {result['wall_s']:8.2f}s "
              f"extra {result['step_extra_mb']:8.1f} MB input {fmt(result['input_mb'])} MB", flush=True)
    return steps


def run_curve(sizes: list[int], work: Path, kind: str = "warm", profile: str | None = None,
              one_process: bool = False) -> list[dict]:
    """The six steps at every size. Full mode runs each step at every size back to back (ingest at
    100k, 1M, 5M, then validate at each...), so the sizes a growth ratio compares are measured minutes
    apart, not a quarter of an hour: a shared machine's speed drifts less in between. Quick mode runs
    the six steps of a size in one process, which pays the imports once instead of six times."""
    points = [seeded_project(rows, work, kind) for rows in sizes]
    for point in points:
        point["steps"] = {}
    if one_process:
        for point in points:
            point["steps"] = run_steps(point, list(STEPS), work, profile)
    else:
        for step in STEPS:
            for point in points:
                point["steps"] |= run_steps(point, [step], work, profile)
    return [{"rows": p["rows"], "rows_per_day": p["rows"] // WINDOW_DAYS, "seed_s": p["seed_s"], "steps": p["steps"],
             "one_process": one_process, "interleaved": not one_process and len(points) > 1} for p in points]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    step = sub.add_parser("step", help="(internal) run one step in this process and write its measurements")
    step.add_argument("--params", type=Path, required=True)
    step.add_argument("--steps", required=True, help=f"comma list of {','.join(STEPS)}")
    step.add_argument("--state", type=Path, required=True)
    step.add_argument("--out-dir", type=Path, required=True)
    step.add_argument("--cold", action="store_true")
    step.add_argument("--profile", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", default=None)
    parser.add_argument("--profile", default=None, help="profile this step (cProfile) at every size")
    parser.add_argument("--no-cold", action="store_true")
    args = parser.parse_args()
    if args.command == "step":
        return step_main(args)
    if args.json is None:
        parser.error("--json is required")
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(QUICK_SIZES if args.quick else FULL_SIZES)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        curve = run_curve(sizes, work, profile=args.profile, one_process=args.quick)
        cold = None if args.no_cold or args.quick else run_curve(sizes[:1], work, kind="cold")[0]
        profiles = {}
        for point in curve:
            for name, s in point["steps"].items():
                if "profile_top" in s:
                    profiles[f"{name}@{point['rows']}"] = s.pop("profile_top")
    # The measurements are kept before they are summarised: a summary bug must not cost the run.
    write_json(args.json.with_name(args.json.stem + "-curve.json"), {"curve": curve, "cold": cold})
    payload = summarise(curve, cold)
    payload["profiles"] = profiles
    write_json(args.json, payload)
    return 0


def summarise(curve: list[dict], cold: dict | None) -> dict:
    growth: dict[str, list[dict]] = {}
    for a, b in zip(curve, curve[1:], strict=False):
        for step in [*STEPS, "pipeline"]:
            point = {"from": a["rows"], "to": b["rows"]}
            for key in ("wall_s", "cpu_s"):
                if step == "pipeline":
                    ta, tb = (sum(p["steps"][s][key] for s in PIPELINE_STEPS) for p in (a, b))
                else:
                    ta, tb = a["steps"][step][key], b["steps"][step][key]
                point["per_10x" if key == "wall_s" else "per_10x_cpu"] = _round(growth_per_10x(a["rows"], ta, b["rows"], tb))
            # train's growth per unit of model work too: per boosting iteration, per split visit.
            for unit, name in (("iterations", "per_10x_cpu_per_iteration"),
                               ("split_visits_per_row", "per_10x_cpu_per_split_visit")):
                counts = [p["steps"][step].get(unit) for p in (a, b)] if step in ("train", "train_fixed") else []
                if counts and all(counts):
                    point[unit] = counts
                    point[name] = _round(growth_per_10x(a["rows"], a["steps"][step]["cpu_s"] / counts[0],
                                                        b["rows"], b["steps"][step]["cpu_s"] / counts[1]))
            growth.setdefault(step, []).append(point)
    figures = []
    if len(curve) > 1:
        # The headline: the worst step between the two largest sizes (fixed costs flatter small sizes), in
        # CPU seconds (the work the step does; other tenants of a shared machine move wall time), wall beside it.
        # The steps a training run has (train as users run it, early stopping on); train_fixed is beside it.
        last = {step: growth[step][-1]["per_10x_cpu"] for step in PIPELINE_STEPS}
        last_wall = {step: growth[step][-1]["per_10x"] for step in STEPS}
        worst = max(last, key=lambda s: last[s] or 0)
        a, b = curve[-2], curve[-1]
        per_iteration = ""
        for name, shown in (("train", "train"), ("train_fixed", "train at fixed max_iter (early stopping off)")):
            model_work = growth[name][-1]
            if name == "train_fixed":
                per_iteration += (f"; {shown}: {fmt(model_work['per_10x_cpu'])} / {fmt(last_wall[name])}")
            if "per_10x_cpu_per_iteration" in model_work:
                per_iteration += (f"; {name} per boosting iteration {fmt(model_work['per_10x_cpu_per_iteration'])}x "
                                  f"({model_work['iterations'][0]} -> {model_work['iterations'][1]} iterations)")
            if "per_10x_cpu_per_split_visit" in model_work:
                per_iteration += (f"; {name} per split visit {fmt(model_work['per_10x_cpu_per_split_visit'])}x (a "
                                  f"training row passes {fmt(model_work['split_visits_per_row'][0])} -> "
                                  f"{fmt(model_work['split_visits_per_row'][1])} split nodes over the trees)")
        figures.append(Figure(
            "scale_time", f"Scale: CPU time growth per 10x rows, worst step ({worst}), {a['rows']:,} -> {b['rows']:,}",
            last[worst], "x",
            f"{worst}: {fmt(a['steps'][worst]['cpu_s'])} -> {fmt(b['steps'][worst]['cpu_s'])} CPU s "
            f"({fmt(a['steps'][worst]['wall_s'])} -> {fmt(b['steps'][worst]['wall_s'])} s wall); whole pipeline "
            f"{fmt(growth['pipeline'][-1]['per_10x_cpu'])}x per 10x; every step, CPU / wall: "
            + ", ".join(f"{s} {fmt(v)} / {fmt(last_wall[s])}" for s, v in last.items()) + per_iteration,
            f"<= {TIME_TARGET:g}", "<=", TIME_TARGET).to_dict())
    top = curve[-1]
    ratios = {s: v["extra_over_input"] for s, v in top["steps"].items() if v.get("extra_over_input") is not None}
    arrow = {s: v.get("extra_over_arrow_input") for s, v in top["steps"].items() if s in ratios}
    if ratios:
        worst = max(ratios, key=ratios.get)
        step = top["steps"][worst]
        figures.append(Figure(
            "scale_memory", f"Scale: step peak memory / its input's in-memory size, worst step ({worst}), "
            f"{top['rows']:,} rows", ratios[worst], "x",
            f"{worst}: +{fmt(step['step_extra_mb'], 0)} MB over the process baseline for {fmt(step['input_mb'], 0)} MB of "
            f"input ({step['input']}); every step: " + ", ".join(f"{s} {fmt(v)}" for s, v in ratios.items())
            + "; over the input's Arrow bytes (text as UTF-8, stricter): "
            + ", ".join(f"{s} {fmt(v)}" for s, v in arrow.items()),
            f"<= {MEMORY_TARGET:g}", "<=", MEMORY_TARGET).to_dict())
    imports = None
    if cold:
        warm = curve[0]["steps"]
        imports = {s: {"cold_s": cold["steps"][s]["wall_s"], "warm_s": warm[s]["wall_s"],
                       "import_penalty_s": round(cold["steps"][s]["wall_s"] - warm[s]["wall_s"], 2),
                       "imports": cold["steps"][s]["heavy_imported_during_step"],
                       "still_imported_after_preload": warm[s]["heavy_imported_during_step"]}
                   for s in STEPS}
    return {"figures": figures, "curve": curve, "growth": growth, "cold_imports": imports}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


if __name__ == "__main__":
    sys.exit(main())
