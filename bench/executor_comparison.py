"""Wall time of one `training` run: LocalExecutor on SQLite (`make run`'s stack) vs CeleryExecutor on
Postgres + Redis with the MLflow server (`make up-distributed`), side by side on the same data.

    PYTHONPATH=include:. .venv/bin/python bench/executor_comparison.py [--api-port 8480 --mlflow-port 5480]

Each topology gets a fresh copy of the same seeded project (300 rows a day, 7-day window) and trains
once as of the same date; the run's time from trigger to end and its running time are printed as a
table. Needs Postgres and Redis on 127.0.0.1 (its databases are made and dropped here).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "include"), str(REPO)]

from retrainer.names import TRAINING_DAG  # noqa: E402
from retrainer_launcher import airflow_api, distributed, local, processes  # noqa: E402
from tests.conftest import AS_OF, seed, write_project  # noqa: E402

WINDOW = {"prepare": {"window_days": 7, "holdout_days": 2, "min_train_rows": 300}}


def one_run(stack, up) -> dict:
    t0 = time.monotonic()
    up(stack, seed=False, out=lambda _: None)
    started_in = time.monotonic() - t0
    run_id = local.cmd_trigger(stack, AS_OF.isoformat(), out=lambda _: None)
    run = local.cmd_wait(stack, run_id, 900, out=lambda _: None)
    tis = airflow_api.task_instances(stack.api, stack.token(), TRAINING_DAG, run_id)
    return {
        "state": run["state"],
        "start": started_in,
        "trigger_to_end": airflow_api.run_duration(run, "queued_at"),
        "running": airflow_api.run_duration(run),
        "tasks": {ti["task_id"]: ti.get("duration") or 0.0 for ti in tis},
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-port", type=int, default=8480)
    parser.add_argument("--mlflow-port", type=int, default=5480)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="retrainer-bench-") as tmp:
        root = Path(tmp)
        local_params = write_project(root / "local", WINDOW, git=True)
        seed(local_params, end=AS_OF, days=12, rows_per_day=300)
        local_stack = local.Stack(REPO, root / "local-home", args.api_port, args.mlflow_port)
        import os

        os.environ["RETRAINER_PARAMS"] = str(local_params)
        try:
            results["LocalExecutor / SQLite"] = one_run(local_stack, local.cmd_up)
        finally:
            processes.stop(local_stack.home, out=lambda _: None)
            del os.environ["RETRAINER_PARAMS"]

        dist_params = write_project(root / "distributed", WINDOW, git=True)
        seed(dist_params, end=AS_OF, days=12, rows_per_day=300)
        prefix = f"retrainer_bench_{secrets.token_hex(3)}"
        variables = {"AIRFLOW_DB": f"{prefix}_airflow", "MLFLOW_DB": f"{prefix}_mlflow",
                     "MLFLOW_AUTH_DB": f"{prefix}_mlflow_auth", "REDIS_DB": "6", "AIRFLOW_QUEUE": prefix,
                     "RETRAINER_DVC_REMOTE_URL": str(root / "dvc-remote")}
        dist = distributed.DistributedStack(REPO, root / "dist-home", args.api_port, args.mlflow_port,
                                            params_file=dist_params, variables=variables, use_dotenv=False,
                                            worker_log_ports=(8491, 8492), trigger_log_port=8493)
        try:
            results["CeleryExecutor / Postgres"] = one_run(dist, distributed.cmd_up_distributed)
        finally:
            processes.stop(dist.home, out=lambda _: None)
            import psycopg
            import redis

            with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
                for db in (variables["AIRFLOW_DB"], variables["MLFLOW_DB"], variables["MLFLOW_AUTH_DB"]):
                    conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            client = redis.Redis(db=6)
            for key in client.scan_iter(match=f"*{prefix}*"):
                client.delete(key)

    names = list(results)
    tasks = list(next(iter(results.values()))["tasks"])
    print(f"{'':<22}" + "".join(f"{n:>28}" for n in names))
    for label, key in (("state", "state"), ("stack start (s)", "start"), ("trigger to end (s)", "trigger_to_end"),
                       ("run time (s)", "running")):
        cells = [results[n][key] for n in names]
        print(f"{label:<22}" + "".join(f"{c:>28.1f}" if isinstance(c, float) else f"{c:>28}" for c in cells))
    for task in tasks:
        print(f"  {task:<20}" + "".join(f"{results[n]['tasks'].get(task, 0.0):>28.1f}" for n in names))
    return 0 if all(r["state"] == "success" for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
