"""A real Airflow stack for tests and benchmarks: scheduler, dag-processor, triggerer, api-server and
LocalExecutor in a temporary AIRFLOW_HOME, against a temporary project, driven through the CLI and
the REST API like a user would.

Ports: RETRAINER_IT_PORTS="api,worker-logs,trigger-logs" (e.g. "8180,8181,8182"), else free ones.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from retrainer.deployment import find_deployment
from retrainer.names import DVC_POOL, TRAINING_DAG
from retrainer_launcher import airflow_api, airflow_env, common, credentials, http_client, local, processes
from tests.conftest import REPO_ROOT, merge, seed, write_models_project, write_project

ROWS_PER_DAY = 300
STACK_START_TIMEOUT = 240
RUN_TIMEOUT = 300
BACKFILL_TIMEOUT = 600
BIN = Path(sys.executable).parent
# Small and fast: a 7-day window, 2 holdout days, 300 rows a day.
PROJECT = {
    "prepare": {"window_days": 7, "holdout_days": 2, "min_train_rows": 300},
    "model": {"hyperparameters": {"max_iter": 60}},
    # A low floor: the first model becomes champion; backfilled ones must leave it alone (as-of guard).
    "evaluation": {"absolute_floor": 0.5},
    "landing": {"settle_seconds": 1},
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ports() -> tuple[int, int, int]:
    given = os.environ.get("RETRAINER_IT_PORTS")
    if given:
        api, worker_logs, trigger_logs = (int(p) for p in given.split(","))
        return api, worker_logs, trigger_logs
    return _free_port(), _free_port(), _free_port()


class Stack:
    """The running stack and the user's tools: the Airflow CLI and the REST API."""

    def __init__(self, root: Path, home: Path, env: dict[str, str], port: int):
        self.root, self.home, self.env = root, home, env
        self.api = airflow_api.api_url(port)
        # The one params file's params, or (a models/ folder) each model's; params is then the first's.
        self.deployment = find_deployment(root, explicit=env["RETRAINER_PARAMS"])
        self.models = self.deployment.load_all()[0]
        self.params = next(iter(self.models.values()))
        self._token: str | None = None
        self._token_at = 0.0

    @property
    def token(self) -> str:
        if self._token is None or time.monotonic() - self._token_at > 600:
            self._token = airflow_api.api_token(self.api, credentials.ADMIN_USER, credentials.ensure_admin_password(self.home))
            self._token_at = time.monotonic()
        return self._token

    def rest(self, method: str, path: str, body=None):
        return http_client.http(method, f"{self.api}/api/v2/{path}", body, self.token)

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [str(BIN / "airflow"), *args],
            env={**os.environ, **self.env},
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    def runs(self, dag_id: str, **filters: str) -> list[dict]:
        query = "&".join(f"{k}={v}" for k, v in {"limit": "100", "order_by": "run_after", **filters}.items())
        return list(self.rest("GET", f"dags/{dag_id}/dagRuns?{query}")["dag_runs"])

    def failure_report(self, dag_id: str, runs: list[dict]) -> str:
        """The log tails of every failed task of the failed ``runs``, and the scheduler's last lines."""
        parts = []
        for run in runs:
            if run.get("state") == "success":
                continue
            parts.append(f"=== {dag_id} {run['dag_run_id']}: {run.get('state')}")
            try:
                for ti in airflow_api.failed_tasks(self.api, self.token, dag_id, run["dag_run_id"]):
                    if ti.get("state") == "failed":
                        parts.append(f"--- {ti['task_id']} (try {ti.get('try_number')}):")
                        parts.append(airflow_api.task_log_tail(self.api, self.token, dag_id, run["dag_run_id"], ti, 80))
            except common.StackError as exc:
                parts.append(f"(could not read task logs: {exc})")
        parts.append("=== scheduler log tail:\n" + processes.tail(processes.log_file(self.home, "scheduler"), 30))
        return "\n".join(parts)

    def wait_backfill(self, backfill_id: int, timeout: float = BACKFILL_TIMEOUT, dag_id: str = TRAINING_DAG) -> dict:
        """Wait until the scheduler marks the backfill completed (all its runs ended)."""
        deadline = time.monotonic() + timeout
        while not (backfill := self.rest("GET", f"backfills/{backfill_id}"))["completed_at"]:
            if time.monotonic() > deadline:
                runs = [r for r in self.runs(dag_id) if r["run_type"] == "backfill"]
                pytest.fail(f"backfill {backfill_id} not completed within {timeout:.0f}s:\n"
                            f"{self.failure_report(dag_id, runs)}")
            time.sleep(2)
        return backfill

    def wait_runs(self, dag_id: str, select, count: int, timeout: float, what: str) -> list[dict]:
        """Wait until ``count`` runs chosen by ``select`` have ended; fail with their task logs if one failed."""
        deadline = time.monotonic() + timeout
        while True:
            chosen = [r for r in self.runs(dag_id) if select(r)]
            ended = [r for r in chosen if r["state"] in airflow_api.TERMINAL_RUN_STATES]
            if any(r["state"] == "failed" for r in ended):
                pytest.fail(f"{what}: a run failed\n{self.failure_report(dag_id, ended)}")
            if len(ended) >= count:
                return chosen
            if time.monotonic() > deadline:
                states = {r["dag_run_id"]: r["state"] for r in chosen}
                pytest.fail(f"{what}: not done within {timeout:.0f}s: {states}\n{self.failure_report(dag_id, chosen)}")
            time.sleep(3)


@contextmanager
def scheduler_stack(
    root: Path,
    first_day: date,
    last_day: date,
    overrides: dict[str, Any] | None = None,
    *,
    rows_per_day: int = ROWS_PER_DAY,
    dags_folder: Path | None = None,
    executor: str = airflow_env.LOCAL_EXECUTOR,
    project: dict[str, Any] | None = None,
    models: dict[str, dict[str, Any]] | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """A project under ``root`` whose SQL source holds ``first_day``..``last_day``, and a running stack on it.

    ``project`` replaces the small test settings (:data:`PROJECT`) that ``overrides`` are laid over;
    benchmarks pass their own, and their own ``dags_folder``, ``rows_per_day`` and ``executor``.
    ``models`` (name -> overrides over those settings) makes it a models/ deployment of one file per
    model instead of one params.yaml, each model's source table seeded.
    ``extra_env`` goes to every Airflow process (e.g. ``AIRFLOW_CONN_*`` connections).
    """
    base = {**(PROJECT if project is None else project), **(overrides or {})}
    if models is None:
        params_file = write_project(root, base)
        seed(params_file, end=last_day, days=(last_day - first_day).days + 1, rows_per_day=rows_per_day)
    else:
        params_file = write_models_project(root, {name: merge(base, extra) for name, extra in models.items()})
        for params in find_deployment(root, explicit=params_file).load_all()[0].values():
            seed(params, end=last_day, days=(last_day - first_day).days + 1, rows_per_day=rows_per_day)
    api_port, worker_log_port, trigger_log_port = ports()
    home = root / ".airflow"
    env = airflow_env.airflow_env(
        root,
        home,
        port=api_port,
        params_path=params_file,
        executor=executor,
        extra={
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder or REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_log_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_log_port),
            # A test wants answers in seconds: parse new files and look for work more often.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            "GX_ANALYTICS_ENABLED": "False",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DVC_NO_ANALYTICS": "1",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            **(extra_env or {}),
        },
    )
    for user in credentials.STACK_USERS:  # admin, and the viewer and op logins of the control-room tests
        credentials.ensure_admin_password(home, user)
    airflow_env.migrate_db(env, home, out=lambda _msg: None)
    started = local.start_airflow(env, home, cwd=root)
    try:
        airflow_api.wait_airflow_healthy(airflow_api.api_url(api_port), timeout=STACK_START_TIMEOUT, processes=started)
        running = Stack(root, home, env, api_port)
        airflow_api.ensure_pool(running.api, running.token, DVC_POOL, 1)
        yield running
    finally:
        processes.stop(home, out=lambda _msg: None)
