"""plugins/retrainer_notifier.py: the failure message, the run's as-of date, and the webhook POST.

A real HTTP server on localhost receives the webhook; the Airflow connection is a stand-in.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "plugins"))  # as Airflow does for the plugins folder
import retrainer_notifier as notifier  # noqa: E402


@pytest.fixture
def webhook():
    """A local webhook: ``received`` collects the JSON bodies POSTed to it."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_port}/hook", port=server.server_port,
                          received=received)
    server.shutdown()
    server.server_close()


def _context(params=None, conf=None, interval=None, events=None, exception="boom"):
    run = SimpleNamespace(dag_id="training", run_id="manual__1", run_type="manual", conf=conf or {},
                          run_after=datetime(2026, 4, 9, 8, 0))
    return {"dag_run": run, "params": params or {}, "data_interval_start": interval,
            "triggering_asset_events": events or {}, "exception": exception,
            "ti": SimpleNamespace(task_id="validate", try_number=3)}


def test_the_payload_says_where_for_which_day_and_why():
    payload = notifier.failure_payload("training", "r1", "validate", 2, "2026-03-31", "raw gate failed")
    assert payload == {
        "text": "Retrainer: training.validate failed for as_of=2026-03-31 (run r1, try 2)\nraw gate failed",
        "dag_id": "training", "run_id": "r1", "task_id": "validate", "try_number": 2, "as_of": "2026-03-31",
        "error": "raw gate failed",
    }
    long = notifier.failure_payload("training", "r1", "train", 1, None, "x" * 10_000)
    assert len(long["error"]) < notifier.MAX_MESSAGE and long["error"].endswith("…(truncated)")
    assert "as_of=? " in long["text"]


def test_the_as_of_date_is_the_runs_own():
    # The one rule (run_context.from_airflow): param or conf, newest asset-event day, data interval, trigger day.
    assert notifier.run_as_of(_context({"as_of": "2026-03-01"})) == "2026-03-01"
    assert notifier.run_as_of(_context(conf={"as_of": "2026-03-02"})) == "2026-03-02"
    assert notifier.run_as_of(_context({"day": "2026-03-03"})) == "2026-03-03"  # batch_scoring's form
    events = {"retrainer_raw_partitions": [SimpleNamespace(extra={"days": ["2026-04-06", "2026-04-02"]})]}
    assert notifier.run_as_of(_context(events=events)) == "2026-04-06"
    assert notifier.run_as_of(_context(interval=datetime(2026, 4, 7))) == "2026-04-07"
    assert notifier.run_as_of(_context()) == "2026-04-09"


def test_the_as_of_date_never_raises():
    # Unchecked: a window or note the checks would refuse must not hide the failure being reported.
    assert notifier.run_as_of(_context({"as_of": "2026-03-01", "window_days": 0, "note": "x" * 9999})) == "2026-03-01"
    assert notifier.run_as_of(_context({"as_of": "yesterday"})) is None
    assert notifier.run_as_of({"ti": None}) is None  # no dag_run at all


def test_post_json_posts_and_names_the_url_on_failure(webhook):
    assert notifier.post_json(webhook.url, {"text": "hi"}) == 204
    assert webhook.received == [{"text": "hi"}]
    with pytest.raises(ValueError, match="must be http"):
        notifier.post_json("file:///etc/passwd", {})
    with pytest.raises(ConnectionError, match=r"webhook http://127\.0\.0\.1:9/x"):
        notifier.post_json("http://127.0.0.1:9/x", {}, timeout=2)


def test_the_webhook_url_is_the_connections_host_or_its_parts():
    conn = SimpleNamespace(host="https://hooks.example/T1/B2", schema=None, port=None)
    assert notifier._webhook_url(conn) == "https://hooks.example/T1/B2"
    assert notifier._webhook_url(SimpleNamespace(host="hooks.example", schema="https", port=8443)) == (
        "https://hooks.example:8443"
    )
    assert notifier._webhook_url(SimpleNamespace(host="hooks.example", schema="", port=None)) == "http://hooks.example"


def test_a_failure_is_logged_and_posted_when_the_connection_exists(webhook, monkeypatch, caplog):
    monkeypatch.setattr(notifier, "Connection", SimpleNamespace(
        get=lambda conn_id: SimpleNamespace(host=webhook.url, schema=None, port=None)))
    notifier.RunFailureNotifier().notify(_context({"as_of": "2026-03-31"}, exception="raw gate failed"))
    assert webhook.received == [notifier.failure_payload("training", "manual__1", "validate", 3, "2026-03-31",
                                                         "raw gate failed")]
    assert "training.validate failed for as_of=2026-03-31" in caplog.text and "HTTP 204" in caplog.text


def test_without_a_connection_or_with_a_broken_webhook_the_log_is_enough(monkeypatch, caplog):
    def missing(conn_id):
        raise KeyError(conn_id)

    monkeypatch.setattr(notifier, "Connection", SimpleNamespace(get=missing))
    notifier.RunFailureNotifier().notify(_context())
    assert "failed for as_of=2026-04-09" in caplog.text and "task log only" in caplog.text

    monkeypatch.setattr(notifier, "Connection", SimpleNamespace(
        get=lambda conn_id: SimpleNamespace(host="http://127.0.0.1:9/x", schema=None, port=None)))
    notifier.RunFailureNotifier().notify(_context())  # must not raise: the task's own failure matters
    assert "failure notification not delivered" in caplog.text


def test_every_dag_task_gets_bounded_retries_and_the_notifier():
    defaults = notifier.notified_task_defaults(2, timedelta(seconds=20), exponential=True)
    assert defaults["retries"] == 2 and defaults["retry_delay"] == timedelta(seconds=20)
    assert defaults["retry_exponential_backoff"] is True
    assert [type(cb) for cb in defaults["on_failure_callback"]] == [notifier.RunFailureNotifier]
    assert "retry_exponential_backoff" not in notifier.notified_task_defaults(1, timedelta(seconds=15))
