"""The REST calls the launcher makes: Airflow's API (token, pools, DAGs, runs, task instances, logs)
and the health of Airflow and MLflow. Every call takes the server's base URL and, for Airflow, a token
from :func:`api_token`.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from retrainer_launcher.common import API_PORT, MLFLOW_PORT, Out, StackError, say
from retrainer_launcher.http_client import HttpError, http, reachable, wait_for
from retrainer_launcher.processes import Process

TERMINAL_RUN_STATES = {"success", "failed"}
FAILED_TASK_STATES = {"failed", "upstream_failed"}


def api_url(port: int = API_PORT) -> str:
    return f"http://localhost:{port}"


def mlflow_url(port: int = MLFLOW_PORT) -> str:
    return f"http://localhost:{port}"


# --------------------------------------------------------------------------------------------------
# Health
# --------------------------------------------------------------------------------------------------


def airflow_health(base_url: str) -> dict | None:
    """``GET /api/v2/monitor/health`` (no login needed), or None while the api-server is not up."""
    return reachable(lambda: http("GET", f"{base_url}/api/v2/monitor/health", timeout=5))


def all_healthy(health: dict | None) -> bool:
    if not isinstance(health, dict):
        return False
    parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
    return all((health.get(k) or {}).get("status") == "healthy" for k in parts)


def wait_airflow_healthy(base_url: str, timeout: float = 180.0, processes: Iterable[Process] = ()) -> dict:
    """Wait until the api-server answers and reports DB, scheduler, triggerer and dag-processor healthy."""

    def probe() -> dict | None:
        health = airflow_health(base_url)
        return health if all_healthy(health) else None

    return wait_for(f"Airflow health at {base_url}/api/v2/monitor/health", probe, timeout, 1.0, processes)


def mlflow_healthy(base_url: str) -> bool:
    answer = reachable(lambda: http("GET", f"{base_url}/health", timeout=5))
    return isinstance(answer, str) and answer.strip() == "OK"


def wait_mlflow_healthy(base_url: str, timeout: float = 120.0, processes: Iterable[Process] = ()) -> bool:
    return wait_for(
        f"MLflow health at {base_url}/health", lambda: mlflow_healthy(base_url), timeout, 1.0, processes
    )


# --------------------------------------------------------------------------------------------------
# Login, pools, DAGs
# --------------------------------------------------------------------------------------------------


def api_token(base_url: str, user: str, password: str) -> str:
    """A JWT from SimpleAuthManager's ``POST /auth/token``."""
    answer = http("POST", f"{base_url}/auth/token", {"username": user, "password": password})
    return answer["access_token"]


def ensure_pool(base_url: str, token: str, name: str, slots: int = 1, description: str = "") -> None:
    """Create pool ``name`` with ``slots`` slots, or set its slots if it exists with another count."""
    try:
        pool = http("GET", f"{base_url}/api/v2/pools/{name}", token=token)
    except HttpError as exc:
        if exc.status != 404:
            raise
        http(
            "POST",
            f"{base_url}/api/v2/pools",
            {"name": name, "slots": slots, "description": description},
            token,
        )
        return
    if pool.get("slots") != slots:
        http("PATCH", f"{base_url}/api/v2/pools/{name}?update_mask=slots", {"slots": slots}, token)


def import_errors(base_url: str, token: str) -> list[dict]:
    answer = http("GET", f"{base_url}/api/v2/importErrors?limit=100", token=token)
    return list(answer.get("import_errors", []))


def wait_for_dag(base_url: str, token: str, dag_id: str, timeout: float = 300.0, out: Out = say) -> dict:
    """Wait until the dag-processor has parsed ``dag_id``; fail at once on an import error in its file."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    announced = False
    while True:
        try:
            return http("GET", f"{base_url}/api/v2/dags/{dag_id}", token=token)
        except HttpError as exc:
            if exc.status != 404:
                raise
        for err in import_errors(base_url, token):
            filename = str(err.get("filename", ""))
            if Path(filename).stem == dag_id:
                raise StackError(f"DAG file {filename} does not import:\n{err.get('stack_trace', '')}")
            if filename not in seen:
                seen.add(filename)
                out(f"warning: import error in {filename}:\n{err.get('stack_trace', '')}")
        if not announced:
            out(f"waiting for the dag-processor to parse DAG '{dag_id}' (up to {timeout:.0f}s) ...")
            announced = True
        if time.monotonic() > deadline:
            raise StackError(
                f"DAG '{dag_id}' did not appear within {timeout:.0f}s; see the dag-processor log"
            )
        time.sleep(2)


def set_paused(base_url: str, token: str, dag_id: str, paused: bool = False) -> dict:
    return http(
        "PATCH", f"{base_url}/api/v2/dags/{dag_id}?update_mask=is_paused", {"is_paused": paused}, token
    )


def paused_states(base_url: str, token: str, dag_ids: Iterable[str]) -> dict[str, bool | None]:
    """Each DAG's ``is_paused`` as the REST API reports it now (None: the API does not know the DAG)."""
    states: dict[str, bool | None] = {}
    for dag_id in dag_ids:
        try:
            states[dag_id] = http("GET", f"{base_url}/api/v2/dags/{dag_id}", token=token).get("is_paused")
        except HttpError as exc:
            if exc.status != 404:
                raise
            states[dag_id] = None
    return states


def paused_line(states: dict[str, bool | None]) -> str:
    """``training unpaused, drift_monitor paused, ...`` (``not parsed`` for a DAG the API does not know)."""
    words = {True: "paused", False: "unpaused", None: "not parsed"}
    return ", ".join(f"{dag_id} {words[paused]}" for dag_id, paused in states.items())


# --------------------------------------------------------------------------------------------------
# DAG runs and task instances
# --------------------------------------------------------------------------------------------------


def trigger_run(
    base_url: str,
    token: str,
    dag_id: str,
    conf: dict | None = None,
    note: str | None = None,
    run_id: str | None = None,
) -> dict:
    """``POST /api/v2/dags/{dag_id}/dagRuns``; ``logical_date`` is a required field, sent as null."""
    body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
    if note:
        body["note"] = note
    if run_id:
        body["dag_run_id"] = run_id
    return http("POST", f"{base_url}/api/v2/dags/{dag_id}/dagRuns", body, token)


def get_run(base_url: str, token: str, dag_id: str, run_id: str) -> dict:
    return http(
        "GET", f"{base_url}/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}", token=token
    )


def latest_run(base_url: str, token: str, dag_id: str) -> dict | None:
    answer = http("GET", f"{base_url}/api/v2/dags/{dag_id}/dagRuns?order_by=-run_after&limit=1", token=token)
    runs = answer.get("dag_runs", [])
    return runs[0] if runs else None


def run_duration(run: dict, start_field: str = "start_date") -> float | None:
    """Seconds from ``start_field`` (start_date, or queued_at for the time since the trigger) to end_date."""
    try:
        start = datetime.fromisoformat(run[start_field].replace("Z", "+00:00"))
        end = datetime.fromisoformat(run["end_date"].replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return (end - start).total_seconds()


def task_instances(base_url: str, token: str, dag_id: str, run_id: str) -> list[dict]:
    rid = urllib.parse.quote(run_id, safe="")
    answer = http(
        "GET", f"{base_url}/api/v2/dags/{dag_id}/dagRuns/{rid}/taskInstances?limit=1000", token=token
    )
    return list(answer.get("task_instances", []))


def ti_label(ti: dict) -> str:
    index = ti.get("map_index", -1)
    return ti["task_id"] + (f"[{index}]" if index is not None and index >= 0 else "")


def _clock() -> str:
    return datetime.now().strftime("%H:%M:%S")


def wait_for_run(
    base_url: str,
    token: str,
    dag_id: str,
    run_id: str,
    timeout: float = 900.0,
    poll: float = 2.0,
    out: Out = say,
) -> dict:
    """Follow a DAG run until it ends, printing each task's state when it changes; the final run."""
    states: dict[str, str | None] = {}
    deadline = time.monotonic() + timeout
    last_run_state = None
    while True:
        run = get_run(base_url, token, dag_id, run_id)
        if run.get("state") != last_run_state:
            last_run_state = run.get("state")
            out(f"{_clock()}  run {run_id}: {last_run_state}")
        for ti in task_instances(base_url, token, dag_id, run_id):
            label, state = ti_label(ti), ti.get("state")
            if label not in states or states[label] != state:
                if state is not None or label in states:
                    tries = f" (try {ti.get('try_number')})" if (ti.get("try_number") or 0) > 1 else ""
                    out(f"{_clock()}    {label:<28} {state or 'none'}{tries}")
                states[label] = state
        if run.get("state") in TERMINAL_RUN_STATES:
            return run
        if time.monotonic() > deadline:
            raise StackError(f"run {run_id} of '{dag_id}' did not finish within {timeout:.0f}s")
        time.sleep(poll)


def failed_tasks(base_url: str, token: str, dag_id: str, run_id: str) -> list[dict]:
    tis = task_instances(base_url, token, dag_id, run_id)
    return [ti for ti in tis if ti.get("state") == "failed"] or [
        ti for ti in tis if ti.get("state") in FAILED_TASK_STATES
    ]


# --------------------------------------------------------------------------------------------------
# Task logs
# --------------------------------------------------------------------------------------------------


def format_log_entry(entry: Any) -> str:
    """One structured log entry of the REST API as a text line (with its traceback, if any)."""
    if not isinstance(entry, dict):
        return str(entry)
    ts = str(entry.get("timestamp") or "")[11:19]
    level = entry.get("level", "")
    line = f"{ts} {level:<7} {entry.get('event', '')}".rstrip()
    for err in entry.get("error_detail") or []:
        if not isinstance(err, dict):
            continue
        for frame in err.get("frames") or []:
            line += f"\n    {frame.get('filename')}:{frame.get('lineno')} in {frame.get('name')}"
        line += f"\n  {err.get('exc_type')}: {err.get('exc_value')}"
    return line


def task_log_tail(base_url: str, token: str, dag_id: str, run_id: str, ti: dict, lines: int = 60) -> str:
    """The last ``lines`` lines of a task instance's log, as served by the REST API."""
    rid = urllib.parse.quote(run_id, safe="")
    try_number = max(int(ti.get("try_number") or 1), 1)
    url = (
        f"{base_url}/api/v2/dags/{dag_id}/dagRuns/{rid}/taskInstances/{ti['task_id']}/logs/{try_number}"
        f"?full_content=true&map_index={ti.get('map_index', -1)}"
    )
    answer = http("GET", url, token=token)
    content = answer.get("content", []) if isinstance(answer, dict) else [answer]
    text = "\n".join(format_log_entry(e) for e in content).splitlines()
    return "\n".join(text[-lines:])
