"""What the launcher reports: the summary at the end of ``make run`` and ``make status``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from retrainer.names import INGEST_LANDING_DAG, dag_id
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
from retrainer_launcher.models import label, stack_models, training_dag
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


def _landing_dirs(stack: Stack) -> dict[str, Path]:
    """DAG id of each model's landing DAG -> its landing folder (made if missing)."""
    try:
        from retrainer.landing import ensure_folders

        dirs = {}
        for name, params in stack_models(stack.params_path, lambda _: None).items():
            ensure_folders(params)
            dirs[dag_id(INGEST_LANDING_DAG, name)] = params.landing_dir
        return dirs
    except Exception:  # noqa: BLE001 - the summary must print whatever the params say
        return {}


def model_line(name: str | None, params: object, run: dict | None, champion: dict | None) -> str:
    """One model's summary line: its training run and its champion."""
    parts = [f"model {label(name, params):<12}"]
    if run is not None:
        took = run_duration(run)
        parts.append(f"{training_dag(name)} / {run.get('dag_run_id')}: {run.get('state')}"
                     + (f" in {took:.0f}s" if took is not None else ""))
    if champion:
        value = champion.get("metric_value")
        shown = f"{value:.4f}" if isinstance(value, int | float) else value
        as_of = f", as of {champion['as_of']}" if champion.get("as_of") else ""
        parts.append(f"champion {champion.get('name')} v{champion.get('version')} "
                     f"({champion.get('metric_name')} {shown}{as_of}; MLflow run {champion.get('run_id')})")
    elif champion is None:
        parts.append("no champion registered yet")
    return " | ".join(parts)


def _print_models(stack: Stack | DistributedStack, runs: dict[str, dict] | None, out: Out) -> None:
    try:
        models = stack_models(stack.params_path, out)
    except Exception as exc:  # noqa: BLE001 - the Airflow part of the summary must still print
        out(f"(no model summary: {exc})")
        return
    with _environ(stack.client_env() if isinstance(stack, DistributedStack) else {}):
        for name, params in models.items():
            run = (runs or {}).get(training_dag(name))
            out(model_line(name, params, run, champion_summary(params, out)))


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
    for dag, landing in _landing_dirs(stack).items():
        out(f"new data       drop CSV/Parquet files into {landing}/ (DAG {dag} waits for them)")
    out("stop with:     make stop")


def print_dag_states(stack: Stack | DistributedStack, out: Out = say) -> dict[str, bool | None]:
    """One line: every DAG of every model's loop and its paused state, read back from the REST API."""
    try:
        dags = [dag_id(kind, name) for name in stack_models(stack.params_path, lambda _: None) for kind in LOOP_DAGS]
        states = paused_states(stack.api, stack.token(), dags)
    except (StackError, OSError, ValueError) as exc:  # ValueError: a params file that does not load
        out(f"DAGs           (paused states not readable: {exc})")
        return {}
    out(f"DAGs           {paused_line(states)}")
    return states


def print_summary(stack: Stack | DistributedStack, runs: dict[str, dict] | None, out: Out = say) -> None:
    """One line per model (its training run of ``runs``, DAG id -> run, and its champion), the DAGs'
    paused states, then the logins."""
    out("\n================ summary ================")
    print_dag_states(stack, out)
    _print_models(stack, runs, out)
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
