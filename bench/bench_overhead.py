"""Figure 1, orchestration overhead: the `training` DAG through a real scheduler vs the same library
functions in one plain Python process, on the same 100k-row window, against a chain of six no-op tasks
in the same Airflow.

    python bench/bench_overhead.py --json out.json [--quick] [--executors preload,plain]

For each executor (``retrainer_airflow.executor.PreloadingLocalExecutor``, the project's default, and Airflow's
plain ``LocalExecutor`` for the before/after): a fresh project (params.yaml defaults: 28-day window,
3 holdout days; 100k generated rows in the window), a real stack (scheduler, dag-processor, triggerer,
api-server, SQLite; tests/integration/scheduler_stack.py) with the repo's DAGs plus
``bench/dags/noop_chain.py``. In order: the run the scheduler starts on unpausing ``training`` (a day
without data: it stops at ingest) is waited out, then no-op chain, ``training`` as of 2026-03-31,
no-op chain again; then, with the stack still up and idle, ``retrainer.pipeline.run_pipeline`` in a
fresh Python process on an identical copy of the project, importing exactly what run_pipeline
imports (no preloading; its wall time includes those imports, paid once; ``-X importtime`` tells
how much they were). Reported: (DAG run - plain process) / no-op chain run, each run from start to end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "include"), str(Path(__file__).resolve().parents[1])]

from bench.common import PYTHON, RESULTS, ROOT, Figure, fmt, run_timed, write_json  # noqa: E402
from retrainer.names import TRAINING_DAG  # noqa: E402
from retrainer_launcher.airflow_env import LOCAL_EXECUTOR  # noqa: E402

ROWS = 100_000
QUICK_ROWS = 30_000
WINDOW_DAYS = 28
PROJECT = {
    "prepare": {"window_days": WINDOW_DAYS, "holdout_days": 3, "min_train_rows": 500},
    "landing": {"settle_seconds": 1},
}
EXECUTORS = {"preload": LOCAL_EXECUTOR, "stock": "LocalExecutor"}
TARGET = 1.25


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(root_pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            except (OSError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def scheduler_pss_mb(home: Path) -> float:
    """Proportional set size of the scheduler and its executor workers (shared pages split fairly)."""
    from retrainer_launcher import processes

    pid = processes.running_pid(processes.pid_file(home, "scheduler"))
    return round(sum(_pss_kb(p) for p in _descendants(pid)) / 1024, 1) if pid else 0.0


def stack_cpu_seconds(home: Path) -> float:
    """CPU seconds used so far by every process of the stack (api-server, scheduler and its executor
    workers and task processes, dag-processor, triggerer): user + system, plus reaped children's."""
    from retrainer_launcher import processes

    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pidf in processes.run_dir(home).glob("*.pid"):
        pid = processes.running_pid(pidf)
        if pid is None:
            continue
        for p in _descendants(pid):
            try:
                stat = Path(f"/proc/{p}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / ticks


def _timed_run(running, dag_id: str, conf: dict | None = None, timeout: float = 1800) -> dict:
    from retrainer_launcher import airflow_api

    cpu_before = stack_cpu_seconds(running.home)
    run = airflow_api.trigger_run(running.api, running.token, dag_id, conf=conf)
    done = airflow_api.wait_for_run(running.api, running.token, dag_id, run["dag_run_id"], timeout=timeout, poll=1.0,
                                    out=lambda _m: None)
    tis = airflow_api.task_instances(running.api, running.token, dag_id, run["dag_run_id"])
    if done["state"] != "success":
        raise RuntimeError(f"{dag_id} run {run['dag_run_id']} ended {done['state']}:\n"
                           f"{running.failure_report(dag_id, [done])}")
    return {
        "state": done["state"],
        "seconds": airflow_api.run_duration(done),
        "cpu_seconds": round(stack_cpu_seconds(running.home) - cpu_before, 2),
        "trigger_to_end": airflow_api.run_duration(done, "queued_at"),
        "tasks": {ti["task_id"]: round(ti.get("duration") or 0.0, 2) for ti in tis},
    }


# Top-level packages the report lists for the plain process, so a reader sees what it imported (the
# drift check's Evidently must not be among them: run_pipeline never uses it).
HEAVY_PACKAGES = ("pandas", "pyarrow", "sklearn", "scipy", "matplotlib", "mlflow", "great_expectations", "dvc",
                  "evidently", "sqlalchemy", "skops")
# Exactly what run_pipeline imports: the pipeline module, whose steps import their libraries when they
# run (lazily, as in the DAG's tasks). Nothing is preloaded: retrainer_airflow.preload also loads the
# drift check (Evidently, retrainer.drift / monitor) and batch scoring, which run_pipeline never uses and
# which would flatter the DAG run against this baseline.
PLAIN_CODE = (
    "import json, sys; from datetime import date;"
    " from retrainer.config import load_params; from retrainer.pipeline import run_pipeline;"
    " out = run_pipeline(load_params(sys.argv[1]), date.fromisoformat(sys.argv[2]), {'dag_id': 'bench-plain'});"
    " heavy = sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[3].split(',')));"
    " print('BENCH', json.dumps({'heavy_packages': heavy}))"
)


def import_seconds(importtime_log: str) -> float:
    """Seconds a process spent importing, from its ``python -X importtime`` lines on stderr: the sum of
    the cumulative times of the imports not nested in another (an import a function makes when it runs,
    as the pipeline's steps do, is one of them)."""
    total_us = 0
    for line in importtime_log.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:"):].split("|", 2)
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue  # the header line
        name = parts[2]
        if len(name) - len(name.lstrip(" ")) <= 1:  # nesting is two spaces per level after "| "
            total_us += int(parts[1])
    return total_us / 1e6


def plain_run(params_file: Path, log: Path) -> dict:
    """``run_pipeline`` in a fresh interpreter: its wall and CPU time include every import it makes;
    ``-X importtime`` tells how much of it was imports (which the preloading scheduler pays once at start)."""
    from tests.conftest import AS_OF

    argv = [PYTHON, "-X", "importtime", "-c", PLAIN_CODE, str(params_file), AS_OF.isoformat(), ",".join(HEAVY_PACKAGES)]
    done, t = run_timed(argv, log=log, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"plain run failed, see {log}:\n{done.stderr[-3000:]}")
    out = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("BENCH "))[6:])
    import_s = import_seconds(done.stderr)
    return {"seconds": round(t.wall, 2), "cpu_seconds": round(t.cpu, 2), "peak_rss_mb": round(t.peak_rss_mb or 0, 1),
            "import_s": round(import_s, 2), "pipeline_s": round(t.wall - import_s, 2),
            "heavy_packages": out["heavy_packages"]}


def measure(executor_key: str, work: Path, rows: int = ROWS) -> dict:
    from retrainer_launcher import airflow_api
    from tests.conftest import AS_OF, seed, write_project
    from tests.integration.scheduler_stack import scheduler_stack

    dags = work / "dags"
    dags.mkdir(parents=True)
    for dag_file in (ROOT / "dags").glob("*.py"):
        shutil.copy2(dag_file, dags / dag_file.name)
    shutil.copy2(ROOT / "bench" / "dags" / "noop_chain.py", dags / "noop_chain.py")
    rows_per_day = rows // WINDOW_DAYS
    first = AS_OF - timedelta(days=WINDOW_DAYS - 1)

    # Two identical copies for the plain process, run before and after the DAG run (the machine is shared).
    plain_params = []
    for copy in ("plain-1", "plain-2")[: 1 if rows < ROWS else 2]:
        plain_params.append(write_project(work / copy, PROJECT))
        seed(plain_params[-1], end=AS_OF, days=WINDOW_DAYS, rows_per_day=rows_per_day)
    started = time.monotonic()
    with scheduler_stack(work / "dag", first, AS_OF, project=PROJECT, rows_per_day=rows_per_day,
                         dags_folder=dags, executor=EXECUTORS[executor_key]) as running:
        stack_start = time.monotonic() - started
        for dag_id in ("noop_chain", TRAINING_DAG):
            airflow_api.wait_for_dag(running.api, running.token, dag_id, timeout=300, out=lambda _m: None)
        idle_pss = scheduler_pss_mb(running.home)
        # Unpausing `training` makes the scheduler start the latest complete (real) day, which has no
        # rows in this source: wait it out so it does not overlap the measured runs.
        airflow_api.set_paused(running.api, running.token, "noop_chain", paused=False)
        airflow_api.set_paused(running.api, running.token, TRAINING_DAG, paused=False)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            runs = running.runs(TRAINING_DAG)
            if runs and all(r["state"] in airflow_api.TERMINAL_RUN_STATES for r in runs):
                break
            time.sleep(2)
        plain_1 = plain_run(plain_params[0], work / "plain-1.log")
        noop_1 = _timed_run(running, "noop_chain")
        dag = _timed_run(running, TRAINING_DAG, conf={"as_of": AS_OF.isoformat()})
        busy_pss = scheduler_pss_mb(running.home)
        noop_2 = _timed_run(running, "noop_chain")
        plain_2 = plain_run(plain_params[1], work / "plain-2.log") if len(plain_params) > 1 else plain_1
        load = os.getloadavg()[0]
        kept = RESULTS / "raw" / f"overhead-{executor_key}-logs"
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(running.home / "logs", kept, dirs_exist_ok=True)
        for log in work.glob("plain-*.log"):
            shutil.copy2(log, kept / log.name)
    noop = (noop_1["seconds"] + noop_2["seconds"]) / 2
    noop_cpu = (noop_1["cpu_seconds"] + noop_2["cpu_seconds"]) / 2
    plain = {key: round((plain_1[key] + plain_2[key]) / 2, 2)
             for key in ("seconds", "cpu_seconds", "peak_rss_mb", "import_s", "pipeline_s")}
    plain["runs"] = [plain_1, plain_2] if plain_2 is not plain_1 else [plain_1]
    plain["heavy_packages"] = plain_1["heavy_packages"]
    ratio = (dag["seconds"] - plain["seconds"]) / noop
    # Stricter: against the plain process without its imports (as if the libraries were already loaded).
    ratio_no_imports = (dag["seconds"] - (plain["seconds"] - plain["import_s"])) / noop
    ratio_cpu = (dag["cpu_seconds"] - plain["cpu_seconds"]) / noop_cpu
    return {
        "executor": EXECUTORS[executor_key],
        "rows_in_window": rows_per_day * WINDOW_DAYS,
        "stack_start_s": round(stack_start, 1),
        "noop_chain": [noop_1, noop_2],
        "noop_chain_s": round(noop, 2),
        "noop_chain_cpu_s": round(noop_cpu, 2),
        "dag": dag,
        "plain": plain,
        "ratio": round(ratio, 3),
        "ratio_cpu": round(ratio_cpu, 3),
        "ratio_without_plain_imports": round(ratio_no_imports, 3),
        "scheduler_pss_mb": {"idle": idle_pss, "after_training": busy_pss},
        "loadavg_end": round(load, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--executors", default=None, help="comma list of preload,stock (default: both; quick: preload)")
    args = parser.parse_args()
    keys = (args.executors or ("preload" if args.quick else "preload,stock")).split(",")
    results = {}
    for key in keys:
        with tempfile.TemporaryDirectory(prefix=f"bench-overhead-{key}-") as tmp:
            results[key] = measure(key, Path(tmp), QUICK_ROWS if args.quick else ROWS)
            r = results[key]
            print(f"{key}: DAG {r['dag']['seconds']:.1f}s, plain {r['plain']['seconds']:.1f}s, "
                  f"no-op chain {r['noop_chain_s']:.1f}s -> ratio {r['ratio']:.2f}", flush=True)
    figures = []
    main_key = keys[0]
    r = results[main_key]
    comparison = (f"{r['executor'].rsplit('.', 1)[-1]}: DAG run {fmt(r['dag']['seconds'], 1)} s, plain process "
                  f"{fmt(r['plain']['seconds'], 1)} s (mean of {len(r['plain']['runs'])}), no-op chain {fmt(r['noop_chain_s'], 1)} s (mean of 2); "
                  f"in CPU seconds {fmt(r['dag']['cpu_seconds'], 1)}, {fmt(r['plain']['cpu_seconds'], 1)}, "
                  f"{fmt(r['noop_chain_cpu_s'], 1)}: ratio {fmt(r['ratio_cpu'])}; the plain process imports what "
                  f"run_pipeline imports ({', '.join(r['plain'].get('heavy_packages', []))}); against it minus its "
                  f"{fmt(r['plain']['import_s'], 1)} s of imports (which the preloading scheduler pays once at start): "
                  f"{fmt(r['ratio_without_plain_imports'])}")
    if "stock" in results and main_key != "stock":
        b = results["stock"]
        comparison += (f"; before, plain LocalExecutor: DAG {fmt(b['dag']['seconds'], 1)} s, plain {fmt(b['plain']['seconds'], 1)} s, "
                       f"no-op {fmt(b['noop_chain_s'], 1)} s: ratio {fmt(b['ratio'])} (CPU {fmt(b['ratio_cpu'])})")
    figures.append(Figure("overhead", f"Orchestration overhead: (DAG - plain) / no-op chain, {r['rows_in_window']:,} rows",
                          r["ratio"], "x", comparison, f"<= {TARGET}", "<=", TARGET, details=results).to_dict())
    write_json(args.json, {"figures": figures, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
