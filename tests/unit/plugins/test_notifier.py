"""plugins/retrainer_notifier.py: the message, building the providers' notifiers from params.yaml, and sending.

The notifiers are the providers' real classes; they send to a real HTTP server on localhost through real
Airflow connections (``AIRFLOW_CONN_*`` in the environment, as a deployment may define them).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest

from retrainer.config import NotifierConfig, load_params
from retrainer.names import NOTIFY_EVENTS
from tests.conftest import REPO_ROOT, write_project

sys.path.insert(0, str(REPO_ROOT / "plugins"))  # as Airflow does for the plugins folder
import retrainer_notifier as notifier  # noqa: E402

SECRET = "s3cr3t-T0KEN-do-not-log"


@pytest.fixture
def receiver():
    """A local HTTP server: ``received`` collects (path, headers, JSON or form body) of each POST."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = body
            received.append({"path": self.path, "headers": dict(self.headers), "body": parsed})
            status = 500 if self.path.startswith("/broken") else 200
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield SimpleNamespace(base=f"http://127.0.0.1:{server.server_port}", received=received)
    server.shutdown()
    server.server_close()


def _conn(monkeypatch, conn_id: str, **fields) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def _params(tmp_path, notifications):
    return load_params(write_project(tmp_path / "project", {"notifications": notifications}))


def _context(params=None, conf=None, interval=None, events=None, exception="boom"):
    run = SimpleNamespace(dag_id="training", run_id="manual__1", run_type="manual", conf=conf or {},
                          run_after=datetime(2026, 4, 9, 8, 0))
    return {"dag_run": run, "params": params or {}, "data_interval_start": interval,
            "triggering_asset_events": events or {}, "exception": exception,
            "ti": SimpleNamespace(task_id="validate", try_number=3)}


# --------------------------------------------------------------------------------------------------
# The message
# --------------------------------------------------------------------------------------------------


def test_the_payload_says_what_where_and_why():
    facts = notifier.failure_payload("training", "r1", "validate", 2, "2026-03-31", "raw gate failed")
    assert facts["summary"] == "training.validate failed for as_of=2026-03-31 (run r1, try 2)"
    payload = notifier.event_payload("failure", facts)
    assert payload["event"] == "failure" and payload["task_id"] == "validate" and payload["error"] == "raw gate failed"
    assert payload["text"].startswith("Retrainer task failed: training.validate failed for as_of=2026-03-31")
    assert "\nraw gate failed\n" in payload["text"] and "run_id: r1" in payload["text"]
    long = notifier.failure_payload("training", "r1", "train", 1, None, "x" * 10_000)
    assert len(long["error"]) < notifier.MAX_MESSAGE and long["error"].endswith("…(truncated)")
    assert "as_of=? " in long["summary"]
    quarantined = notifier.failure_payload("training", "r1", "validate", 1, "2026-04-01",
                                           "data-quality gate failed:\n  quarantined to: data/quarantine/x")
    assert "quarantined the batch" in quarantined["summary"]


def test_the_as_of_date_is_the_runs_own_and_never_raises():
    assert notifier.run_as_of(_context({"as_of": "2026-03-01"})) == "2026-03-01"
    assert notifier.run_as_of(_context(conf={"as_of": "2026-03-02"})) == "2026-03-02"
    assert notifier.run_as_of(_context({"day": "2026-03-03"})) == "2026-03-03"  # batch_scoring's form
    events = {"retrainer_raw_partitions": [SimpleNamespace(extra={"days": ["2026-04-06", "2026-04-02"]})]}
    assert notifier.run_as_of(_context(events=events)) == "2026-04-06"
    assert notifier.run_as_of(_context(interval=datetime(2026, 4, 7))) == "2026-04-07"
    assert notifier.run_as_of(_context()) == "2026-04-09"
    assert notifier.run_as_of(_context({"as_of": "2026-03-01", "window_days": 0})) == "2026-03-01"
    assert notifier.run_as_of(_context({"as_of": "yesterday"})) is None
    assert notifier.run_as_of({"ti": None}) is None


# --------------------------------------------------------------------------------------------------
# Building the notifiers from params.yaml
# --------------------------------------------------------------------------------------------------


def test_each_kind_is_the_providers_notifier_with_the_connection_and_the_message():
    from airflow.providers.apprise.notifications.apprise import AppriseNotifier
    from airflow.providers.http.notifications.http import HttpNotifier
    from airflow.providers.slack.notifications.slack import SlackNotifier
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    payload = notifier.event_payload("promotion", {"summary": "churn v3 is champion <was v2>", "version": "3"})

    def build(kind, conn_id, **options):
        return notifier.build_notifier(NotifierConfig(kind=kind, conn_id=conn_id, options=options), payload)

    slack = build("slack", "slack_api_default", channel="#ml-ops")
    assert type(slack) is SlackNotifier and slack.slack_conn_id == "slack_api_default"
    assert slack.channel == "#ml-ops" and slack.text == payload["text"]
    hook = build("slack_webhook", "slack_default")
    assert type(hook) is SlackWebhookNotifier and hook.slack_webhook_conn_id == "slack_default"
    assert hook.text == payload["text"]
    mail = build("smtp", "smtp_default", to=["ml@example.com"], from_email="airflow@example.com")
    assert type(mail) is SmtpNotifier and mail.smtp_conn_id == "smtp_default" and mail.to == ["ml@example.com"]
    assert mail.subject == "Retrainer new champion: churn v3 is champion <was v2>"
    assert "&lt;was v2&gt;" in mail.html_content  # escaped into the HTML body
    apprise = build("apprise", "apprise_default", tag="ops")
    assert type(apprise) is AppriseNotifier and apprise.apprise_conn_id == "apprise_default"
    assert apprise.body == payload["text"] and apprise.tag == "ops"
    http = build("http", "ops_http", endpoint="/events", method="PUT")
    assert type(http) is HttpNotifier and http.http_conn_id == "ops_http" and http.endpoint == "/events"
    assert http.method == "PUT" and http.json == payload
    webhook = build("webhook", "retrainer_webhook")
    assert type(webhook) is notifier.WebhookNotifier and webhook.payload == payload


def test_notifiers_are_chosen_by_event(tmp_path):
    params = _params(tmp_path, [
        {"kind": "webhook", "conn_id": "all_events"},
        {"kind": "slack_webhook", "conn_id": "failures", "events": ["failure"]},
        {"kind": "http", "conn_id": "deadlines", "events": ["deadline_missed"]},
    ])
    assert [e.conn_id for e in params.notifications[0:1] if e.events == list(NOTIFY_EVENTS)] == ["all_events"]
    chosen = notifier.notifiers_for("promotion", {"summary": "v2"}, params)
    assert [type(n).__name__ for n in chosen] == ["WebhookNotifier"]
    chosen = notifier.notifiers_for("quarantine", {"summary": "day"}, params)  # a quarantine is a failure too
    assert [type(n).__name__ for n in chosen] == ["WebhookNotifier", "SlackWebhookNotifier"]
    chosen = notifier.notifiers_for("deadline_missed", {"summary": "late"}, params)
    assert [type(n).__name__ for n in chosen] == ["WebhookNotifier", "HttpNotifier"]


def test_the_webhook_url_is_the_connections_password_host_or_parts():
    conn = SimpleNamespace(host="https://hooks.example/T1/B2", schema=None, port=None, password=None)
    assert notifier.webhook_url(conn) == "https://hooks.example/T1/B2"
    secret = SimpleNamespace(host="ignored", schema=None, port=None, password="https://hooks.example/T/B/secret")
    assert notifier.webhook_url(secret) == "https://hooks.example/T/B/secret"
    parts = SimpleNamespace(host="hooks.example", schema="https", port=8443, password="not-a-url")
    assert notifier.webhook_url(parts) == "https://hooks.example:8443"


# --------------------------------------------------------------------------------------------------
# Sending, through real connections to a local receiver
# --------------------------------------------------------------------------------------------------


def test_notify_sends_through_webhook_http_and_slack_webhook_connections(tmp_path, monkeypatch, receiver, caplog):
    # INFO: what task logs hold by default (urllib3's DEBUG lines name the request path); in a task,
    # Airflow also masks connection passwords (tests/e2e/test_notifications.py reads a real task log).
    caplog.set_level(logging.INFO)
    _conn(monkeypatch, "ops_webhook", conn_type="http", password=f"{receiver.base}/hook/{SECRET}")
    _conn(monkeypatch, "ops_http", conn_type="http", host=receiver.base, login="retrainer", password=SECRET)
    _conn(monkeypatch, "ops_slack", conn_type="slackwebhook", host=receiver.base, password=f"T000/B000/{SECRET}")
    params = _params(tmp_path, [
        {"kind": "webhook", "conn_id": "ops_webhook"},
        {"kind": "http", "conn_id": "ops_http", "options": {"endpoint": "/events"}},
        {"kind": "slack_webhook", "conn_id": "ops_slack"},
        {"kind": "webhook", "conn_id": "not_defined"},
    ])
    facts = {"summary": "churn v3 is champion (was v2)", "dag_id": "training", "run_id": "r7", "version": "3"}
    assert notifier.notify("promotion", facts, params) == ["ops_webhook", "ops_http", "ops_slack"]

    webhook, http, slack = receiver.received
    assert webhook["path"] == f"/hook/{SECRET}" and webhook["body"]["event"] == "promotion"
    assert webhook["body"]["version"] == "3" and webhook["body"]["run_id"] == "r7"
    assert http["path"] == "/events" and http["body"] == webhook["body"]
    expected_auth = "Basic " + base64.b64encode(f"retrainer:{SECRET}".encode()).decode()
    assert http["headers"]["Authorization"] == expected_auth  # the password is used, from the connection
    assert slack["path"] == f"/T000/B000/{SECRET}"
    assert slack["body"]["text"].startswith("Retrainer new champion: churn v3 is champion (was v2)")
    assert "no Airflow connection 'not_defined'" in caplog.text
    assert SECRET not in caplog.text  # neither the URL nor the password is logged


def test_a_broken_receiver_or_unwanted_event_never_raises(tmp_path, monkeypatch, receiver, caplog):
    _conn(monkeypatch, "broken_hook", conn_type="http", host=f"{receiver.base}/broken/{SECRET}")
    _conn(monkeypatch, "unreachable", conn_type="http", password=f"http://127.0.0.1:9/{SECRET}")
    params = _params(tmp_path, [
        {"kind": "webhook", "conn_id": "broken_hook"},
        {"kind": "http", "conn_id": "unreachable"},
        {"kind": "webhook", "conn_id": "unreachable", "events": ["promotion"]},
    ])
    assert notifier.notify("rollback", {"summary": "back to v1"}, params) == []
    assert len(receiver.received) == 1  # the broken one was tried; the promotion-only one was not
    assert "rollback notification through 'broken_hook' (webhook) not delivered" in caplog.text
    assert "through 'unreachable' (http) not delivered" in caplog.text
    assert SECRET not in caplog.text


def test_anotify_uses_the_providers_async_path(tmp_path, monkeypatch, receiver):
    _conn(monkeypatch, "ops_http", conn_type="http", host=receiver.base)
    _conn(monkeypatch, "ops_slack", conn_type="slackwebhook", host=receiver.base, password="T1/B1/x")
    _conn(monkeypatch, "ops_webhook", conn_type="http", host=f"{receiver.base}/hook")
    params = _params(tmp_path, [{"kind": k, "conn_id": c} for k, c in
                                (("http", "ops_http"), ("slack_webhook", "ops_slack"), ("webhook", "ops_webhook"))])
    reached = asyncio.run(notifier.anotify("deadline_missed", {"summary": "late", "dag_id": "training"}, params))
    assert reached == ["ops_http", "ops_slack", "ops_webhook"]
    assert sorted(r["path"] for r in receiver.received) == ["/", "/T1/B1/x", "/hook"]  # sent at the same time


def test_an_endpoint_that_never_answers_holds_back_no_other_alert(tmp_path, monkeypatch, receiver, caplog):
    import socket

    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    monkeypatch.setattr(notifier, "DELIVERY_TIMEOUT_S", 1)
    _conn(monkeypatch, "silent_hook", conn_type="http", host=f"http://127.0.0.1:{silent.getsockname()[1]}/{SECRET}")
    _conn(monkeypatch, "ops_webhook", conn_type="http", host=f"{receiver.base}/hook")
    params = _params(tmp_path, [{"kind": "webhook", "conn_id": "silent_hook"}, {"kind": "webhook", "conn_id": "ops_webhook"}])
    with caplog.at_level(logging.INFO):
        try:
            reached = asyncio.run(notifier.anotify("deadline_missed", {"summary": "late", "dag_id": "training"}, params))
        finally:
            silent.close()
    assert reached == ["ops_webhook"] and [r["path"] for r in receiver.received] == ["/hook"]
    assert "through 'silent_hook' (webhook) not delivered: no answer within 1s" in caplog.text
    assert SECRET not in caplog.text


def test_a_task_failure_goes_out_as_failure_or_quarantine(tmp_path, monkeypatch, receiver):
    _conn(monkeypatch, "retrainer_webhook", conn_type="http", host=f"{receiver.base}/hook")
    monkeypatch.setenv("RETRAINER_PARAMS", str(write_project(tmp_path / "p")))  # the default notifications
    notifier.RunFailureNotifier().notify(_context({"as_of": "2026-03-31"}, exception="raw gate failed"))
    notifier.RunFailureNotifier().notify(_context(exception="gate failed\n  quarantined to: data/quarantine/x"))
    failure, quarantine = (r["body"] for r in receiver.received)
    assert failure["event"] == "failure" and failure["as_of"] == "2026-03-31" and failure["task_id"] == "validate"
    assert failure["error"] == "raw gate failed"
    assert quarantine["event"] == "quarantine" and "quarantined the batch" in quarantine["summary"]


def test_a_broken_params_file_still_reports_through_the_default_webhook(tmp_path, monkeypatch, receiver, caplog):
    _conn(monkeypatch, "retrainer_webhook", conn_type="http", host=f"{receiver.base}/hook")
    broken = tmp_path / "params.yaml"
    broken.write_text("model: [unclosed\n")
    monkeypatch.setenv("RETRAINER_PARAMS", str(broken))
    assert notifier.notify("failure", {"summary": "bad params"}) == ["retrainer_webhook"]
    assert "params file unreadable" in caplog.text


def test_every_dag_task_gets_bounded_retries_and_the_notifier():
    defaults = notifier.notified_task_defaults(2, timedelta(seconds=20), exponential=True)
    assert defaults["retries"] == 2 and defaults["retry_delay"] == timedelta(seconds=20)
    assert defaults["retry_exponential_backoff"] is True
    assert [type(cb) for cb in defaults["on_failure_callback"]] == [notifier.RunFailureNotifier]
    assert "retry_exponential_backoff" not in notifier.notified_task_defaults(1, timedelta(seconds=15))


# --------------------------------------------------------------------------------------------------
# Deadline Alerts
# --------------------------------------------------------------------------------------------------


def test_deadline_alerts_follow_params(tmp_path):
    from airflow.sdk import AsyncCallback
    from airflow.sdk.definitions.deadline import DagRunLogicalDateDeadline, DagRunQueuedAtDeadline

    params = load_params(write_project(tmp_path / "p", {"deadlines": {"training": "6h", "drift_monitor": "90m",
                                                                       "batch_scoring": None}}))
    day_end, queued = notifier.deadline_alerts("training", params)
    assert isinstance(day_end.reference, DagRunLogicalDateDeadline)
    assert day_end.interval == timedelta(days=1, hours=6)  # the scheduled day ends a day after its logical date
    assert isinstance(queued.reference, DagRunQueuedAtDeadline) and queued.interval == timedelta(hours=6)
    assert isinstance(day_end.callback, AsyncCallback)
    assert day_end.callback.path == queued.callback.path == "retrainer_notifier.deadline_missed"
    assert day_end.callback.kwargs == {"allowed_seconds": 21600.0, "rule": notifier.RULE_DAY_END}
    (drift,) = notifier.deadline_alerts("drift_monitor", params)
    assert drift.interval == timedelta(minutes=90) and isinstance(drift.reference, DagRunQueuedAtDeadline)
    assert notifier.deadline_alerts("batch_scoring", params) is None


def test_a_missed_deadline_names_the_dag_the_run_and_how_late():
    now = datetime(2026, 4, 2, 7, 30, 5, tzinfo=UTC)
    context = {"dag_run": {"dag_id": "drift_monitor", "dag_run_id": "manual__x", "run_type": "manual",
                           "state": "running", "queued_at": "2026-04-02T05:00:00Z"},
               "deadline": {"id": "d1", "deadline_time": "2026-04-02T07:00:00+00:00"}}
    facts = notifier.deadline_facts(context, notifier.RULE_QUEUED, 7200, now)
    assert facts["summary"] == "drift_monitor run manual__x has not finished 2h after it was queued: 30m 5s late"
    assert facts["late_seconds"] == 1805.0 and facts["dag_id"] == "drift_monitor" and facts["run_id"] == "manual__x"
    # training: a scheduled run is judged from its day's end, any other run from its queueing.
    scheduled = {"dag_run": {"dag_id": "training", "dag_run_id": "scheduled__d", "run_type": "scheduled"},
                 "deadline": {"deadline_time": datetime(2026, 4, 2, 6, 0, tzinfo=UTC)}}
    assert notifier.deadline_facts(scheduled, notifier.RULE_QUEUED, 60, now) is None
    assert "after its scheduled day ended: 1h 30m 5s late" in notifier.deadline_facts(
        scheduled, notifier.RULE_DAY_END, 60, now)["summary"]
    backfill = {"dag_run": {"dag_id": "training", "dag_run_id": "backfill__d", "run_type": "backfill"}}
    assert notifier.deadline_facts(backfill, notifier.RULE_DAY_END, 60, now) is None
    assert notifier.deadline_facts(backfill, notifier.RULE_QUEUED, 60, now) is not None


def test_a_champion_move_is_told_only_when_the_champion_moved(tmp_path, monkeypatch, receiver):
    _conn(monkeypatch, "ops_webhook", conn_type="http", host=f"{receiver.base}/hook")
    params_file = write_project(tmp_path / "p", {"notifications": [{"kind": "webhook", "conn_id": "ops_webhook"}]})
    monkeypatch.setenv("RETRAINER_PARAMS", str(params_file))
    context = {"dag_run": SimpleNamespace(dag_id="rollback", run_id="manual__2")}
    move = {"name": "churn", "action": "rollback", "version": "1", "previous": "2", "by": "admin", "reason": "bad",
            "at": "2026-04-01T00:00:00+00:00", "moved": True, "note": "champion v2 -> v1", "history": [{"seq": 1}]}
    assert notifier.notify_champion_move("rollback", {**move, "moved": False}, context) == []
    assert notifier.notify_champion_move("rollback", move, context) == ["ops_webhook"]
    (sent,) = (r["body"] for r in receiver.received)
    assert sent["event"] == "rollback" and sent["summary"] == "champion v2 -> v1" and sent["run_id"] == "manual__2"
    assert sent["version"] == "1" and sent["previous"] == "2" and "history" not in sent


def test_airflow_dags_test_gets_no_deadline(tmp_path, monkeypatch):
    # Airflow 3.3.2's `airflow dags test` crashes after a run of a DAG with a deadline (apache/airflow#73428).
    assert notifier.under_dags_test(["/venv/bin/airflow", "dags", "test", "training", "-c", "{}"])
    assert not notifier.under_dags_test(["/venv/bin/airflow", "dag-processor"])
    assert not notifier.under_dags_test(["/venv/bin/airflow", "dags", "list"])
    params = load_params(write_project(tmp_path / "p"))
    monkeypatch.setattr(sys, "argv", ["/venv/bin/airflow", "dags", "test", "training"])
    assert notifier.deadline_alerts("training", params) is None
    monkeypatch.setattr(sys, "argv", ["/venv/bin/airflow", "scheduler"])
    assert len(notifier.deadline_alerts("training", params)) == 2


def test_each_models_events_go_to_that_models_notifiers(tmp_path, monkeypatch):
    from tests.conftest import write_models_project

    fraud_only = [{"kind": "http", "conn_id": "fraud_http"}]
    folder = write_models_project(tmp_path / "p", {"churn": {}, "fraud": {"source": {"table": "fraud_events"},
                                                                          "notifications": fraud_only}})
    monkeypatch.setenv("RETRAINER_PARAMS", str(folder))
    assert [e.conn_id for e in notifier.configured_notifiers(dag_id="training__fraud")] == ["fraud_http"]
    assert [e.conn_id for e in notifier.configured_notifiers(dag_id="drift_monitor__churn")] == ["retrainer_webhook"]
    # Not one of its DAGs, and two models: the params cannot be chosen, the default webhook still reports.
    assert [e.conn_id for e in notifier.configured_notifiers(dag_id="other_dag")] == ["retrainer_webhook"]
