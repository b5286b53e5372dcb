"""Approval in the training run (``registry.promotion: manual``) through a real scheduler and API server.

One stack for the module (scheduler, dag-processor, triggerer, api-server with the plugins; the stack
users admin, op and viewer). Each `training` run trains a model with no champion to beat, so it passes
the gate and its `approve` task waits in Airflow's `awaiting_input` state; the tests answer through the
REST API the UI's *Required actions* uses (`/api/v2/.../taskInstances/approve/-1/hitlDetails`):

* the page shows the gate decision table, both models' metrics and the links, and a viewer's answer is
  refused by the API server (403) while the request stays open;
* *Reject* (by op, with a reason) leaves the champion unset and records who and why;
* no answer within a tiny `registry.approval_timeout` rejects and says so;
* with `registry.approvers: [admin]`, op (who may trigger `promote`) is refused (403); *Approve* by admin
  moves the champion, recorded in the champion history.

The tests share the stack and run in order.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from retrainer.approval import APPROVE, REJECT
from retrainer.evaluate.decision import Decision
from retrainer.names import CHAMPION, TRAINING_DAG
from retrainer.tracking import (
    APPROVAL_BY_TAG,
    APPROVAL_REASON_TAG,
    APPROVAL_TAG,
    alias_version,
    champion_history,
    mlflow_client,
)
from retrainer_launcher import airflow_api, credentials, http_client
from tests.conftest import AS_OF
from tests.integration.scheduler_stack import RUN_TIMEOUT, Stack, scheduler_stack

pytestmark = pytest.mark.e2e
FIRST_DAY = AS_OF - timedelta(days=12)
TASK = "approve"
REJECTED_RUN, TIMED_OUT_RUN, APPROVED_RUN = "approval_rejected", "approval_timed_out", "approval_approved"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("approval")
    with scheduler_stack(root / "project", FIRST_DAY, AS_OF, {"registry": {"promotion": "manual"}}) as running:
        airflow_api.wait_for_dag(running.api, running.token, TRAINING_DAG, 120, out=lambda _m: None)
        airflow_api.set_paused(running.api, running.token, TRAINING_DAG, paused=False)
        yield running


def token(running: Stack, user: str) -> str:
    return airflow_api.api_token(running.api, user, credentials.ensure_admin_password(running.home, user))


def hitl_path(run_id: str) -> str:
    return f"dags/{TRAINING_DAG}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances/{TASK}/-1/hitlDetails"


def answer(running: Stack, run_id: str, user: str, option: str, comment: str) -> tuple[int, object]:
    """(status, body) of the answer ``user`` gives through the REST API; never raises on an HTTP error."""
    body = {"chosen_options": [option], "params_input": {"comment": comment}}
    try:
        return 200, http_client.http("PATCH", f"{running.api}/api/v2/{hitl_path(run_id)}", body, token(running, user))
    except http_client.HttpError as exc:
        return exc.status, exc.body


def task_state(running: Stack, run_id: str, task_id: str) -> str | None:
    ti = running.rest("GET", f"dags/{TRAINING_DAG}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances/{task_id}")
    return ti.get("state")


def start_and_wait_for_the_request(running: Stack, run_id: str, as_of: str) -> None:
    """Trigger a run and wait until its approval task waits for a person (awaiting_input)."""
    airflow_api.trigger_run(running.api, running.token, TRAINING_DAG, {"as_of": as_of}, run_id=run_id)
    deadline = time.monotonic() + RUN_TIMEOUT
    while (state := task_state(running, run_id, TASK)) != "awaiting_input":
        run = airflow_api.get_run(running.api, running.token, TRAINING_DAG, run_id)
        if run["state"] in airflow_api.TERMINAL_RUN_STATES or time.monotonic() > deadline:
            pytest.fail(f"{run_id}: {TASK} is {state}, run {run['state']}\n{running.failure_report(TRAINING_DAG, [run])}")
        time.sleep(2)


def wait_run(running: Stack, run_id: str, timeout: float = RUN_TIMEOUT) -> dict:
    deadline = time.monotonic() + timeout
    while (run := airflow_api.get_run(running.api, running.token, TRAINING_DAG, run_id))["state"] not in (
        airflow_api.TERMINAL_RUN_STATES
    ):
        if time.monotonic() > deadline:
            pytest.fail(f"{run_id} still {run['state']} after {timeout:.0f}s\n{running.failure_report(TRAINING_DAG, [run])}")
        time.sleep(2)
    return run


def registered(running: Stack, run_id: str) -> dict:
    return running.rest(
        "GET", f"dags/{TRAINING_DAG}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances/register/xcomEntries/return_value"
    )["value"]


def decision_record(running: Stack, run_id: str) -> dict:
    evaluated = running.rest(
        "GET", f"dags/{TRAINING_DAG}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances/evaluate/xcomEntries/evaluated"
    )["value"]
    return json.loads(Path(evaluated["decision_path"]).read_text())


def version_tags(running: Stack, version: str) -> dict:
    params = running.params
    return mlflow_client(params).get_model_version(params.model.registered_name, version).tags


def set_registry(running: Stack, **values) -> None:
    """Change registry settings in the stack's params.yaml (the approval task reads them when it runs)."""
    path = Path(running.env["RETRAINER_PARAMS"])
    raw = yaml.safe_load(path.read_text())
    raw["registry"].update(values)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def test_the_request_shows_the_decision_and_a_viewer_may_not_answer(stack):
    start_and_wait_for_the_request(stack, REJECTED_RUN, (AS_OF - timedelta(days=2)).isoformat())
    detail = stack.rest("GET", hitl_path(REJECTED_RUN))
    version = registered(stack, REJECTED_RUN)["version"]
    decision = Decision.from_dict(decision_record(stack, REJECTED_RUN))
    assert detail["subject"].startswith(f"Approve {stack.params.model.registered_name} v{version} as champion?")
    body = detail["body"]
    assert f"### Gate decision: {decision.verdict}" in body and "| roc_auc floor |" in body
    assert "### Metrics on the same holdout" in body and f"| roc_auc | {decision.challenger_metrics['roc_auc']:.4f} |" in body
    assert "- [MLflow run of the challenger](" in body and "- [Data Docs of the as-of day](" in body
    assert "No answer within 3 days" in body
    assert detail["options"] == [APPROVE, REJECT] and detail["defaults"] == [REJECT]
    assert list(detail["params"]) == ["comment"]  # the form has only its own field, none of the DAG's

    ti = {"task_id": TASK, "try_number": 1, "map_index": -1}
    log = airflow_api.task_log_tail(stack.api, stack.token, TRAINING_DAG, REJECTED_RUN, ti, 200)
    assert f"approval needed in {TRAINING_DAG} (run {REJECTED_RUN})" in log  # the notifier was called
    assert f"/dags/{TRAINING_DAG}/runs/{REJECTED_RUN}/tasks/{TASK}/required_actions" in log

    status, refused = answer(stack, REJECTED_RUN, "viewer", APPROVE, "a viewer tries")
    assert status == 403, refused
    assert task_state(stack, REJECTED_RUN, TASK) == "awaiting_input"
    assert stack.rest("GET", hitl_path(REJECTED_RUN))["response_received"] is False
    assert alias_version(stack.params, CHAMPION) is None


def test_reject_records_who_and_why_and_keeps_the_champion(stack):
    status, body = answer(stack, REJECTED_RUN, "op", REJECT, "holdout too small to trust")
    assert status == 200, body
    assert wait_run(stack, REJECTED_RUN)["state"] == "success"
    assert task_state(stack, REJECTED_RUN, "apply_approval") == "success"
    version = registered(stack, REJECTED_RUN)["version"]
    assert alias_version(stack.params, CHAMPION) is None
    tags = version_tags(stack, version)
    assert tags[APPROVAL_TAG] == "rejected_manual"
    assert tags[APPROVAL_BY_TAG] == f"op via {TRAINING_DAG}/{REJECTED_RUN}"
    assert tags[APPROVAL_REASON_TAG] == "holdout too small to trust"
    record = decision_record(stack, REJECTED_RUN)["approval"]
    assert (record["option"], record["by"], record["status"]) == (REJECT, "op", "rejected_manual")


def test_no_answer_within_the_approval_timeout_rejects_and_says_so(stack):
    set_registry(stack, approval_timeout="5s")
    try:
        start_and_wait_for_the_request(stack, TIMED_OUT_RUN, (AS_OF - timedelta(days=1)).isoformat())
        assert "No answer within 5 seconds" in stack.rest("GET", hitl_path(TIMED_OUT_RUN))["body"]
        assert wait_run(stack, TIMED_OUT_RUN)["state"] == "success"  # the scheduler's sweep answered Reject
    finally:
        set_registry(stack, approval_timeout="3d")
    detail = stack.rest("GET", hitl_path(TIMED_OUT_RUN))
    assert detail["chosen_options"] == [REJECT] and detail["responded_by_user"] is None
    version = registered(stack, TIMED_OUT_RUN)["version"]
    tags = version_tags(stack, version)
    assert tags[APPROVAL_TAG] == "rejected_timeout" and tags[APPROVAL_BY_TAG] == f"timeout via {TRAINING_DAG}/{TIMED_OUT_RUN}"
    record = decision_record(stack, TIMED_OUT_RUN)["approval"]
    assert record["timed_out"] is True and "no answer within 5 seconds (registry.approval_timeout)" in record["note"]
    assert alias_version(stack.params, CHAMPION) is None


def test_only_listed_approvers_may_answer_and_approve_moves_the_champion(stack):
    set_registry(stack, approvers=["admin"])
    try:
        start_and_wait_for_the_request(stack, APPROVED_RUN, AS_OF.isoformat())
    finally:
        set_registry(stack, approvers=[])
    assert stack.rest("GET", hitl_path(APPROVED_RUN))["assigned_users"] == [{"id": "admin", "name": "admin"}]
    status, refused = answer(stack, APPROVED_RUN, "op", APPROVE, "op may trigger promote, but is not listed")
    assert status == 403 and "not a respondent" in str(refused)
    status, body = answer(stack, APPROVED_RUN, "admin", APPROVE, "reviewed the slices")
    assert status == 200, body
    assert wait_run(stack, APPROVED_RUN)["state"] == "success"
    version = registered(stack, APPROVED_RUN)["version"]
    assert alias_version(stack.params, CHAMPION) == version
    last = champion_history(stack.params)[-1]
    assert (last["action"], last["version"], last["previous"]) == ("promote", version, None)
    assert (last["by"], last["reason"]) == (f"admin via {TRAINING_DAG}/{APPROVED_RUN}", "reviewed the slices")
    assert version_tags(stack, version)[APPROVAL_TAG] == "approved_manual"
    # A second answer to the same request is refused: the request is closed.
    status, _ = answer(stack, APPROVED_RUN, "admin", REJECT, "changed my mind")
    assert status == 409
