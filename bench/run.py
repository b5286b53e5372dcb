"""The benchmark harness: every figure of bench/README.md in one run, side by side, with the machine.

    python bench/run.py            # full (make bench): results in bench/results/latest.{md,json}
    python bench/run.py --quick    # under 5 minutes (make bench-quick): bench/results/quick.{md,json}
    python bench/run.py --only overhead,scale   # some figures (written to bench/results/partial.*)

Each figure runs in its own Python process under ``/usr/bin/time -v`` (its log in
bench/results/logs/); its measurements and the comparison it is a ratio of come from that same run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "include"), str(Path(__file__).resolve().parents[1])]

from bench import figures as docs  # noqa: E402
from bench.common import ENV, PYTHON, RESULTS, ROOT, Figure, fmt, machine, run_timed, write_json  # noqa: E402
from bench.figures import ORDER  # noqa: E402

BENCH = ROOT / "bench"


def _script_json(script: str, extra: tuple[str, ...] = ()):
    def argv(quick: bool, out: Path) -> list[str]:
        return [PYTHON, str(BENCH / script), "--json", str(out), *(("--quick",) if quick else ()), *extra]

    return argv


def _validation_argv(quick: bool, out: Path) -> list[str]:
    return [PYTHON, str(BENCH / "bench_validation.py")]


def _drift_argv(quick: bool, out: Path) -> list[str]:
    return [PYTHON, str(BENCH / "bench_drift.py")]


RUNNERS = {
    "parse": _script_json("bench_parse.py"),
    "overhead": _script_json("bench_overhead.py"),
    "scale": _script_json("bench_scale.py"),
    "validation": _validation_argv,
    "drift": _drift_argv,
    "backfill": _script_json("backfill_concurrency.py"),
}


def _env(name: str, quick: bool) -> dict:
    env = dict(ENV)
    if quick:
        env["BENCH_QUICK"] = "1"
        if name == "validation":
            env.setdefault("BENCH_VALIDATION_REPEATS", "2")
        if name == "drift":
            env.setdefault("BENCH_DRIFT_CASES", "abrupt")
    else:
        env.pop("BENCH_QUICK", None)
    return env


# --- the figures of the two scripts that write their own JSON -----------------------------------


def validation_figures(data: dict) -> list[dict]:
    med, cpu = data["median_seconds"], data["median_cpu_seconds"]
    ratio = data["ratio_gx_over_pandas"]["checks"]
    same = all(a["same"] for a in data["agreement"].values())
    figure = Figure(
        "validation", f"Validation: GX / plain pandas, same {data['expectations']} checks, {data['rows']:,} rows",
        ratio, "x",
        f"GX {med['gx_frame']:.2f} s vs pandas {med['pandas_frame']:.2f} s (median of {data['repeats']}, wall); "
        f"CPU {data['ratio_gx_over_pandas_cpu']['checks']}x; gate as the DAG runs it (read + GX + Data Docs) "
        f"{data['ratio_gx_over_pandas']['gate_with_docs']}x; failing partition {data['ratio_gx_over_pandas']['failing_checks']}x; "
        f"decisions {'identical' if same else 'DIFFER'}; GX import {min(data['gx_import_seconds']):.1f} s (not in the ratio)",
        "<= 5", "<=", 5.0, details={"median_seconds": med, "median_cpu_seconds": cpu,
                                     "ratios": data["ratio_gx_over_pandas"], "agreement": data["agreement"]})
    if not same:
        figure.passed = False
    figures = [figure.to_dict()]
    window = data.get("window")
    if window:
        w_med = window["median_seconds"]
        w_figure = Figure(
            "validation_window", f"Validation of a first run's window: the validate step / plain pandas, "
            f"{window['days']} partitions, {window['rows']:,} rows", window["ratio_step_over_pandas"], "x",
            f"step {w_med['gx_window_step']:.2f} s (read + GX + reports + Data Docs) vs pandas "
            f"{w_med['pandas_window']:.2f} s (read + checks, partition by partition); CPU "
            f"{window['ratio_step_over_pandas_cpu']}x; one GX run per partition {w_med['gx_window_one_by_one']:.2f} s "
            f"({window['ratio_one_by_one_over_pandas']}x); per-day verdicts on a broken window "
            f"{'identical' if window['agreement']['same'] else 'DIFFER'}",
            "<= 5", "<=", 5.0, details={"median_seconds": w_med, "median_cpu_seconds": window["median_cpu_seconds"],
                                         "agreement": window["agreement"]})
        if not window["agreement"]["same"]:
            w_figure.passed = False
        figures.append(w_figure.to_dict())
    return figures


def drift_figures(data: dict) -> list[dict]:
    cases = data["cases"]
    worst = min(cases, key=lambda c: c["speedup_check"]["wall"])
    agree = all(c["agree"] == c["columns"] for c in cases)
    per_case = ", ".join(f"{c['case']} {c['speedup_check']['wall']:.0f}x" for c in cases)
    s = worst["seconds"]
    figure = Figure(
        "drift", f"Drift: full Evidently / ours per check, {data['rows']:,} vs {data['rows']:,} rows x 20 columns "
        f"(slowest case: {worst['case']})", worst["speedup_check"]["wall"], "x",
        f"full Evidently {s['full_evidently']['wall']:.1f} s vs ours {s['ours_check']['wall']:.2f} s; "
        f"with the once-per-champion profile {worst['speedup_check_with_profile']['wall']:.0f}x; per case: {per_case}; "
        f"column decisions identical in {sum(c['agree'] for c in cases)}/{sum(c['columns'] for c in cases)}",
        ">= 10", ">=", 10.0,
        details={c["case"]: {"seconds": c["seconds"], "speedup": c["speedup_check"], "agree": c["agree"],
                             "columns": c["columns"], "max_abs_score_diff": c["max_abs_score_diff"]} for c in cases})
    if not agree:
        figure.passed = False
    return [figure.to_dict()]


def collect(name: str, quick: bool, work: Path) -> tuple[list[dict], dict, dict]:
    out = work / f"{name}.json"
    logs = RESULTS / "logs"
    started = time.perf_counter()
    done, t = run_timed(RUNNERS[name](quick, out), env=_env(name, quick), cwd=ROOT, log=logs / f"{name}.log")
    run = {"returncode": done.returncode, "wall_s": round(t.wall, 1), "cpu_s": round(t.cpu, 1),
           "peak_rss_mb": round(t.peak_rss_mb or 0, 1), "log": str((logs / f"{name}.log").relative_to(ROOT))}
    data: dict = {}
    figures: list[dict] = []
    try:
        if name == "validation":
            data = json.loads((RESULTS / "validation.json").read_text())
            figures = validation_figures(data)
        elif name == "drift":
            data = json.loads((RESULTS / "drift.json").read_text())
            figures = drift_figures(data)
        else:
            data = json.loads(out.read_text())
            figures = data.pop("figures")
    except (OSError, ValueError, KeyError) as exc:
        figures = [Figure(name, name, None, "", f"no result ({type(exc).__name__}: {exc}); see {run['log']}",
                          "", "", None, passed=False).to_dict()]
    if done.returncode != 0:
        for f in figures:
            f["passed"] = False
            f["comparison"] += f" [the benchmark exited {done.returncode}: see {run['log']}]"
    print(f"== {name}: {time.perf_counter() - started:.0f} s, exit {done.returncode}", flush=True)
    for f in figures:
        print(f"   {f['name']}: {fmt(f['value'])} {f['unit']} (target {f['target']}: "
              f"{'pass' if f['passed'] else 'MISS'})", flush=True)
    return figures, data, run


# --- the report ----------------------------------------------------------------------------------


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(result: dict) -> str:
    m = result["machine"]
    pk = m["packages"]
    lines = [
        f"# Retrainer benchmarks ({result['mode']})",
        "",
        f"{result['finished']} · the figures' processes {docs.processes_minutes(result):.1f} min"
        + (f" (this update {result['duration_s'] / 60:.1f} min)" if m.get("first_run") else "")
        + f" · `{result['command']}`",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}, {m['platform']}; "
        f"load average at start {m['loadavg'][0]}, at end {result['loadavg_end'][0]} (shared machine). "
        f"Commit `{m['git']['commit'][:12]}`{' (dirty tree)' if m['git']['dirty'] else ''} on `{m['git']['branch']}`"
        + ("; figures re-measured with `--update-latest`: "
           + ", ".join(f"{k} at `{v.get('commit', m['git']['commit'])[:12]}`"
                       for k, v in result["runs"].items() if v.get("remeasured"))
           + f"; the others at `{m['first_run']['git']['commit'][:12]}`"
           + (f" on another machine of this kind ({m['first_run']['cpu']})" if m["first_run"].get("cpu") != m["cpu"] else "")
           if m.get("first_run") else "") + ".",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in pk.items() if v),
        "",
        *(["Quick mode: small sizes, to check that everything runs. The targets are set for the full sizes; where "
            "fixed costs dominate at small sizes (validation, drift, memory per input) a quick-mode miss says little. "
            "Run `make bench` for the figures.", ""] if result["mode"].startswith("quick") else []),
        "| # | Figure | Value | Measured in the same run | Target | Result |",
        "|---|---|---|---|---|---|",
    ]
    for i, f in enumerate(result["figures"], 1):
        value = "n/a" if f["value"] is None else f"{fmt(f['value'])}{'x' if f['unit'] == 'x' else ' ' + f['unit']}"
        verdict = {True: "pass", False: "**miss**", None: "reported"}[f["passed"]]
        lines.append(f"| {i} | {_cell(f['name'])} | {value} | {_cell(f['comparison'])} | {_cell(f['target'])} | {verdict} |")
    lines += ["", "Each figure's process: " + ", ".join(
        f"{k} {v['wall_s']:.0f} s (peak {v['peak_rss_mb']:.0f} MB{', exit ' + str(v['returncode']) if v['returncode'] else ''})"
        for k, v in result["runs"].items()), ""]
    lines += _details(result["data"])
    return "\n".join(lines) + "\n"


def _details(data: dict) -> list[str]:
    lines: list[str] = []
    overhead = data.get("overhead", {}).get("results")
    if overhead:
        rows = next(iter(overhead.values()))["rows_in_window"]
        lines += [f"## 1. Orchestration overhead ({rows:,} rows; per task, seconds)", "",
                  *docs.overhead_table(overhead), ""]
    parse = next((f for f in data.get("_figures", []) if f["id"] == "parse"), None)
    if parse:
        d = parse["details"]
        lines += ["## 2. DAG parse time per file (s, median)", "",
                  "| file | parser loaded | bare (airflow.sdk only) | `airflow dags report` |", "|---|---|---|---|"]
        for name, f in d["per_file"].items():
            lines.append(f"| {name} | {f['median_s']:.3f} | {d['bare_per_file'][name]['median_s']:.3f} | "
                         f"{d['dags_report_s'].get(name, float('nan')):.3f} |")
        lines.append("")
    scale = data.get("scale")
    if scale and scale.get("curve"):
        curve = scale["curve"]
        lines += ["## 3. Scale: per step (imports excluded), wall s / peak MB above the process baseline / input MB "
                  "(as pandas reads it; as Arrow bytes)", "",
                  "`train` stops boosting early as users run it; `train_fixed` is the same model at a fixed `max_iter` "
                  "(boosting iterations in brackets); the pipeline is the six steps of a run, without `train_fixed`.", ""]
        lines.append("| step | " + " | ".join(f"{p['rows']:,} rows" for p in curve) + " | growth per 10x, CPU / wall |")
        lines.append("|---|" + "---|" * len(curve) + "---|")
        for step in curve[0]["steps"]:
            cells = []
            for p in curve:
                s = p["steps"][step]
                iterations = f" [{s['iterations']} it.]" if s.get("iterations") else ""
                arrow = f"; {fmt(s['input_arrow_mb'], 0)}" if s.get("input_arrow_mb") is not None else ""
                cells.append(f"{fmt(s['wall_s'])} s ({fmt(s['cpu_s'])} CPU){iterations} / +{fmt(s['step_extra_mb'], 0)} MB / "
                             f"{fmt(s['input_mb'], 0)}{arrow} MB")
            growth = ", ".join(f"{fmt(g.get('per_10x_cpu'))} / {fmt(g['per_10x'])}" for g in scale["growth"][step])
            lines.append(f"| {step} | " + " | ".join(cells) + f" | {growth} |")
        total = [sum(s["wall_s"] for name, s in p["steps"].items() if name != "train_fixed") for p in curve]
        lines.append("| pipeline | " + " | ".join(f"{fmt(t)} s" for t in total) + " | "
                     + ", ".join(f"{fmt(g.get('per_10x_cpu'))} / {fmt(g['per_10x'])}" for g in scale["growth"]["pipeline"]) + " |")
        lines.append("")
        if not any(p.get("one_process") for p in curve):
            lines.append("Whole step process peak RSS (imports included), MB: " + "; ".join(
                f"{p['rows']:,}: " + ", ".join(f"{k} {v['process_peak_rss_mb']:.0f}" for k, v in p["steps"].items())
                for p in curve))
        else:
            lines.append("Quick mode: the steps of a size ran in one process (imports paid once); each step's "
                         "peak memory is measured above what the process held when it started.")
        lines.append("")
        cold = scale.get("cold_imports")
        if cold:
            lines += [f"Imports per step, {curve[0]['rows']:,} rows: the same step in a fresh process without preloading "
                      "(what each task pays on a plain LocalExecutor):", "",
                      "| step | cold s | preloaded s | import cost s | heavy packages it imports |", "|---|---|---|---|---|"]
            for step, c in cold.items():
                lines.append(f"| {step} | {fmt(c['cold_s'])} | {fmt(c['warm_s'])} | {fmt(c['import_penalty_s'])} | "
                             f"{', '.join(c['imports'])} |")
            lines.append("")
    drift = data.get("drift")
    if drift and drift.get("cases"):
        lines += ["## 5. Drift per case (wall s)", "", "| case | full Evidently | ours per check | speed-up | "
                  "per-champion profile | columns agreeing |", "|---|---|---|---|---|---|"]
        for c in drift["cases"]:
            s = c["seconds"]
            lines.append(f"| {c['case']} | {s['full_evidently']['wall']:.1f} | {s['ours_check']['wall']:.2f} | "
                         f"{c['speedup_check']['wall']:.0f}x | {s['ours_reference_profile']['wall']:.2f} | "
                         f"{c['agree']}/{c['columns']} |")
        lines.append("")
    backfill = next((f for f in data.get("_figures", []) if f["id"] == "backfill"), None)
    if backfill and backfill.get("details", {}).get("runs"):
        lines += ["## 6. Backfill per measurement, in order (s)", "",
                  "| max-active-runs | created -> last run end | first start -> last end | to the completed mark | "
                  "two or more tasks running | tasks queued (sum) | load avg |", "|---|---|---|---|---|---|---|"]
        for r in backfill["details"]["runs"]:
            tasks = r.get("tasks", {})
            lines.append(f"| {r['max_active_runs']} | {fmt(r.get('created_to_last_end_s'), 1)} | "
                         f"{fmt(r['first_start_to_last_end_s'], 1)} | {fmt(r['wall_s'], 1)} | "
                         f"{fmt(tasks.get('two_or_more_running_s'), 1)} | {fmt(tasks.get('queued_s'), 1)} | "
                         f"{r['load_before']} -> {r['load_after']} |")
        lines.append("")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under 5 minutes")
    parser.add_argument("--only", default=None, help=f"comma list of {','.join(ORDER)}")
    parser.add_argument("--skip", default="", help="comma list of figures to leave out")
    parser.add_argument("--render", action="store_true",
                        help="measure nothing: write latest.md and the bench blocks of README.md and "
                             "bench/README.md again from the committed latest.json")
    parser.add_argument("--update-latest", action="store_true",
                        help="with --only: measure these figures again and replace them in latest.md/json")
    args = parser.parse_args()
    if args.render:
        result = json.loads((RESULTS / "latest.json").read_text())
        (RESULTS / "latest.md").write_text(markdown({**result, "data": {**result["data"], "_figures": result["figures"]}}))
        changed = docs.render_documents(ROOT, result)
        print(f"written bench/results/latest.md from latest.json; blocks rewritten in: {', '.join(changed) or 'none'}")
        return 0
    names = [n for n in (args.only.split(",") if args.only else ORDER) if n not in args.skip.split(",")]
    unknown = set(names) - set(ORDER)
    if unknown:
        parser.error(f"unknown figures {sorted(unknown)}; choose from {ORDER}")
    if args.quick and not args.only and "backfill" in names:
        names.remove("backfill")  # two stacks and 14 runs do not fit in 5 minutes
    if args.update_latest:
        if not args.only or args.quick:
            parser.error("--update-latest needs --only and a full-size run")
        refusal = docs.update_refusal(ROOT, json.loads((RESULTS / "latest.json").read_text()), names)
        if refusal:  # before measuring: a refused update must not cost the hour it would take
            print(refusal, file=sys.stderr)
            return 2
    mode = "quick" if args.quick else "full"
    stem = "latest" if mode == "full" and not args.only and not args.skip else (
        "quick" if mode == "quick" and not args.only else "partial")
    started, t0 = datetime.now(UTC), time.perf_counter()
    info = machine()
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = RESULTS / "raw"
    work.mkdir(exist_ok=True)
    figures, data, runs = [], {}, {}
    for name in names:
        f, d, r = collect(name, args.quick, work)
        figures += f
        data[name] = d
        runs[name] = r
    data["_figures"] = figures
    command = "python bench/run.py" + (" --quick" if args.quick else "") + (f" --only {args.only}" if args.only else "")
    result = {
        "mode": mode + (" (partial)" if stem == "partial" else ""),
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - t0, 1),
        "command": command,
        "machine": info,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "figures": figures,
        "runs": runs,
        "not_run": [n for n in ORDER if n not in names],
        "data": {k: v for k, v in data.items() if k != "_figures"},
    }
    broken = sorted(k for k, r in runs.items() if r["returncode"] != 0)
    if args.update_latest and broken:
        # A broken re-measurement must not replace good figures: the run goes to partial.md instead.
        print(f"\nnot updating latest: {', '.join(broken)} exited non-zero (see bench/results/logs/)")
        args.update_latest, stem = False, "partial"
    if args.update_latest:
        previous = json.loads((RESULTS / "latest.json").read_text())
        redone = {f["id"] for f in figures}
        result["figures"] = [f for f in previous["figures"] if f["id"] not in redone] + figures
        result["figures"].sort(key=lambda f: [i for i, n in enumerate(ORDER) if f["id"].startswith(n)] or [99])
        commit = result["machine"]["git"]["commit"]
        result["runs"] = {**previous["runs"],
                          **{k: {**v, "remeasured": result["finished"], "commit": commit} for k, v in runs.items()}}
        result["data"] = {**previous["data"], **result["data"]}
        result["not_run"] = [n for n in ORDER if n not in result["runs"]]
        result["mode"], result["started"] = "full", previous["started"]
        # The full run the other figures come from, also after several updates.
        result["machine"]["first_run"] = previous["machine"].get("first_run", previous["machine"])
        result["command"] = previous["command"] + f"; then {command} --update-latest"
        data = {**previous["data"], **data, "_figures": result["figures"]}
        stem = "latest"
    write_json(RESULTS / f"{stem}.json", result)
    text = markdown({**result, "data": data})
    tmp = RESULTS / f".{stem}.md.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, RESULTS / f"{stem}.md")
    print(f"\nwritten bench/results/{stem}.md and {stem}.json ({result['duration_s'] / 60:.1f} min)")
    if stem == "latest":
        print(f"bench blocks rewritten in: {', '.join(docs.render_documents(ROOT, result)) or 'none'}")
    if mode == "quick":
        # Small sizes are dominated by fixed costs: a quick-mode miss is a hint, not a failed target.
        return 0
    return 0 if all(f["passed"] is not False for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
