"""plugins/retrainer_operators.py: each operator runs its library step and pushes its link for the UI.

The operators' real ``execute`` runs with a fake task instance (it records the XComs pushed); the
library steps behind them are replaced by stand-ins returning what the real steps return, so no
scheduler, GX, MLflow or Evidently is needed. A failed gate still pushes the validate link.
"""

from __future__ import annotations

import sys
from datetime import datetime
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from retrainer import errors
from retrainer.config import PARAMS_ENV, load_params
from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "plugins"))  # as Airflow does for the plugins folder
import retrainer_operators as ops  # noqa: E402

AS_OF = "2026-03-31"
BASE = "https://airflow.example"
FACTS = {"as_of": AS_OF, "dag_id": "training", "run_id": "manual__2026-03-31/x", "run_type": "manual",
         "reason": "manual", "window_days": None, "force": False, "note": "", "trigger_report": "",
         "try_number": "1", "ui_url": f"{BASE}/dags/training/runs/manual__2026-03-31%2Fx"}


class FakeTI:
    """The part of a task instance the operators use: xcom_push."""

    def __init__(self, fail: bool = False):
        self.pushed: dict[str, object] = {}
        self.fail = fail
        self.try_number = 1

    def xcom_push(self, key: str, value: object) -> None:
        if self.fail:
            raise RuntimeError("XCom backend down")
        self.pushed[key] = value


@pytest.fixture
def project(make_project, monkeypatch):
    """A project the operators' task_params() finds, links made against [api] base_url."""
    path = make_project()
    monkeypatch.setenv(PARAMS_ENV, str(path))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE + "/")
    monkeypatch.delenv("RETRAINER_MLFLOW_UI_URL", raising=False)
    return load_params(path)


def test_each_step_operator_carries_one_link_under_its_own_key():
    links = {cls.__name__: [type(link) for link in cls.operator_extra_links]
             for cls in (ops.ValidateOperator, ops.TrainOperator, ops.RegisterOperator, ops.DriftCheckOperator)}
    assert links == {"ValidateOperator": [ops.DataDocsLink], "TrainOperator": [ops.MlflowRunLink],
                     "RegisterOperator": [ops.MlflowModelVersionLink], "DriftCheckOperator": [ops.DriftReportLink]}
    keys = [link.link_key for link in (ops.DataDocsLink, ops.MlflowRunLink, ops.MlflowModelVersionLink,
                                       ops.DriftReportLink)]
    assert len(set(keys)) == 4 and all(keys)
    # Like the TaskFlow tasks they replace (-> dict): each key of the result is its own XCom too.
    assert ops.TrainOperator(task_id="train", prepared={}).multiple_outputs is True


def test_a_link_is_the_url_pushed_under_its_key(monkeypatch):
    from airflow.sdk.execution_time.xcom import XCom

    asked = []

    def get_value(*, ti_key, key):
        asked.append((ti_key, key))
        return {ops.DriftReportLink.link_key: "/retrainer/reports/drift/x.html"}.get(key)

    monkeypatch.setattr(XCom, "get_value", get_value)
    operator = ops.DriftCheckOperator(task_id="check")
    assert ops.DriftReportLink().get_link(operator, ti_key="key-1") == "/retrainer/reports/drift/x.html"
    assert ops.DataDocsLink().get_link(operator, ti_key="key-1") == ""  # nothing pushed: no link
    assert asked == [("key-1", ops.DriftReportLink.link_key), ("key-1", ops.DataDocsLink.link_key)]


def test_a_link_that_cannot_be_stored_never_fails_the_task(caplog):
    ti = FakeTI(fail=True)
    ops._push_link({"ti": ti}, ops.MlflowRunLink, "http://mlflow/x")
    assert ti.pushed == {} and "could not store the 'MLflow run' link" in caplog.text
    ti = FakeTI()
    ops._push_link({"ti": ti}, ops.MlflowRunLink, None)
    assert ti.pushed == {ops.MlflowRunLink.link_key: ""}


def test_validate_links_the_data_docs_even_when_the_gate_fails(project, monkeypatch):
    import retrainer.pipeline

    docs = project.reports_dir / "validation" / f"dt={AS_OF}" / "data_docs" / "index.html"
    docs.parent.mkdir(parents=True)
    docs.write_text("<html></html>")
    ingested = {"run": FACTS, "ingest": {"as_of_rows": 300}}
    summary = {"partitions": [{"day": AS_OF, "report_json": "r.json", "warnings": []}]}
    calls = []
    monkeypatch.setattr(retrainer.pipeline, "step_validate", lambda params, as_of, ingest: calls.append(
        (params.root, as_of, ingest)) or summary)

    ti = FakeTI()
    result = ops.ValidateOperator(task_id="validate", ingested=ingested).execute({"ti": ti})
    assert result == {"run": FACTS, "validation": summary}
    assert calls == [(project.root, datetime(2026, 3, 31).date(), ingested["ingest"])]
    url = f"{BASE}/retrainer/reports/validation/dt={AS_OF}/data_docs/index.html"
    assert ti.pushed == {ops.DataDocsLink.link_key: url}

    def gate_fails(*_):
        raise errors.GateFailed("raw gate failed: 2 expectations (see the Data Docs)")

    monkeypatch.setattr(retrainer.pipeline, "step_validate", gate_fails)
    ti = FakeTI()
    with pytest.raises(AirflowFailException, match="raw gate failed"):
        ops.ValidateOperator(task_id="validate", ingested=ingested).execute({"ti": ti})
    assert ti.pushed == {ops.DataDocsLink.link_key: url}


def test_validate_without_params_fails_and_pushes_no_link(monkeypatch, tmp_path):
    monkeypatch.setenv(PARAMS_ENV, str(tmp_path / "missing.yaml"))
    ti = FakeTI()
    with pytest.raises(AirflowFailException):
        ops.ValidateOperator(task_id="validate", ingested={"run": FACTS, "ingest": {}}).execute({"ti": ti})
    assert ti.pushed == {}


def test_train_links_the_mlflow_run_else_the_runs_lineage_page(project, monkeypatch):
    import retrainer.pipeline
    import retrainer.tracking

    trained = {"run_id": "abc123", "reused": False, "metrics": {"holdout_roc_auc": 0.8123}}
    seen = []
    monkeypatch.setattr(retrainer.pipeline, "step_train",
                        lambda params, prepared, context: seen.append((prepared, context)) or trained)
    client = SimpleNamespace(get_run=lambda run_id: SimpleNamespace(info=SimpleNamespace(experiment_id="7")))
    monkeypatch.setattr(retrainer.tracking, "mlflow_client", lambda params: client)
    prepared = {"run": FACTS, "prepared": {"run_key": "k"}}

    ti = FakeTI()  # a local MLflow store has no UI: the link is the run's lineage panel in the control room
    result = ops.TrainOperator(task_id="train", prepared=prepared).execute({"ti": ti})
    assert result == {**prepared, "trained": trained}
    assert ti.pushed == {ops.MlflowRunLink.link_key: f"{BASE}/retrainer/runs/training/manual__2026-03-31%2Fx"}
    # Only the run's identity and why it ran go on the MLflow run (not the as-of date or window).
    assert seen[0] == ({"run_key": "k"}, {k: FACTS[k] for k in ("dag_id", "run_id", "run_type", "try_number",
                                                                 "reason", "note", "trigger_report", "ui_url")})

    monkeypatch.setenv("RETRAINER_MLFLOW_UI_URL", "http://mlflow.example:5000/")
    ti = FakeTI()
    ops.TrainOperator(task_id="train", prepared=prepared).execute({"ti": ti})
    assert ti.pushed == {ops.MlflowRunLink.link_key: "http://mlflow.example:5000/#/experiments/7/runs/abc123"}


def test_register_links_the_model_version(project, monkeypatch):
    import retrainer.pipeline

    registered = {"name": "churn model", "version": "3", "aliases": ["challenger"], "status": "challenger",
                  "note": "gate passed"}
    monkeypatch.setattr(retrainer.pipeline, "step_register", lambda params, trained, evaluated, facts: registered)
    evaluated = {"run": FACTS, "trained": {"run_id": "abc123"}, "evaluated": {"passed": True}}

    ti = FakeTI()
    assert ops.RegisterOperator(task_id="register", evaluated=evaluated).execute({"ti": ti}) == registered
    assert ti.pushed == {ops.MlflowModelVersionLink.link_key: f"{BASE}/retrainer/runs/training/manual__2026-03-31%2Fx"}

    monkeypatch.setenv("RETRAINER_MLFLOW_UI_URL", "http://mlflow.example:5000")
    ti = FakeTI()
    ops.RegisterOperator(task_id="register", evaluated=evaluated).execute({"ti": ti})
    assert ti.pushed == {ops.MlflowModelVersionLink.link_key: "http://mlflow.example:5000/#/models/churn%20model/versions/3"}


def test_drift_check_runs_on_the_runs_as_of_date_and_links_its_report(project, monkeypatch):
    import retrainer.monitor

    report = "reports/drift/2026-04-06/report.html"
    summary = {
        "as_of": "2026-04-06", "summary_line": "drifted share 0.40 (2/5): tenure, region",
        "decision": {"action": "retrain", "retrain": True, "note": "2 of 3 checks", "reasons": ["dataset drift"]},
        "report_html": report, "report_json": "reports/drift/2026-04-06/report.json",
        "summary_json": "reports/drift/2026-04-06/summary.json", "mlflow_run_id": "m1",
        "champion": {"version": "2"}, "trigger_conf": {"reason": "drift", "report": report, "as_of": "2026-04-06"},
        "trigger_run_id": "drift__2026-04-06",
    }
    calls = []
    monkeypatch.setattr(retrainer.monitor, "run_check", lambda params, as_of, window, context: calls.append(
        (as_of, window, context)) or summary)
    events = {"retrainer_raw_partitions": [SimpleNamespace(extra={"days": ["2026-04-06", "2026-04-05"]})]}
    run = SimpleNamespace(dag_id="drift_monitor", run_id="asset__1", run_type="asset_triggered", conf={},
                          run_after=datetime(2026, 4, 9, 3, 0))
    ti = FakeTI()
    context = {"dag_run": run, "params": {"window_days": 1}, "triggering_asset_events": events, "ti": ti}

    result = ops.DriftCheckOperator(task_id="check").execute(context)
    # The newest day of the triggering asset events, a one-day window allowed for a check.
    assert calls == [(datetime(2026, 4, 6).date(), 1,
                      {"dag_id": "drift_monitor", "run_id": "asset__1", "run_type": "asset_triggered"})]
    assert result == {
        "as_of": "2026-04-06", "action": "retrain", "retrain": True, "summary_line": summary["summary_line"],
        "report_html": report, "summary_json": summary["summary_json"], "mlflow_run_id": "m1",
        "champion_version": "2", "trigger_conf": summary["trigger_conf"], "trigger_run_id": "drift__2026-04-06",
    }
    assert ti.pushed == {ops.DriftReportLink.link_key: f"{BASE}/retrainer/reports/drift/2026-04-06/report.html"}
