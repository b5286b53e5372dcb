"""Retrainer's notifications, sent through Airflow notifiers to every notifier params.yaml configures.

params.yaml ``notifications`` lists notifiers: a kind (``slack``, ``slack_webhook``, ``smtp``, ``apprise``,
``http``: the maintained providers' ``SlackNotifier``, ``SlackWebhookNotifier``, ``SmtpNotifier``,
``AppriseNotifier``, ``HttpNotifier``; ``webhook``: :class:`WebhookNotifier`, the event as JSON POSTed to
a connection's URL), an Airflow connection id, and the events it wants (default: all of
``retrainer.names.NOTIFY_EVENTS``). Secrets come only from the connections; nothing here logs a URL, a
token or a password (Airflow masks connection passwords in task logs as well).

The API, for tasks, operators and callbacks:

``notify(event, facts)``
    Send ``event`` (a ``retrainer.names.EVENT_*``) to every configured notifier that wants it; never
    raises (a broken notifier must not fail the run), returns the connection ids it reached. ``facts``
    is a JSON-safe dict: ``summary`` (one line a person reads first), ``dag_id``, ``run_id`` and what
    else matters (version, as_of, url...); a webhook or http notifier receives them all as JSON
    ``{"event", "text", **facts}``, the others a text made of summary and facts.
``anotify(event, facts)``
    The same from async code (the triggerer, where Deadline Alert callbacks run).
``notifiers_for(event, facts)``
    The notifier objects themselves, e.g. for an operator's ``notifiers=`` argument.
``RunFailureNotifier``
    Every task's ``on_failure_callback`` (:func:`notified_task_defaults`): event ``failure``, or
    ``quarantine`` when the raw-data gate quarantined the day (sent to notifiers wanting either).
``deadline_alerts(dag_kind)`` / ``deadline_missed``
    The ``deadline=`` of a DAG from params.yaml ``deadlines``, and its callback (an ``AsyncCallback``
    run by the triggerer), which names the DAG, the run and how late it is.
"""

from __future__ import annotations

import asyncio
import html
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseNotifier, Connection

from retrainer.names import (
    EVENT_APPROVAL_PENDING,
    EVENT_DEADLINE_MISSED,
    EVENT_DRIFT_RETRAIN,
    EVENT_FAILURE,
    EVENT_PROMOTION,
    EVENT_QUARANTINE,
    EVENT_ROLLBACK,
    TRAINING_DAG,
)

log = logging.getLogger(__name__)
MAX_MESSAGE = 4000  # webhooks (Slack, Teams, ...) reject or truncate very long bodies
# How long the triggerer's alerts wait for one endpoint (anotify); the providers' own timeouts are longer or none.
DELIVERY_TIMEOUT_S = 30
QUARANTINE_MARK = "quarantined to: "  # how retrainer.pipeline.step_validate names a quarantined batch
TITLES = {
    EVENT_FAILURE: "task failed",
    EVENT_QUARANTINE: "batch quarantined",
    EVENT_DRIFT_RETRAIN: "drift-triggered retrain",
    EVENT_PROMOTION: "new champion",
    EVENT_ROLLBACK: "champion rolled back",
    EVENT_APPROVAL_PENDING: "approval needed",
    EVENT_DEADLINE_MISSED: "deadline missed",
}
# An event also goes to the notifiers that want these (a quarantine is a failure of the run too).
ALSO_FOR = {EVENT_QUARANTINE: (EVENT_FAILURE,)}


# --------------------------------------------------------------------------------------------------
# The message
# --------------------------------------------------------------------------------------------------


def _truncate(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 20] + "\n…(truncated)"


def event_payload(event: str, facts: dict[str, Any]) -> dict[str, Any]:
    """What every notifier sends: ``{"event", "text", **facts}``; ``text`` is the summary, then the facts."""
    summary = str(facts.get("summary") or "")
    details = [f"{k}: {v}" for k, v in facts.items() if k not in ("summary", "error") and v not in (None, "")]
    text = f"Retrainer {TITLES.get(event, event)}: {summary}".rstrip(": ")
    if facts.get("error"):
        text += f"\n{facts['error']}"
    if details:
        text += "\n" + "\n".join(details)
    return {"event": event, "text": _truncate(text), **facts}


def failure_payload(dag_id: str, run_id: str, task_id: str, try_number: Any, as_of: str | None, error: str) -> dict:
    """The facts of a failed task: where it failed, for which date, and the error text (gate messages name the report)."""
    what = "quarantined the batch" if QUARANTINE_MARK in error else "failed"
    return {
        "summary": f"{dag_id}.{task_id} {what} for as_of={as_of or '?'} (run {run_id}, try {try_number})",
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": task_id,
        "try_number": try_number,
        "as_of": as_of,
        "error": _truncate(error),
    }


# --------------------------------------------------------------------------------------------------
# The notifiers
# --------------------------------------------------------------------------------------------------


class NotificationError(RuntimeError):
    """A notification could not be delivered; the message names the connection, never its URL or secrets."""


def webhook_url(conn: Any) -> str:
    """The URL of a webhook connection: its password when that is a URL (a secret URL, masked in logs),
    else its host when that is a whole URL, else schema://host:port."""
    password = getattr(conn, "password", None) or ""
    if password.startswith(("http://", "https://")):
        return password
    host = conn.host or ""
    if "://" in host:
        return host
    scheme = conn.schema or "http"
    port = f":{conn.port}" if conn.port else ""
    return f"{scheme}://{host}{port}"


class WebhookNotifier(BaseNotifier):
    """The event as JSON POSTed to the URL of an Airflow connection (see :func:`webhook_url`), with requests."""

    def __init__(self, *, conn_id: str, payload: dict[str, Any], timeout: float = 10.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.payload = payload
        self.timeout = timeout

    def notify(self, context) -> None:
        import requests

        url = webhook_url(Connection.get(self.conn_id))
        if not url.startswith(("http://", "https://")):
            raise NotificationError(f"connection {self.conn_id!r}: the webhook URL must be http(s)")
        try:
            response = requests.post(url, json=self.payload, timeout=self.timeout)
        except requests.RequestException as exc:
            raise NotificationError(f"connection {self.conn_id!r}: {type(exc).__name__}") from None
        if response.status_code >= 400:
            raise NotificationError(f"connection {self.conn_id!r}: HTTP {response.status_code}")

    async def async_notify(self, context) -> None:
        await asyncio.to_thread(self.notify, context)


def build_notifier(entry: Any, payload: dict[str, Any]) -> BaseNotifier:
    """The notifier of one params.yaml ``notifications`` entry, carrying ``payload`` (the provider's class)."""
    options, conn_id, text = dict(entry.options), entry.conn_id, payload["text"]
    subject = text.splitlines()[0][:200]
    if entry.kind == "slack":
        from airflow.providers.slack.notifications.slack import SlackNotifier

        return SlackNotifier(slack_conn_id=conn_id, text=text, **options)
    if entry.kind == "slack_webhook":
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        return SlackWebhookNotifier(slack_webhook_conn_id=conn_id, text=text)
    if entry.kind == "smtp":
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        return SmtpNotifier(smtp_conn_id=conn_id, subject=subject, html_content=f"<pre>{html.escape(text)}</pre>",
                            **options)
    if entry.kind == "apprise":
        from airflow.providers.apprise.notifications.apprise import AppriseNotifier

        return AppriseNotifier(apprise_conn_id=conn_id, title=subject, body=text, **options)
    if entry.kind == "http":
        from airflow.providers.http.notifications.http import HttpNotifier

        return HttpNotifier(http_conn_id=conn_id, json=payload, headers={"Content-Type": "application/json"},
                            **options)
    if entry.kind == "webhook":
        return WebhookNotifier(conn_id=conn_id, payload=payload)
    raise ValueError(f"unknown notifier kind {entry.kind!r}")


def configured_notifiers(params: Any = None, dag_id: str | None = None) -> list:
    """params.yaml ``notifications`` (the params of ``dag_id``'s model, else of the running task's); the
    default webhook if it cannot be read, so that a broken params file, often the very failure reported,
    is still reported."""
    from retrainer.config import ConfigError, default_notifications

    if params is None:
        from retrainer_airflow.tasks import model_params, task_params

        from retrainer.names import model_of

        try:
            params = model_params(model_of(dag_id)) if dag_id else task_params()
        except ConfigError as exc:
            log.warning("notifications: params file unreadable (%s); using the default webhook", str(exc)[:300])
            return default_notifications()
    return list(params.notifications)


def _wanted(entries: Iterable[Any], event: str) -> list:
    events = (event, *ALSO_FOR.get(event, ()))
    return [e for e in entries if any(e.wants(ev) for ev in events)]


def _connection_exists(conn_id: str) -> bool:
    try:
        Connection.get(conn_id)
    except Exception:  # noqa: BLE001 - not found, or no way to ask: either way nothing to send to
        return False
    return True


def notifiers_for(event: str, facts: dict[str, Any], params: Any = None) -> list[BaseNotifier]:
    """The notifiers that want ``event``, built with its message (whether their connection exists or not)."""
    payload = event_payload(event, facts)
    return [build_notifier(entry, payload) for entry in _wanted(configured_notifiers(params, facts.get("dag_id")), event)]


def _delivery_error(exc: BaseException) -> str:
    # Exception texts of the providers may carry a URL: keep the type and a short, masked head.
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _announced(event: str, facts: dict[str, Any]) -> dict[str, Any]:
    """The event's payload, its first line logged (the task log tells the event even with no notifier)."""
    payload = event_payload(event, facts)
    log.info("retrainer %s notification: %s", event, payload["text"].splitlines()[0])
    return payload


def _log_delivery(event: str, entry: Any, failure: str | None = None) -> None:
    """One notifier's outcome in the log: sent, or not delivered and why (``failure``)."""
    if failure is None:
        log.info("%s notification sent through %r (%s)", event, entry.conn_id, entry.kind)
    else:
        log.warning("%s notification through %r (%s) not delivered: %s", event, entry.conn_id, entry.kind, failure)


def _log_no_connection(event: str, entry: Any) -> None:
    log.info("no Airflow connection %r: %s notification (%s) not sent", entry.conn_id, event, entry.kind)


def notify(event: str, facts: dict[str, Any], params: Any = None) -> list[str]:
    """Send ``event`` to every configured notifier that wants it; the connection ids reached. Never raises."""
    payload = _announced(event, facts)
    reached = []
    for entry in _wanted(configured_notifiers(params, facts.get("dag_id")), event):
        if not _connection_exists(entry.conn_id):
            _log_no_connection(event, entry)
            continue
        try:
            build_notifier(entry, payload).notify({})
        except Exception as exc:  # noqa: BLE001 - a broken notifier must not fail (or hide) the run's outcome
            _log_delivery(event, entry, _delivery_error(exc))
            continue
        _log_delivery(event, entry)
        reached.append(entry.conn_id)
    return reached


async def anotify(event: str, facts: dict[str, Any], params: Any = None) -> list[str]:
    """:func:`notify` for async code: providers' ``async_notify`` where they have one, else in a thread.

    The notifiers are reached at the same time, each given ``DELIVERY_TIMEOUT_S``: an endpoint that
    does not answer is logged as not delivered and holds back no one else's alert.
    """
    payload = _announced(event, facts)
    entries = await asyncio.to_thread(configured_notifiers, params, facts.get("dag_id"))
    reached = await asyncio.gather(*(_adeliver(entry, event, payload) for entry in _wanted(entries, event)))
    return [conn_id for conn_id in reached if conn_id]


async def _adeliver(entry: Any, event: str, payload: dict[str, Any]) -> str | None:
    """Send ``payload`` through one notifier; its connection id, or None when not sent or not delivered."""
    if not await asyncio.to_thread(_connection_exists, entry.conn_id):
        _log_no_connection(event, entry)
        return None
    notifier = build_notifier(entry, payload)
    try:
        async with asyncio.timeout(DELIVERY_TIMEOUT_S):
            if type(notifier).async_notify is not BaseNotifier.async_notify:
                await notifier.async_notify({})
            else:
                await asyncio.to_thread(notifier.notify, {})
    except TimeoutError:
        _log_delivery(event, entry, f"no answer within {DELIVERY_TIMEOUT_S}s")
        return None
    except Exception as exc:  # noqa: BLE001 - one broken notifier must not stop the others
        _log_delivery(event, entry, _delivery_error(exc))
        return None
    _log_delivery(event, entry)
    return entry.conn_id


def run_facts(context: Any) -> dict[str, Any]:
    """The DAG and run of a task's context, for an event's facts."""
    dag_run = context["dag_run"]
    return {"dag_id": dag_run.dag_id, "run_id": dag_run.run_id}


def notify_champion_move(event: str, move: dict[str, Any], context: Any) -> list[str]:
    """Tell of a champion move (``retrainer.register.ChampionMove.to_dict()``: promote, rollback, an
    approval) when the champion did move; the history stays in the registry."""
    if not move.get("moved"):
        return []
    facts = {k: v for k, v in move.items() if k not in ("history", "note", "moved")}
    return notify(event, {"summary": move.get("note") or f"{move.get('name')} v{move.get('version')}",
                          **run_facts(context), **facts})


# --------------------------------------------------------------------------------------------------
# Task failures
# --------------------------------------------------------------------------------------------------


def run_as_of(context) -> str | None:
    """The failed run's as-of date (ISO), or None when the context names none: never raises."""
    from retrainer.run_context import from_airflow

    try:
        return from_airflow(context, check=False).as_of.isoformat()
    except Exception:  # noqa: BLE001 - a notifier reports the failure whatever the run's inputs were
        return None


class RunFailureNotifier(BaseNotifier):
    """Tell people a run stopped, and why (gate failures name the failed expectations and the report)."""

    def notify(self, context) -> None:
        ti = context["ti"]
        dag_run = context["dag_run"]
        facts = failure_payload(
            dag_run.dag_id, dag_run.run_id, ti.task_id, getattr(ti, "try_number", None), run_as_of(context),
            str(context.get("exception") or "unknown error"),
        )
        event = EVENT_QUARANTINE if QUARANTINE_MARK in facts["error"] else EVENT_FAILURE
        log.error("retrainer failure notification: %s", facts["summary"])
        notify(event, facts)


def notified_task_defaults(retries: int, retry_delay: timedelta, *, exponential: bool = False) -> dict:
    """``default_args`` of Retrainer's DAGs: bounded retries, and every final failure reported."""
    defaults = {"retries": retries, "retry_delay": retry_delay, "on_failure_callback": [RunFailureNotifier()]}
    if exponential:
        defaults["retry_exponential_backoff"] = True
    return defaults


# --------------------------------------------------------------------------------------------------
# Deadline Alerts
# --------------------------------------------------------------------------------------------------

# `training` runs daily on a data interval of one day: its scheduled day ends a day after its logical date.
SCHEDULED_DAY = timedelta(days=1)
RULE_DAY_END, RULE_QUEUED = "after_day_end", "after_queued"


def _duration_text(seconds: float) -> str:
    seconds = int(round(max(seconds, 0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return " ".join(f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if n) or "0s"


def under_dags_test(argv: list[str] | None = None) -> bool:
    """True in ``airflow dags test``: Airflow 3.3.2 fails that command at the end of a run of any DAG with a
    deadline (apache/airflow#73428, ``'dict' object has no attribute 'hex'``), and a test run alerts no one."""
    args = [a for a in (sys.argv if argv is None else argv)[1:] if not a.startswith("-")]
    return args[:2] == ["dags", "test"]


def deadline_alerts(dag_kind: str, params: Any = None) -> list | None:
    """The ``deadline=`` of DAG kind ``dag_kind`` (a key of params.yaml ``deadlines``); None when off.

    Read when the DAG file is parsed. ``training``: a scheduled run must end ``deadline`` after its day
    ends (its logical date + one day), any other run ``deadline`` after it was queued (the callback
    drops the rule that does not apply to a run). Others: ``deadline`` after the run was queued. A
    params file that cannot be read gives no deadline (its tasks report the error), nor does
    ``airflow dags test`` (:func:`under_dags_test`).
    """
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    from retrainer.config import ConfigError

    if under_dags_test():
        return None
    try:
        if params is None:
            from retrainer_airflow.tasks import task_params

            params = task_params()
        allowed = getattr(params.deadlines, dag_kind)
    except ConfigError as exc:
        log.warning("no deadline for %s: %s", dag_kind, str(exc)[:300])
        return None
    if allowed is None:
        return None
    text = _duration_text(allowed.total_seconds())
    kwargs = {"allowed_seconds": allowed.total_seconds()}
    queued = DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=allowed, name=f"ends within {text} of being queued",
        callback=AsyncCallback(deadline_missed, kwargs={**kwargs, "rule": RULE_QUEUED}),
    )
    if dag_kind != TRAINING_DAG:
        return [queued]
    day_end = DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE, interval=SCHEDULED_DAY + allowed,
        name=f"scheduled run ends within {text} of its day's end",
        callback=AsyncCallback(deadline_missed, kwargs={**kwargs, "rule": RULE_DAY_END}),
    )
    return [day_end, queued]


def _when(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def deadline_facts(context: dict, rule: str, allowed_seconds: float, now: datetime) -> dict | None:
    """What a missed deadline tells: the DAG, the run, how late; None when ``rule`` is not this run's."""
    run = dict(context.get("dag_run") or {})
    scheduled = str(run.get("run_type") or "").lower().endswith("scheduled")
    if rule == RULE_DAY_END and not scheduled:
        return None  # a backfill or a manual run with a logical date is not late for that day
    if rule == RULE_QUEUED and scheduled and run.get("dag_id", "").split("__")[0] == TRAINING_DAG:
        return None  # a scheduled training run is judged from its day's end
    deadline = _when((context.get("deadline") or {}).get("deadline_time"))
    late = (now - deadline).total_seconds() if deadline else None
    allowed = _duration_text(allowed_seconds)
    since = "its scheduled day ended" if rule == RULE_DAY_END else "it was queued"
    dag_id, run_id = run.get("dag_id", "?"), run.get("dag_run_id") or run.get("run_id", "?")
    lateness = _duration_text(late) if late is not None else "?"
    return {
        "summary": f"{dag_id} run {run_id} has not finished {allowed} after {since}: {lateness} late",
        "dag_id": dag_id,
        "run_id": run_id,
        "run_type": run.get("run_type"),
        "state": run.get("state"),
        "deadline": deadline.isoformat() if deadline else None,
        "late_seconds": round(late, 1) if late is not None else None,
        "allowed_seconds": allowed_seconds,
        "rule": rule,
        "queued_at": run.get("queued_at"),
        "logical_date": run.get("logical_date"),
    }


async def deadline_missed(context: dict | None = None, *, rule: str = RULE_QUEUED, allowed_seconds: float = 0.0,
                          **_ignored: Any) -> list[str]:
    """Deadline Alert callback (``AsyncCallback``, run by the triggerer): tell every notifier wanting
    ``deadline_missed`` which run is late and by how much; the connection ids reached."""
    facts = deadline_facts(context or {}, rule, allowed_seconds, datetime.now(UTC))
    if facts is None:
        log.info("deadline rule %s does not apply to this run: no alert", rule)
        return []
    log.warning("retrainer deadline missed: %s", facts["summary"])
    return await anotify(EVENT_DEADLINE_MISSED, facts)
