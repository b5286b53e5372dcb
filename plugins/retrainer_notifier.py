"""Airflow notifier for failed Retrainer tasks: the message goes to the task log, and to a webhook when
the Airflow connection ``retrainer_webhook`` exists (conn type http; host = the full URL, or host/port/schema)."""

from __future__ import annotations

import logging
from datetime import timedelta

from airflow.sdk import BaseNotifier, Connection

log = logging.getLogger(__name__)
WEBHOOK_CONN_ID = "retrainer_webhook"


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
        from retrainer.notify import failure_payload, post_json

        ti = context["ti"]
        dag_run = context["dag_run"]
        conf = getattr(dag_run, "conf", None) or {}
        params = context.get("params") or {}
        interval = context.get("data_interval_start")
        as_of = conf.get("as_of") or params.get("as_of") or (interval.date().isoformat() if interval else None)
        payload = failure_payload(
            dag_run.dag_id, dag_run.run_id, ti.task_id, getattr(ti, "try_number", None), as_of,
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
