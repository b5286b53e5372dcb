"""plugins/retrainer_control_room.py: the FastAPI app's routes with FastAPI's TestClient.

The auth manager and the REST API are stand-ins here (who the caller is, what they may do, what
Airflow answers); the real ones are exercised by tests/e2e/test_ui_browser.py against an api-server.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from typing import Any
from unittest import mock

import httpx
import pytest
from fastapi import HTTPException

with warnings.catch_warnings():  # Starlette would rather have httpx2; httpx is what the pin set has
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from retrainer.config import load_params
from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "plugins"))  # as Airflow does for the plugins folder
# Airflow reads its configuration when first imported: a throw-away home, not the user's ~/airflow.
_AIRFLOW_HOME = tempfile.TemporaryDirectory(prefix="retrainer-plugin-test-")  # removed at exit
with mock.patch.dict(os.environ, {"AIRFLOW_HOME": _AIRFLOW_HOME.name}):
    import retrainer_control_room as plugin  # noqa: E402

DAY = "2026-04-01"
API = "http://airflow.test"


class FakeUser:
    def __init__(self, name: str):
        self.name = name

    def get_name(self) -> str:
        return self.name


class FakeApi:
    """Answers the plugin's REST calls: (method, path) -> (status, JSON body); records each call."""

    def __init__(self, answers: dict[tuple[str, str], tuple[int, Any]]):
        self.answers = answers
        self.calls: list[dict] = []

    def __call__(self, method: str, url: str, json: Any = None, headers: dict | None = None, timeout: float = 0):
        path = url.removeprefix(f"{API}/api/v2/")
        self.calls.append({"method": method, "path": path, "json": json, "headers": headers or {}})
        if (method, path) not in self.answers:
            raise httpx.ConnectError("connection refused", request=httpx.Request(method, url))
        status, body = self.answers[(method, path)]
        return httpx.Response(status, json=body, request=httpx.Request(method, url))


@pytest.fixture
def params(make_project):
    params = load_params(make_project())
    folder = params.data_dir / "quarantine" / f"dt={DAY}"
    folder.mkdir(parents=True)
    (folder / "QUARANTINED.json").write_text(json.dumps({"reason": "critical expectations failed\nmore"}))
    report = params.reports_dir / "drift" / DAY / "report.html"
    report.parent.mkdir(parents=True)
    report.write_text("<html>report</html>")
    (params.reports_dir / "drift" / "ledger.json").write_text(json.dumps({"checks": [], "triggers": []}))
    return params


@pytest.fixture
def app(params, monkeypatch):
    """The app as user ``op`` (may look and replay), its REST calls going to a FakeApi."""
    state = {"user": FakeUser("op"), "may_post": True, "api": FakeApi({})}
    monkeypatch.setenv("RETRAINER_PARAMS", str(params.source_file))  # one params file: bare DAG ids
    monkeypatch.setattr(plugin, "may", lambda user, method, dag_id="training": method == "GET" or state["may_post"])
    monkeypatch.setenv(plugin.AIRFLOW_API_ENV, API)
    monkeypatch.setattr(httpx, "request", lambda *a, **k: state["api"](*a, **k))
    plugin.app.dependency_overrides[plugin.current_user] = lambda: state["user"]
    client = TestClient(plugin.app, root_path="/retrainer")
    client.state = state
    yield client
    plugin.app.dependency_overrides.clear()


def _run(run_id: str, state: str = "queued") -> dict:
    return {"dag_run_id": run_id, "state": state, "conf": {"as_of": DAY, "reason": "replay"}}


def test_replay_creates_the_run_through_the_rest_api_with_the_callers_token(app):
    run_id = next(q["replay_run_id"] for q in plugin.ui_data.quarantined(plugin._params()))
    app.state["api"] = FakeApi({("POST", "dags/training/dagRuns"): (200, _run(run_id))})  # a bare id: one file
    answer = app.post("/api/replay", json={"day": DAY}, headers={"Authorization": "Bearer tok-1"})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["dag_run_id"] == run_id and body["created"] is True and body["state"] == "queued"
    assert body["run_url"] == f"/dags/training/runs/{run_id}"
    (call,) = app.state["api"].calls
    assert call["headers"]["Authorization"] == "Bearer tok-1"
    assert call["json"]["dag_run_id"] == run_id and call["json"]["conf"]["as_of"] == DAY
    assert "requested by op" in call["json"]["conf"]["note"]


def test_a_second_replay_of_the_same_batch_answers_409_with_the_existing_run(app):
    run_id = next(q["replay_run_id"] for q in plugin.ui_data.quarantined(plugin._params()))
    app.state["api"] = FakeApi({
        ("POST", "dags/training/dagRuns"): (409, {"detail": "exists"}),
        ("GET", f"dags/training/dagRuns/{run_id}"): (200, _run(run_id, "running")),
    })
    answer = app.post("/api/replay", json={"day": DAY}, headers={"Authorization": "Bearer t"})
    assert answer.status_code == 409 and answer.json()["state"] == "running" and answer.json()["created"] is False


@pytest.mark.parametrize(("airflow_status", "expected"), [(403, 403), (500, 502)])
def test_airflow_refusing_the_run_is_passed_on(app, airflow_status, expected):
    app.state["api"] = FakeApi({("POST", "dags/training/dagRuns"): (airflow_status, {"detail": "nope"})})
    answer = app.post("/api/replay", json={"day": DAY})
    assert answer.status_code == expected and "Airflow refused the run" in answer.json()["detail"]


def test_an_api_that_does_not_answer_is_a_502(app):
    answer = app.post("/api/replay", json={"day": DAY})  # the FakeApi knows no route: connection refused
    assert answer.status_code == 502 and "did not answer" in answer.json()["detail"]


def test_replay_is_refused_for_roles_that_may_not_start_runs_and_for_days_not_in_quarantine(app):
    app.state["may_post"] = False
    answer = app.post("/api/replay", json={"day": DAY})
    assert answer.status_code == 403 and "may not start runs" in answer.json()["detail"]
    assert app.state["api"].calls == []
    app.state["may_post"] = True
    assert app.post("/api/replay", json={"day": "2026-03-01"}).status_code == 404
    assert app.post("/api/replay", json={"day": "yesterday"}).status_code == 422


def test_the_lineage_panel_takes_the_as_of_date_from_the_run_record(app, monkeypatch):
    seen = {}

    def fake_lineage(params, dag_id, run_id, as_of):
        seen.update(dag_id=dag_id, run_id=run_id, as_of=as_of)
        return {"dag_id": dag_id, "run_id": run_id, "as_of": as_of, "kind": "none", "partitions": [],
                "validation": [], "model": None, "decision": None, "drift": None, "trigger": None, "mlflow_run": None}

    monkeypatch.setattr(plugin.ui_data, "run_lineage", fake_lineage)
    app.state["api"] = FakeApi({("GET", "dags/training/dagRuns/manual__1"): (
        200, {"dag_run_id": "manual__1", "state": "failed", "conf": {}, "data_interval_start": "2026-03-30T00:00:00Z"})})
    answer = app.get("/api/runs/training/manual__1")
    assert answer.status_code == 200 and answer.json()["state"] == "failed"
    assert seen == {"dag_id": "training", "run_id": "manual__1", "as_of": "2026-03-30"}
    page = app.get("/runs/training/manual__1", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "Lineage · training" in page.text and "as of 2026-03-30" in page.text
    app.state["api"] = FakeApi({("GET", "dags/training/dagRuns/gone"): (404, {"detail": "no such run"})})
    answer = app.get("/api/runs/training/gone")
    assert answer.status_code == 404 and "no such run" in answer.json()["detail"]


# The exact policy: scripts run (Evidently draws its charts with them), but in an opaque origin.
# `allow-same-origin` would hand the report the viewer's Airflow session and undo the sandbox.
REPORT_CSP = "sandbox allow-scripts allow-popups allow-forms allow-downloads"


def _html_reports(params) -> dict[str, str]:
    """Every kind of HTML report the plugin serves, by the path the UI links to (reports-relative)."""
    site = params.reports_dir / "validation" / f"dt={DAY}" / "data_docs"
    page = site / "validations" / "churn_raw" / "run" / "20260401T000000Z" / "result.html"
    page.parent.mkdir(parents=True)
    for path in (site / "index.html", page):
        path.write_text("<html>data docs</html>")
    plot = params.reports_dir / "plots" / "roc.svg"  # an SVG can carry scripts too
    plot.parent.mkdir(parents=True)
    plot.write_text('<svg xmlns="http://www.w3.org/2000/svg"></svg>')
    legacy = params.reports_dir / "other" / "page.HTM"
    legacy.parent.mkdir(parents=True)
    legacy.write_text("<html>other</html>")
    kinds = {
        "Data Docs result page": plugin.ui_data.data_docs_page(params, site / "index.html"),
        "Data Docs index": plugin.ui_data.report_path(params, site / "index.html"),
        "drift report": plugin.ui_data.report_path(params, params.reports_dir / "drift" / DAY / "report.html"),
        "validation link of a run": plugin.ui_data.validation_report(params, DAY),
        "SVG": "plots/roc.svg",
        ".HTM": "other/page.HTM",
    }
    assert kinds["Data Docs result page"].endswith("result.html") and kinds["Data Docs index"].endswith("index.html")
    return kinds


def test_every_html_report_is_served_in_the_exact_sandbox(app, params):
    for kind, relative in _html_reports(params).items():
        answer = app.get(f"/reports/{relative}")
        assert answer.status_code == 200, (kind, relative)
        policy = answer.headers.get("Content-Security-Policy")
        assert policy == REPORT_CSP, (kind, policy)
        assert "allow-same-origin" not in policy and "allow-top-navigation" not in policy, kind
        assert answer.headers["X-Content-Type-Options"] == "nosniff", kind


def test_reports_are_served_only_from_the_reports_folder(app):
    answer = app.get(f"/reports/drift/{DAY}/report.html")
    assert answer.status_code == 200 and answer.text == "<html>report</html>"
    assert answer.headers["Content-Security-Policy"] == REPORT_CSP
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert app.get("/reports/drift/ledger.json").headers.get("Content-Security-Policy") is None
    assert app.get("/reports/..%2fparams.yaml").status_code == 404


def test_the_page_and_the_overview_show_the_callers_role(app):
    page = app.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "Signed in as <b>op</b> (can replay)" in page.text
    assert page.headers["Cache-Control"] == "no-store" and f'data-replay="{DAY}"' in page.text
    app.state["may_post"] = False
    assert app.get("/api/overview").json()["user"] == {"name": "op", "can_replay": False}
    assert app.get("/icon.svg").headers["content-type"].startswith("image/svg+xml")


def test_errors_are_a_page_for_browsers_and_json_for_the_rest(app):
    def no_token():
        raise HTTPException(401, "no token")

    plugin.app.dependency_overrides[plugin.current_user] = no_token
    page = app.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 401 and "Log in to Airflow" in page.text and "/auth/login/?next=" in page.text
    answer = app.get("/api/overview")
    assert answer.status_code == 401 and answer.json() == {"detail": "no token"}


@pytest.fixture
def models_app(tmp_path, app, monkeypatch):
    """The same app over a models/ deployment of two models (churn and fraud) and one broken file."""
    from tests.conftest import write_models_project

    folder = write_models_project(tmp_path / "multi", {"churn": {}, "fraud": {"source": {"table": "fraud_events"}}})
    (folder / "broken.yaml").write_text("prepare:\n  window_days: four weeks\n")
    monkeypatch.setenv("RETRAINER_PARAMS", str(folder))
    fraud = plugin._params("fraud")
    quarantine = fraud.data_dir / "quarantine" / f"dt={DAY}"
    quarantine.mkdir(parents=True)
    (quarantine / "QUARANTINED.json").write_text(json.dumps({"reason": "critical expectations failed"}))
    report = fraud.reports_dir / "drift" / DAY / "report.html"
    report.parent.mkdir(parents=True)
    report.write_text("<html>fraud report</html>")
    app.state["api"] = FakeApi({
        ("GET", "dags/training__fraud/dagRuns?order_by=-run_after&limit=1"): (200, {"dag_runs": [_run("scheduled__x", "success")]}),
        ("GET", "dags/training__churn/dagRuns?order_by=-run_after&limit=1"): (200, {"dag_runs": []}),
    })
    return app


def test_several_models_are_listed_and_each_opens_its_own_page(models_app):
    page = models_app.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "Retrainer · 2 models" in page.text
    assert 'href="/retrainer/models/churn"' in page.text and 'href="/retrainer/models/fraud"' in page.text
    assert "broken.yaml" in page.text and "prepare.window_days" in page.text  # the refused file, named
    rows = {row["name"]: row for row in models_app.get("/api/models").json()["models"]}
    assert rows["fraud"]["quarantined_days"] == [DAY] and rows["churn"]["quarantined_days"] == []
    assert rows["fraud"]["last_run"]["dag_run_id"] == "scheduled__x" and rows["churn"]["last_run"] is None
    assert rows["fraud"]["registered_name"] == "retrainer-fraud" and rows["fraud"]["training_dag"] == "training__fraud"
    fraud = models_app.get("/models/fraud", headers={"Accept": "text/html"})
    assert fraud.status_code == 200 and "Retrainer · retrainer-fraud" in fraud.text
    assert 'data-endpoint="/retrainer/models/fraud/api/replay"' in fraud.text and "training__fraud" in fraud.text
    assert models_app.get("/models/churn/api/overview").json()["model_name"] == "retrainer-churn"
    assert models_app.get("/models/nope").status_code == 404
    assert models_app.get("/models/broken/api/overview").status_code == 404


def test_reports_and_replays_stay_within_their_model(models_app):
    answer = models_app.get(f"/models/fraud/reports/drift/{DAY}/report.html")
    assert answer.status_code == 200 and answer.text == "<html>fraud report</html>"
    assert models_app.get(f"/models/churn/reports/drift/{DAY}/report.html").status_code == 404
    run_id = plugin.ui_data.quarantined(plugin._params("fraud"))[0]["replay_run_id"]
    models_app.state["api"] = FakeApi({("POST", "dags/training__fraud/dagRuns"): (200, _run(run_id))})
    answer = models_app.post("/models/fraud/api/replay", json={"day": DAY})
    assert answer.status_code == 201 and answer.json()["run_url"] == f"/dags/training__fraud/runs/{run_id}"
    assert models_app.post("/models/churn/api/replay", json={"day": DAY}).status_code == 404  # not quarantined there


def test_the_lineage_of_a_models_run_reads_that_models_params(models_app, monkeypatch):
    seen = {}

    def fake_lineage(params, dag_id, run_id, as_of):
        seen.update(model=params.model.registered_name, dag_id=dag_id)
        return {"dag_id": dag_id, "run_id": run_id, "as_of": as_of, "kind": "none", "partitions": [],
                "validation": [], "model": None, "decision": None, "drift": None, "trigger": None, "mlflow_run": None}

    monkeypatch.setattr(plugin.ui_data, "run_lineage", fake_lineage)
    models_app.state["api"] = FakeApi({("GET", "dags/training__fraud/dagRuns/manual__1"): (
        200, {"dag_run_id": "manual__1", "state": "success", "conf": {"as_of": DAY}})})
    page = models_app.get("/runs/training__fraud/manual__1", headers={"Accept": "text/html"})
    assert page.status_code == 200 and seen == {"model": "retrainer-fraud", "dag_id": "training__fraud"}
    answer = models_app.get("/api/runs/training__fraud/manual__1").json()
    assert answer["model_file"] == "fraud" and answer["model"] is None  # "model": the version the run registered
    assert 'href="/retrainer/models/fraud/"' in page.text  # back to the model's page
    assert models_app.get("/models/fraud/", headers={"Accept": "text/html"}).status_code == 200
    assert models_app.get("/api/runs/training__nope/manual__1").status_code == 404


def test_the_list_shows_only_the_models_the_caller_may_look_at(models_app, monkeypatch):
    monkeypatch.setattr(plugin, "may", lambda user, method, dag_id="training": dag_id == "training__churn")
    assert [row["name"] for row in models_app.get("/api/models").json()["models"]] == ["churn"]
    assert models_app.get("/models/fraud/api/overview").status_code == 403
