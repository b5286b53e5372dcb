"""What the launcher reports: the summary at the end of ``make run`` and ``make status``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from retrainer.names import INGEST_LANDING_DAG, TRAINING_DAG
from retrainer_launcher.airflow_api import (
    airflow_health,
    mlflow_healthy,
    paused_line,
    paused_states,
    run_duration,
)
from retrainer_launcher.common import Out, StackError, say
from retrainer_launcher.credentials import ADMIN_USER, PASSWORDS_FILE, STACK_USERS
from retrainer_launcher.demo import champion_summary
from retrainer_launcher.distributed import SECRETS_FILE, DistributedStack
from retrainer_launcher.local import AIRFLOW_COMPONENTS, LOOP_DAGS, MLFLOW_COMPONENT, Stack
from retrainer_launcher.processes import pid_file, running_pid


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in os.environ for the block, then restore what was there."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _landing_dir(params_path: Path) -> Path | None:
    try:
        from retrainer.config import load_params
        from retrainer.landing import ensure_folders

        params = load_params(params_path)
        ensure_folders(params)
        return params.landing_dir
    except Exception:  # noqa: BLE001 - the summary must print whatever the params say
        return None


def _print_model(stack: Stack | DistributedStack, out: Out) -> None:
    with _environ(stack.client_env() if isinstance(stack, DistributedStack) else {}):
        model = champion_summary(stack.params_path, out)
    if model:
        aliases = ", ".join(model.get("aliases") or []) or "none"
        as_of = f", as of {model['as_of']}" if model.get("as_of") else ""
        out(f"model          {model.get('name')} v{model.get('version')} (aliases: {aliases}{as_of})")
        value = model.get("metric_value")
        shown = f"{value:.4f}" if isinstance(value, int | float) else value
        out(f"metric         {model.get('metric_name')} = {shown}  (MLflow run {model.get('run_id')})")
    elif model is None:
        out("model          no champion registered yet")


def _print_distributed_logins(stack: DistributedStack, out: Out) -> None:
    # The production topology never prints its secrets: say where they are instead.
    where = f"{stack.root / '.env'} or {stack.home / SECRETS_FILE}"
    out(f"Airflow UI     {stack.api}/  user {ADMIN_USER}, password AIRFLOW_ADMIN_PASSWORD ({where})")
    out(f"MLflow UI      {stack.mlflow}/  user admin, password MLFLOW_ADMIN_PASSWORD")
    out("stop with:     make down-distributed")


def _print_local_logins(stack: Stack, out: Out) -> None:
    out(f"Airflow UI     {stack.api}/  user {ADMIN_USER}  password {stack.password()}")
    others = ", ".join(f"{u} ({r}) {stack.password(u)}" for u, r in STACK_USERS.items() if u != ADMIN_USER)
    out(f"               other logins: {others}")
    out(f"               (passwords kept in {stack.home / PASSWORDS_FILE})")
    out(f"control room   {stack.api}/plugin/retrainer  (the Retrainer entry of the navigation)")
    out(f"MLflow UI      {stack.mlflow}/")
    landing = _landing_dir(stack.params_path)
    if landing:
        out(f"new data       drop CSV/Parquet files into {landing}/ (DAG {INGEST_LANDING_DAG} waits for them)")
    out("stop with:     make stop")


def print_dag_states(stack: Stack | DistributedStack, out: Out = say) -> dict[str, bool | None]:
    """One line: every DAG of the loop and its paused state, read back from the REST API."""
    try:
        states = paused_states(stack.api, stack.token(), LOOP_DAGS)
    except (StackError, OSError) as exc:
        out(f"DAGs           (paused states not readable: {exc})")
        return {}
    out(f"DAGs           {paused_line(states)}")
    return states


def print_summary(stack: Stack | DistributedStack, run: dict | None, out: Out = say) -> None:
    out("\n================ summary ================")
    if run is not None:
        took, since = run_duration(run), run_duration(run, "queued_at")
        timing = f" in {took:.0f}s" if took is not None else ""
        timing += f" ({since:.0f}s from trigger to end)" if since is not None else ""
        out(f"run            {TRAINING_DAG} / {run.get('dag_run_id')}: {run.get('state')}{timing}")
    print_dag_states(stack, out)
    _print_model(stack, out)
    if isinstance(stack, DistributedStack):
        _print_distributed_logins(stack, out)
    else:
        _print_local_logins(stack, out)


def cmd_status(stack: Stack | DistributedStack, out: Out = say) -> bool:
    """Which processes run, the servers' health and (local stack) the login; True if all is up."""
    up = True
    distributed = isinstance(stack, DistributedStack)
    names = list(stack.process_envs()) if distributed else [*AIRFLOW_COMPONENTS, MLFLOW_COMPONENT]
    for name in names:
        pid = running_pid(pid_file(stack.home, name))
        up &= pid is not None
        out(f"  {name:<16} {'running, pid ' + str(pid) if pid else 'not running'}")
    health = airflow_health(stack.api)
    if isinstance(health, dict):
        parts = ", ".join(f"{k} {(v or {}).get('status')}" for k, v in health.items())
        out(f"Airflow {stack.api}: {parts}")
    else:
        out(f"Airflow {stack.api}: not answering")
        up = False
    ml = mlflow_healthy(stack.mlflow)
    out(f"MLflow {stack.mlflow}: {'OK' if ml else 'not answering'}")
    if not distributed and (stack.home / PASSWORDS_FILE).exists():
        out(f"login: {ADMIN_USER} / {stack.password()}")
    return up and ml
