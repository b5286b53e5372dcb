"""The local stack behind ``make run``: Airflow 3 and an MLflow UI as separate processes.

Topology (the same as production, minus Postgres/Celery): ``airflow api-server``, ``airflow scheduler``
(LocalExecutor), ``airflow dag-processor``, ``airflow triggerer`` and ``mlflow server``, each started in
its own session with a log file under ``<home>/logs/`` and a pid file under ``<home>/run/``. All state
lives in git-ignored folders of the project root: ``.airflow/`` (metadata DB, logs, secrets, admin
password) and the MLflow store named in the params files (``.mlflow/``). Every model of the deployment
(``models/<name>.yaml``, or one params.yaml) is brought up: its DAGs unpaused, one training run each.

Every step is a plain function with explicit inputs (root, home, ports), so tests can start a real
scheduler in a temporary AIRFLOW_HOME.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from retrainer.names import ALL_DAGS, DVC_POOL, dag_id
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
from retrainer_launcher.common import API_PORT, BIND_HOST, MLFLOW_PORT, Out, StackError, params_location, say
from retrainer_launcher.credentials import ADMIN_USER, STACK_USERS, ensure_admin_password
from retrainer_launcher.demo import seed_source
from retrainer_launcher.models import label, stack_models, training_dag
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
        """The deployment's models folder or its one params file (RETRAINER_PARAMS of every process)."""
        return params_location(self.root)

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
    t0 = time.monotonic()
    env = stack.env()
    password = stack.password()
    for user in STACK_USERS:
        stack.password(user)
    models = stack_models(stack.params_path, out)
    params = next(iter(models.values()))  # the MLflow store the UI serves (the shared file's, normally)
    for name, other in models.items():
        if other.tracking_uri != params.tracking_uri:
            out(f"NOTE: model {label(name, other)} tracks to {other.tracking_uri}: the MLflow UI started here "
                f"shows {params.tracking_uri} only")
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


def cmd_trigger(stack: Stack, as_of: str | None = None, dag_timeout: float = 300.0, out: Out = say) -> dict[str, str]:
    """For every model: unpause every DAG of its loop (:data:`LOOP_DAGS`, suffixed per model) and trigger
    one training run. Returns training DAG id -> run id."""
    token = stack.token()
    as_of = as_of or datetime.now(UTC).date().isoformat()
    runs = {}
    for name in stack_models(stack.params_path, out):
        training = training_dag(name)
        loop = [dag_id(kind, name) for kind in LOOP_DAGS]
        for dag in loop:
            wait_for_dag(stack.api, token, dag, dag_timeout, out)
            set_paused(stack.api, token, dag, paused=False)
        out(f"unpaused: {', '.join(loop)}")
        run = trigger_run(stack.api, token, training, {"as_of": as_of}, note="triggered by `make run`")
        out(f"triggered {training} run {run['dag_run_id']} (as_of {as_of})")
        runs[training] = run["dag_run_id"]
    return runs


def cmd_wait(stack: Stack, runs: dict[str, str | None] | None = None, timeout: float = 900.0,
             out: Out = say) -> dict[str, dict]:
    """Follow training runs (DAG id -> run id; None: the latest; no ``runs``: every model's latest) to
    their end; print the failed tasks' log tails. Returns DAG id -> run."""
    token = stack.token()
    if runs is None:
        runs = dict.fromkeys(training_dag(name) for name in stack_models(stack.params_path, out))
    ended = {}
    for dag, run_id in runs.items():
        if run_id is None:
            latest = latest_run(stack.api, token, dag)
            if latest is None:
                raise StackError(f"DAG '{dag}' has no runs to wait for")
            run_id = latest["dag_run_id"]
        ended[dag] = run = wait_for_run(stack.api, token, dag, run_id, timeout, out=out)
        if run.get("state") != "success":
            _print_failed_tasks(stack, token, dag, run_id, out)
    return ended


def _print_failed_tasks(stack: Stack, token: str, dag: str, run_id: str, out: Out) -> None:
    for ti in failed_tasks(stack.api, token, dag, run_id):
        if ti.get("state") != "failed":
            continue
        out(f"\n--- log tail of failed task {dag} {ti_label(ti)} (try {ti.get('try_number')}):")
        try:
            out(task_log_tail(stack.api, token, dag, run_id, ti))
        except StackError as exc:
            out(f"(could not read the log: {exc})")
