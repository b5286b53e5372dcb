"""The local stack behind ``make run``: Airflow 3 and an MLflow UI as separate processes.

Topology (the same as production, minus Postgres/Celery): ``airflow api-server``, ``airflow scheduler``
(LocalExecutor), ``airflow dag-processor``, ``airflow triggerer`` and ``mlflow server``, each started in
its own session with a log file under ``<home>/logs/`` and a pid file under ``<home>/run/``. All state
lives in git-ignored folders of the project root: ``.airflow/`` (metadata DB, logs, secrets, admin
password) and the MLflow store named in params.yaml (``.mlflow/``).

Every step is a plain function with explicit inputs (root, home, ports), so tests can start a real
scheduler in a temporary AIRFLOW_HOME.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from retrainer.names import ALL_DAGS, DVC_POOL, TRAINING_DAG
from retrainer_launcher.airflow_api import (
    api_token,
    api_url,
    ensure_pool,
    failed_tasks,
    latest_run,
    mlflow_url,
    set_paused,
    task_log_tail,
    ti_label,
    trigger_run,
    wait_airflow_healthy,
    wait_for_dag,
    wait_for_run,
    wait_mlflow_healthy,
)
from retrainer_launcher.airflow_env import airflow_env, migrate_db
from retrainer_launcher.common import API_PORT, BIND_HOST, MLFLOW_PORT, Out, StackError, say
from retrainer_launcher.credentials import ADMIN_USER, STACK_USERS, ensure_admin_password
from retrainer_launcher.demo import seed_source
from retrainer_launcher.processes import Process, check_port_free, start_process, venv_bin

# Every DAG of the loop is unpaused by `make run`: training on its schedule, drift_monitor after new data
# and daily, batch_scoring each new day, ingest_landing waiting for files; the manual-only DAGs (promote,
# rollback) then run as soon as they are triggered.
LOOP_DAGS = ALL_DAGS
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
MLFLOW_COMPONENT = "mlflow"
# Where the control room's links open the MLflow UI (the plugin reads it).
MLFLOW_UI_ENV = "RETRAINER_MLFLOW_UI_URL"


def default_home(root: Path) -> Path:
    return root / ".airflow"


@dataclass
class Stack:
    root: Path
    home: Path
    api_port: int = API_PORT
    mlflow_port: int = MLFLOW_PORT

    @property
    def params_path(self) -> Path:
        return Path(os.environ.get("RETRAINER_PARAMS") or self.root / "params.yaml").resolve()

    @property
    def api(self) -> str:
        return api_url(self.api_port)

    @property
    def mlflow(self) -> str:
        return mlflow_url(self.mlflow_port)

    def env(self) -> dict[str, str]:
        return airflow_env(
            self.root, self.home, self.api_port, params_path=self.params_path,
            extra={MLFLOW_UI_ENV: mlflow_url(self.mlflow_port)},
        )

    def password(self, user: str = ADMIN_USER) -> str:
        return ensure_admin_password(self.home, user)

    def token(self) -> str:
        return api_token(self.api, ADMIN_USER, self.password())


def start_airflow(env: dict[str, str], home: Path, cwd: Path | None = None) -> list[Process]:
    """Start (or reuse) api-server, scheduler, dag-processor and triggerer with ``env``.

    The scheduler and triggerer also serve task logs on ports 8793 and 8794; a second stack on the
    same machine (a test) should move them with ``AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT`` and
    ``AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT`` in ``airflow_env(..., extra=...)``.
    """
    airflow = venv_bin("airflow")
    port, host = env.get("AIRFLOW__API__PORT", str(API_PORT)), env.get("AIRFLOW__API__HOST", BIND_HOST)
    check_port_free("api-server", home, int(port), host)
    argvs = {
        "api-server": [airflow, "api-server", "--port", port, "--host", host],
        "scheduler": [airflow, "scheduler"],
        "dag-processor": [airflow, "dag-processor"],
        "triggerer": [airflow, "triggerer"],
    }
    return [start_process(name, argv, env, home, cwd) for name, argv in argvs.items()]


def mlflow_argv(
    tracking_uri: str, artifact_root: Path, port: int = MLFLOW_PORT, host: str = BIND_HOST
) -> list[str]:
    return [
        venv_bin("mlflow"),
        "server",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        tracking_uri,
        "--default-artifact-root",
        str(artifact_root),
        "--artifacts-destination",
        str(artifact_root),
    ]


def start_mlflow(
    tracking_uri: str, artifact_root: Path, home: Path, port: int = MLFLOW_PORT, cwd: Path | None = None
) -> Process:
    """Start (or reuse) the MLflow server: the UI onto the store the DAG tasks write to directly."""
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    Path(artifact_root).mkdir(parents=True, exist_ok=True)
    check_port_free(MLFLOW_COMPONENT, home, port, BIND_HOST)
    # The job runner (7 huey consumers for GenAI jobs) is of no use here and slows the start.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return start_process(MLFLOW_COMPONENT, mlflow_argv(tracking_uri, artifact_root, port), env, home, cwd)


def cmd_up(stack: Stack, seed: bool = True, out: Out = say) -> None:
    from retrainer.config import load_params

    t0 = time.monotonic()
    env = stack.env()
    password = stack.password()
    for user in STACK_USERS:
        stack.password(user)
    params = load_params(stack.params_path)
    migrate_db(env, stack.home, out)
    if seed:
        seed_source(stack.root, env, out=out)
    procs = start_airflow(env, stack.home, cwd=stack.root)
    procs.append(
        start_mlflow(params.tracking_uri, params.artifact_root, stack.home, stack.mlflow_port, stack.root)
    )
    for p in procs:
        out(f"  {p.name:<14} pid {p.pid:<7} {'(already running)' if p.reused else 'started'}  log: {p.log}")
    wait_airflow_healthy(stack.api, processes=procs)
    wait_mlflow_healthy(stack.mlflow, processes=procs)
    ensure_pool(stack.api, stack.token(), DVC_POOL, 1, "DVC work is serialized through this pool")
    out(
        f"stack up in {time.monotonic() - t0:.0f}s: Airflow {stack.api} (user {ADMIN_USER}, password {password}), "
        f"MLflow {stack.mlflow}"
    )


def cmd_trigger(stack: Stack, as_of: str | None = None, dag_timeout: float = 300.0, out: Out = say) -> str:
    """Unpause every DAG of the loop (:data:`LOOP_DAGS`); trigger one training run."""
    token = stack.token()
    for dag_id in LOOP_DAGS:
        wait_for_dag(stack.api, token, dag_id, dag_timeout, out)
        set_paused(stack.api, token, dag_id, paused=False)
    out(f"unpaused: {', '.join(LOOP_DAGS)}")
    as_of = as_of or datetime.now(UTC).date().isoformat()
    run = trigger_run(stack.api, token, TRAINING_DAG, {"as_of": as_of}, note="triggered by `make run`")
    out(f"triggered {TRAINING_DAG} run {run['dag_run_id']} (as_of {as_of})")
    return run["dag_run_id"]


def cmd_wait(stack: Stack, run_id: str | None = None, timeout: float = 900.0, out: Out = say) -> dict:
    """Follow a training run (the latest by default) to its end; print the failed tasks' log tails."""
    token = stack.token()
    if run_id is None:
        latest = latest_run(stack.api, token, TRAINING_DAG)
        if latest is None:
            raise StackError(f"DAG '{TRAINING_DAG}' has no runs to wait for")
        run_id = latest["dag_run_id"]
    run = wait_for_run(stack.api, token, TRAINING_DAG, run_id, timeout, out=out)
    if run.get("state") != "success":
        for ti in failed_tasks(stack.api, token, TRAINING_DAG, run_id):
            if ti.get("state") != "failed":
                continue
            out(f"\n--- log tail of failed task {ti_label(ti)} (try {ti.get('try_number')}):")
            try:
                out(task_log_tail(stack.api, token, TRAINING_DAG, run_id, ti))
            except StackError as exc:
                out(f"(could not read the log: {exc})")
    return run
