"""Airflow notifier for failed Retrainer tasks: the message goes to the task log, and to a webhook when
the Airflow connection ``retrainer_webhook`` exists (conn type http; host = the full URL, or host/port/schema).

The message is one JSON payload per failed task (:func:`failure_payload`), POSTed with the standard
library (:func:`post_json`). The run's as-of date is the one every task of the run used
(:func:`retrainer.run_context.from_airflow`, unchecked: a bad input must never hide the failure reported).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseNotifier, Connection

log = logging.getLogger(__name__)
WEBHOOK_CONN_ID = "retrainer_webhook"
MAX_MESSAGE = 4000  # webhooks (Slack, Teams, ...) reject or truncate very long bodies


def failure_payload(dag_id: str, run_id: str, task_id: str, try_number: Any, as_of: str | None, error: str) -> dict:
    """What a person needs to act: where it failed, for which date, and the error text (gate messages name the report)."""
    text = error if len(error) <= MAX_MESSAGE else error[: MAX_MESSAGE - 20] + "\n…(truncated)"
    return {
        "text": f"Retrainer: {dag_id}.{task_id} failed for as_of={as_of or '?'} (run {run_id}, try {try_number})\n{text}",
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": task_id,
        "try_number": try_number,
        "as_of": as_of,
        "error": text,
    }


def post_json(url: str, payload: dict, timeout: float = 10.0) -> int:
    """POST ``payload`` to ``url``; returns the HTTP status. Errors are raised with the URL named."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"webhook URL must be http(s), got {url!r}")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status
    except urllib.error.URLError as exc:
        raise ConnectionError(f"webhook {url}: {getattr(exc, 'reason', exc)}") from None


def run_as_of(context) -> str | None:
    """The failed run's as-of date (ISO), or None when the context names none: never raises."""
    from retrainer.run_context import from_airflow

    try:
        return from_airflow(context, check=False).as_of.isoformat()
    except Exception:  # noqa: BLE001 - a notifier reports the failure whatever the run's inputs were
        return None


def _webhook_url(conn) -> str:
    host = conn.host or ""
    if "://" in host:
        return host
    scheme = conn.schema or "http"
    port = f":{conn.port}" if conn.port else ""
    return f"{scheme}://{host}{port}"


class RunFailureNotifier(BaseNotifier):
    """Tell people a run stopped, and why (gate failures name the failed expectations and the report)."""

    def __init__(self, conn_id: str = WEBHOOK_CONN_ID):
        super().__init__()
        self.conn_id = conn_id

    def notify(self, context) -> None:
        ti = context["ti"]
        dag_run = context["dag_run"]
        payload = failure_payload(
            dag_run.dag_id, dag_run.run_id, ti.task_id, getattr(ti, "try_number", None), run_as_of(context),
            str(context.get("exception") or "unknown error"),
        )
        log.error("retrainer failure notification: %s", payload["text"])
        try:
            conn = Connection.get(self.conn_id)
        except Exception:  # noqa: BLE001 - no connection configured means: log only
            log.info("no Airflow connection %r: notification sent to the task log only", self.conn_id)
            return
        url = _webhook_url(conn)
        try:
            status = post_json(url, payload)
            log.info("failure notification posted to %s (HTTP %s)", url, status)
        except (ConnectionError, ValueError) as exc:
            # A broken webhook must not hide the task's own failure.
            log.warning("failure notification not delivered: %s", exc)


def notified_task_defaults(retries: int, retry_delay: timedelta, *, exponential: bool = False) -> dict:
    """``default_args`` of Retrainer's DAGs: bounded retries, and every final failure reported."""
    defaults = {"retries": retries, "retry_delay": retry_delay, "on_failure_callback": [RunFailureNotifier()]}
    if exponential:
        defaults["retry_exponential_backoff"] = True
    return defaults
