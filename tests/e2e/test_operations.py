"""Airflow-native operations on a real stack (scheduler, dag-processor, triggerer, api-server, LocalExecutor).

- `make run`'s own code path (:func:`retrainer_launcher.local.cmd_trigger`, then the summary's line)
  leaves every DAG of the loop unpaused, as the REST API reports it.
- Notifications go out through Airflow notifiers and real Airflow connections (``AIRFLOW_CONN_*``) to an
  HTTP receiver in this test: the ``webhook`` kind (its URL, with a secret in it, in the connection's
  password), the ``http`` kind (HttpNotifier, basic auth with the connection's password) and
  ``slack_webhook`` (SlackWebhookNotifier, its token in the connection's password) pointed at it.
  A training run's promotion and a bad batch's quarantine reach all three; the secret reaches the
  receiver but never a task log or the triggerer's log.
- A batch_scoring run waiting for a day that never comes misses a deadline of a few seconds: the
  Deadline Alert's callback (run by the triggerer) tells the receiver the DAG, the run and how late.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest

from retrainer.datagen import IncidentSpec, seed_source
from retrainer.names import ALL_DAGS, BATCH_SCORING_DAG, TRAINING_DAG
from retrainer_launcher import airflow_api, http_client, local, processes, summary
from tests.conftest import AS_OF
from tests.integration.scheduler_stack import RUN_TIMEOUT, scheduler_stack

pytestmark = pytest.mark.e2e
SECRET = "e2e-s3cret-of-the-connection"
FIRST_DAY = AS_OF - timedelta(days=9)
BAD_DAY = AS_OF + timedelta(days=1)
BAD_RUN, LATE_RUN = "ops_bad_batch", "ops_late_scoring"
ALERT_TIMEOUT = 180
STATE: dict = {}  # what the tests of this module pass on (they run in order, on one stack)


class Receiver:
    """A local HTTP server standing in for Slack, a webhook and an HTTP endpoint: it keeps every POST."""

    def __init__(self):
        self.received: list[dict] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = {"raw": body}
                with receiver._lock:
                    receiver.received.append({"path": self.path, "headers": dict(self.headers), "body": parsed})
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def matching(self, **wanted) -> list[dict]:
        """Requests whose JSON body has every ``wanted`` value (a Slack body matches on its text)."""
        with self._lock:
            got = list(self.received)
        return [r for r in got if all(r["body"].get(k) == v for k, v in wanted.items())]

    def wait(self, what: str, select, count: int, timeout: float = ALERT_TIMEOUT, explain=None) -> list[dict]:
        """The received requests ``select`` picks, once there are ``count``; ``explain()`` adds to a failure."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                chosen = [r for r in self.received if select(r)]
            if len(chosen) >= count:
                return chosen
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: {len(chosen)} of {count} requests within {timeout}s; all received: "
                            f"{[(r['path'], r['body'].get('event'), r['body'].get('run_id')) for r in self.received]}"
                            + (f"\n{explain()}" if explain else ""))
            time.sleep(1)


def _connections(base: str) -> dict[str, str]:
    return {
        "AIRFLOW_CONN_OPS_WEBHOOK": json.dumps({"conn_type": "http", "password": f"{base}/webhook/{SECRET}"}),
        "AIRFLOW_CONN_OPS_HTTP": json.dumps(
            {"conn_type": "http", "host": base, "login": "retrainer", "password": SECRET}),
        "AIRFLOW_CONN_OPS_SLACK": json.dumps({"conn_type": "slackwebhook", "host": base, "password": f"T0/B0/{SECRET}"}),
    }


NOTIFICATIONS = [
    {"kind": "webhook", "conn_id": "ops_webhook"},
    {"kind": "http", "conn_id": "ops_http", "options": {"endpoint": "/http"}},
    {"kind": "slack_webhook", "conn_id": "ops_slack", "events": ["promotion", "quarantine", "deadline_missed"]},
]


@pytest.fixture(scope="module")
def receiver():
    hook = Receiver()
    yield hook
    hook.server.shutdown()


@pytest.fixture(scope="module")
def ops(tmp_path_factory, receiver):
    overrides = {"notifications": NOTIFICATIONS,
                 "deadlines": {"training": "6h", "drift_monitor": None, "batch_scoring": "3s"}}
    root = tmp_path_factory.mktemp("ops")
    with scheduler_stack(root / "project", FIRST_DAY, AS_OF, overrides, extra_env=_connections(receiver.base)) as running:
        yield running


def _by_kind(requests: list[dict]) -> dict[str, dict]:
    kinds = {"/webhook/": "webhook", "/http": "http", "/T0/B0/": "slack_webhook"}
    return {kind: r for r in requests for prefix, kind in kinds.items() if r["path"].startswith(prefix)}


def _wait_run(running, dag_id: str, run_id: str) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT
    while (run := airflow_api.get_run(running.api, running.token, dag_id, run_id))["state"] not in (
            airflow_api.TERMINAL_RUN_STATES):
        if time.monotonic() > deadline:
            pytest.fail(f"{dag_id}/{run_id} still {run['state']}\n{running.failure_report(dag_id, [run])}")
        time.sleep(2)
    return run


def test_make_run_leaves_every_dag_of_the_loop_unpaused_and_says_so(ops):
    stack = local.Stack(ops.root, ops.home, api_port=urlparse(ops.api).port)
    said: list[str] = []
    STATE["run_id"] = local.cmd_trigger(stack, AS_OF.isoformat(), dag_timeout=180, out=said.append)[TRAINING_DAG]
    for dag_id in ALL_DAGS:
        assert ops.rest("GET", f"dags/{dag_id}")["is_paused"] is False, dag_id
    summary.print_dag_states(stack, out=said.append)
    assert said[-1] == "DAGs           " + ", ".join(f"{dag_id} unpaused" for dag_id in ALL_DAGS)


def test_a_run_that_misses_its_deadline_alerts_with_the_dag_the_run_and_how_late(ops, receiver):
    # A day that never lands: batch_scoring's sensor waits (minutes between pokes); the deadline is 3 s.
    airflow_api.trigger_run(ops.api, ops.token, BATCH_SCORING_DAG, {"day": "2030-01-01"}, run_id=LATE_RUN)
    alerts = receiver.wait("deadline alert", lambda r: r["body"].get("run_id") == LATE_RUN
                           or LATE_RUN in str(r["body"].get("text", "")), count=3, explain=lambda: _alert_log(ops))
    by_kind = _by_kind(alerts)
    webhook = by_kind["webhook"]["body"]
    assert webhook["event"] == "deadline_missed" and webhook["dag_id"] == BATCH_SCORING_DAG
    assert webhook["run_id"] == LATE_RUN and webhook["late_seconds"] >= 0 and webhook["deadline"]
    assert f"{BATCH_SCORING_DAG} run {LATE_RUN} has not finished 3s after it was queued" in webhook["summary"]
    assert webhook["summary"].endswith(" late")
    assert by_kind["http"]["body"] == webhook
    assert webhook["summary"] in by_kind["slack_webhook"]["body"]["text"]
    # Airflow keeps the miss: the UI's deadline list of the run says so.
    deadlines = http_client.http("GET", f"{ops.api}/ui/dags/{BATCH_SCORING_DAG}/dagRuns/{LATE_RUN}/deadlines",
                                 token=ops.token)
    assert [d["missed"] for d in deadlines["deadlines"]] == [True], deadlines
    # The run keeps waiting (its sensor is rescheduled, holding no worker slot) until the stack stops.


def _alert_log(ops) -> str:
    """The triggerer's lines about deadlines and notifications (where the callbacks ran), for a failure."""
    text = processes.log_file(ops.home, "triggerer").read_text(errors="replace")
    lines = [line for line in text.splitlines() if "deadline" in line.lower() or "notification" in line]
    return "triggerer log:\n" + "\n".join(lines[-60:])


def test_a_promotion_reaches_every_notifier_through_its_connection(ops, receiver):
    run = _wait_run(ops, TRAINING_DAG, STATE["run_id"])
    assert run["state"] == "success", ops.failure_report(TRAINING_DAG, [run])
    promoted = receiver.wait("promotion", lambda r: r["body"].get("run_id") == STATE["run_id"]
                             or f"run_id: {STATE['run_id']}" in str(r["body"].get("text", "")), count=3, timeout=30)
    by_kind = _by_kind(promoted)
    webhook = by_kind["webhook"]["body"]
    assert webhook["event"] == "promotion" and webhook["version"] == "1" and webhook["dag_id"] == TRAINING_DAG
    assert webhook["summary"].endswith("v1 is champion (was none)")
    assert by_kind["http"]["body"] == webhook
    assert by_kind["http"]["headers"]["Authorization"].startswith("Basic ")  # the connection's login and password
    assert by_kind["slack_webhook"]["body"]["text"].startswith("Retrainer new champion: ")


def test_a_quarantined_batch_reaches_the_notifiers_wanting_failures_or_quarantines(ops, receiver):
    params = ops.params
    seed_source(params.source_url, params.source.table, BAD_DAY, BAD_DAY, 300, params.project.seed,
                incidents=[IncidentSpec(day=BAD_DAY, kind="unseen_category")])
    airflow_api.trigger_run(ops.api, ops.token, TRAINING_DAG, {"as_of": BAD_DAY.isoformat()}, run_id=BAD_RUN)
    assert _wait_run(ops, TRAINING_DAG, BAD_RUN)["state"] == "failed"
    quarantined = receiver.wait("quarantine", lambda r: r["body"].get("run_id") == BAD_RUN
                                or f"run_id: {BAD_RUN}" in str(r["body"].get("text", "")), count=3, timeout=30)
    webhook = _by_kind(quarantined)["webhook"]["body"]
    assert webhook["event"] == "quarantine" and webhook["task_id"] == "validate"
    assert webhook["as_of"] == BAD_DAY.isoformat() and "quarantined to: " in webhook["error"]
    assert "region" in webhook["error"]


def test_the_connections_secret_is_used_but_never_logged(ops, receiver):
    # The receiver saw the secret: in the webhook's path, the Slack token's path, the HTTP basic auth.
    paths = [r["path"] for r in receiver.received]
    assert any(SECRET in p for p in paths if p.startswith("/webhook/"))
    assert any(SECRET in p for p in paths if p.startswith("/T0/B0/"))
    logs = {}
    for dag_id, run_id, task_id in ((TRAINING_DAG, STATE["run_id"], "register"), (TRAINING_DAG, BAD_RUN, "validate")):
        ti = next(t for t in airflow_api.task_instances(ops.api, ops.token, dag_id, run_id) if t["task_id"] == task_id)
        logs[task_id] = airflow_api.task_log_tail(ops.api, ops.token, dag_id, run_id, ti, lines=100_000)
    assert "promotion notification sent through 'ops_http' (http)" in logs["register"]
    assert "quarantine notification sent through 'ops_slack' (slack_webhook)" in logs["validate"]
    for name, text in {**logs, "triggerer": processes.log_file(ops.home, "triggerer").read_text(errors="replace"),
                       "scheduler": processes.log_file(ops.home, "scheduler").read_text(errors="replace")}.items():
        assert SECRET not in text, f"the connection's secret is in the {name} log"
    task_logs = sorted(p for p in (ops.home / "logs").rglob("*.log") if "dag_id=" in str(p))
    assert task_logs and not [p for p in task_logs if SECRET in p.read_text(errors="replace")]
