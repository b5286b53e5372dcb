"""plugins/retrainer_ui_data.py: what the control room shows, read from a real project (pipeline run,
MLflow store, GX reports, quarantine, drift ledger), without Airflow."""

from __future__ import annotations

import json
import re
import sys
from datetime import timedelta

import pytest

from retrainer.config import load_params
from retrainer.datagen import IncidentSpec, seed_source
from retrainer.errors import GateFailed
from retrainer.monitor import record_check, record_trigger
from retrainer.pipeline import run_pipeline, step_ingest, step_validate
from tests.conftest import AS_OF, REPO_ROOT, seed, write_project

sys.path.insert(0, str(REPO_ROOT / "plugins"))  # as Airflow does for the plugins folder
import retrainer_ui_data as cr  # noqa: E402

BAD_DAY = AS_OF + timedelta(days=1)
RUN_ID = "manual__2026-03-31T10:00:00+00:00"


def _bad_batch(params) -> None:
    seed_source(params.source_url, params.source.table, BAD_DAY, BAD_DAY, 300, params.project.seed,
                incidents=[IncidentSpec(day=BAD_DAY, kind="unseen_category")])
    with pytest.raises(GateFailed):
        step_validate(params, BAD_DAY, step_ingest(params, BAD_DAY))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A champion trained by the pipeline as of AS_OF, and the next day's bad batch in quarantine."""
    params_file = write_project(tmp_path_factory.mktemp("control-room") / "project",
                                {"prepare": {"window_days": 7, "holdout_days": 2}})
    seed(params_file, end=AS_OF, days=8, rows_per_day=300)
    params = load_params(params_file)
    run_pipeline(params, AS_OF, {"dag_id": "training", "run_id": RUN_ID, "reason": "manual"})
    _bad_batch(params)
    return params


def _docs_page(relative: str | None, day) -> bool:
    """A Data Docs validation result page of ``day``'s partition (static HTML, not the CDN-drawn index)."""
    return bool(relative) and re.fullmatch(
        rf"validation/dt={day.isoformat()}/data_docs/validations/churn_raw/.+\.html", relative
    ) is not None


# ------------------------------------------------------------------------------------------ reports


def test_report_file_serves_only_files_inside_the_reports_folder(make_project, tmp_path):
    params = load_params(make_project())
    good = params.reports_dir / "drift" / "2026-03-31" / "report.html"
    good.parent.mkdir(parents=True)
    good.write_text("<html>report</html>")
    (params.reports_dir / "drift" / ".ledger.json.lock").write_text("")
    secret = tmp_path / "secret.txt"
    secret.write_text("not a report")
    (params.reports_dir / "escape.html").symlink_to(secret)

    assert cr.report_file(params, "drift/2026-03-31/report.html") == good.resolve()
    refused = ["", "/etc/passwd", "../params.yaml", "drift/../../params.yaml", "drift/2026-03-31/../../../x",
               "drift/.ledger.json.lock", "drift", "drift/2026-03-31/missing.html", "escape.html", "a\x00b",
               str(good), "..\\params.yaml"]
    for path in refused:
        with pytest.raises(cr.ReportNotFound):
            cr.report_file(params, path)


def test_report_paths_and_urls(make_project):
    params = load_params(make_project())
    inside = params.reports_dir / "validation" / "dt=2026-03-31" / "data_docs" / "index.html"
    assert cr.report_path(params, inside) == "validation/dt=2026-03-31/data_docs/index.html"
    assert cr.report_path(params, "reports/drift/2026-03-31/report.html") == "drift/2026-03-31/report.html"
    assert cr.report_path(params, params.data_dir / "raw") is None
    assert cr.report_path(params, None) is None
    assert cr.report_url("drift/a b.html", "http://h:1/") == "http://h:1/retrainer/reports/drift/a%20b.html"
    assert cr.report_url(None) is None


def test_mlflow_links_come_from_the_ui_url_or_an_http_tracking_server(make_project, monkeypatch):
    monkeypatch.delenv(cr.MLFLOW_UI_ENV, raising=False)
    local = load_params(make_project())
    assert cr.mlflow_ui_url(local) is None
    assert cr.mlflow_run_link(None, "1", "abc") is None
    remote = load_params(make_project({"mlflow": {"tracking_uri": "http://mlflow:5000/"}}))
    assert cr.mlflow_ui_url(remote) == "http://mlflow:5000"
    monkeypatch.setenv(cr.MLFLOW_UI_ENV, "http://localhost:5001/")
    assert cr.mlflow_ui_url(local) == "http://localhost:5001"
    assert cr.mlflow_run_link("http://u", "3", "r1") == "http://u/#/experiments/3/runs/r1"
    assert cr.mlflow_version_link("http://u", "churn model", "2") == "http://u/#/models/churn%20model/versions/2"


# ------------------------------------------------------------------------------------------ models


def test_model_card_of_the_champion(project, monkeypatch):
    monkeypatch.delenv(cr.MLFLOW_UI_ENV, raising=False)
    card = cr.model_card(project, "champion")
    assert card["version"] == "1" and card["aliases"] == ["challenger", "champion"]
    assert card["metric_name"] == "holdout_roc_auc" and 0.5 < card["metric_value"] <= 1.0
    assert card["as_of"] == AS_OF.isoformat()
    assert card["train_days"] == {"first": (AS_OF - timedelta(days=6)).isoformat(),
                                  "last": (AS_OF - timedelta(days=2)).isoformat(), "count": 5}
    assert card["holdout_days"]["count"] == 2 and card["holdout_days"]["last"] == AS_OF.isoformat()
    assert card["trained_by"]["run_id"] == RUN_ID and card["trained_by"]["dag_id"] == "training"
    assert card["gate"] == "passed"
    assert card["promoted"]["action"] == "auto" and card["promoted"]["by"] == f"training/{RUN_ID}"
    decision = card["decision"]
    assert decision["header"][0] == "check" and decision["rows"][0][0] == "roc_auc floor"
    assert decision["promote"] is True and decision["verdict"].startswith("PASSED")
    assert card["links"] == {"mlflow_run": None, "mlflow_version": None}
    monkeypatch.setenv(cr.MLFLOW_UI_ENV, "http://localhost:5000")
    linked = cr.model_card(project, "champion")
    assert linked["links"]["mlflow_run"] == f"http://localhost:5000/#/experiments/{linked['experiment_id']}/runs/{linked['run_id']}"
    assert linked["links"]["mlflow_version"].endswith(f"/versions/{linked['version']}")
    assert cr.model_card(project, "champion-previous") is None


def test_promotion_history_is_newest_first(project):
    history = cr.promotion_history(project)
    assert [h["version"] for h in history] == ["1"] and history[0]["action"] == "auto"


# ------------------------------------------------------------------------------------------ gate and quarantine


def test_gate_results_per_day(project):
    gates = {g["day"]: g for g in cr.gate_results(project)}
    assert gates[BAD_DAY.isoformat()]["status"] == "fail" and gates[BAD_DAY.isoformat()]["quarantined"]
    assert any(f["column"] == "region" and "mars" in f["examples"] for f in gates[BAD_DAY.isoformat()]["failed"])
    good = gates[AS_OF.isoformat()]
    assert good["status"] in ("pass", "warn") and not good["quarantined"]
    assert _docs_page(good["data_docs"], AS_OF)
    assert list(gates) == sorted(gates, reverse=True)
    assert len(cr.gate_results(project, limit=2)) == 2


def test_quarantined_partitions_and_their_replay(project):
    (entry,) = cr.quarantined(project)
    assert entry["day"] == BAD_DAY.isoformat() and entry["batches"] == 1
    assert "expect_column_values_to_be_in_set" in entry["reason"] or entry["failed"]
    assert re.fullmatch(rf"replay__{BAD_DAY.isoformat()}__1-[0-9a-f]{{8}}", entry["replay_run_id"])
    assert _docs_page(entry["data_docs"], BAD_DAY)

    planned = cr.replay_request(project, BAD_DAY.isoformat(), "op")
    assert planned["dag_id"] == "training"
    assert planned["body"]["dag_run_id"] == entry["replay_run_id"] and planned["body"]["logical_date"] is None
    assert planned["body"]["conf"]["as_of"] == BAD_DAY.isoformat() and planned["body"]["conf"]["reason"] == "replay"
    assert "requested by op" in planned["body"]["conf"]["note"]
    for day in (AS_OF.isoformat(), "yesterday", "2026-13-99/../x"):
        with pytest.raises(cr.NotQuarantined):
            cr.replay_request(project, day, "op")
    # The validate task's link: the failing partition's Data Docs.
    assert _docs_page(cr.validation_report(project, BAD_DAY.isoformat()), BAD_DAY)
    assert _docs_page(cr.validation_report(project, AS_OF.isoformat()), AS_OF)
    assert cr.validation_report(project, "2020-01-01") is None


def test_a_replay_that_fails_again_gets_a_new_run_id(project):
    first = cr.quarantined(project)[0]["replay_run_id"]
    _bad_batch(project)  # what the replay run does when the source is still bad
    (entry,) = cr.quarantined(project)
    assert entry["batches"] == 2 and entry["replay_run_id"] != first
    assert entry["replay_run_id"].startswith(f"replay__{BAD_DAY.isoformat()}__2-")


# ------------------------------------------------------------------------------------------ drift


def test_drift_history_marks_triggered_retrains(make_project):
    params = load_params(make_project())
    assert cr.drift_history(params) == {"threshold": params.drift.drift_share, "checks": []}
    for day, share, signal in (("2026-03-29", 0.05, False), ("2026-03-30", 0.4, True), ("2026-03-31", 0.45, True)):
        record_check(params, {"as_of": day, "drifted_share": share, "drifted_columns": {"tenure": 0.3} if signal else {},
                              "signal": signal, "inconclusive": False, "decision": "retrain" if day == "2026-03-30" else "cooldown",
                              "report_html": f"reports/drift/{day}/report.html", "champion_version": "1"})
    record_trigger(params, "2026-03-30", "drift__2026-03-30", "reports/drift/2026-03-30/report.html", "1")
    drift = cr.drift_history(params)
    assert [c["as_of"] for c in drift["checks"]] == ["2026-03-29", "2026-03-30", "2026-03-31"]
    assert [c["triggered"] for c in drift["checks"]] == [False, True, False]
    assert drift["checks"][1]["training_run_id"] == "drift__2026-03-30"
    assert drift["checks"][2]["report"] == "drift/2026-03-31/report.html"
    assert drift["checks"][1]["drifted_columns"] == ["tenure"]
    assert len(cr.drift_history(params, limit=2)["checks"]) == 2


def test_overview_reports_a_broken_section_instead_of_failing(make_project):
    params = load_params(make_project())
    ledger = params.drift_reports_dir / "ledger.json"
    ledger.parent.mkdir(parents=True)
    ledger.write_text("{not json")
    data = cr.overview(params)
    assert data["drift"] is None and "ledger" in data["errors"]["drift"]
    assert data["champion"] is None and data["quarantine"] == [] and data["gates"] == []
    assert "champion" not in data["errors"]


# ------------------------------------------------------------------------------------------ lineage


def test_run_lineage_of_a_training_run(project, monkeypatch):
    monkeypatch.delenv(cr.MLFLOW_UI_ENV, raising=False)
    lineage = cr.run_lineage(project, "training", RUN_ID)
    assert lineage["kind"] == "training" and lineage["as_of"] == AS_OF.isoformat()
    assert [p["split"] for p in lineage["partitions"]].count("train") == 5
    assert all(re.fullmatch(r"[0-9a-f]{32}", p["md5"]) for p in lineage["partitions"])
    assert lineage["model"]["version"] == "1" and lineage["model"]["gate"] == "passed"
    assert lineage["model"]["champion_since"]
    assert lineage["decision"]["promote"] is True
    assert {v["day"] for v in lineage["validation"]} >= {AS_OF.isoformat()}
    assert json.dumps(lineage)  # JSON-safe, as the API serves it


def test_run_lineage_of_a_run_without_mlflow_run_shows_its_validation(project):
    lineage = cr.run_lineage(project, "training", "manual__bad", as_of=BAD_DAY.isoformat())
    assert lineage["kind"] == "none" and lineage["model"] is None
    (entry,) = lineage["validation"]
    assert entry["day"] == BAD_DAY.isoformat() and entry["success"] is False
    assert _docs_page(entry["data_docs"], BAD_DAY)
    for dag_id, run_id in (("training", "x' or '1'='1"), ("a b", "run"), ("training", "")):
        with pytest.raises(LookupError):
            cr.run_lineage(project, dag_id, run_id)


def test_the_lineage_view_takes_the_as_of_date_from_the_run_record():
    assert cr.record_as_of({"conf": {"as_of": "2026-03-30"}, "data_interval_start": "2026-03-31T00:00:00Z"}) == "2026-03-30"
    assert cr.record_as_of({"conf": {}, "data_interval_start": "2026-03-31T00:00:00Z"}) == "2026-03-31"
    assert cr.record_as_of({"conf": None, "data_interval_start": None, "run_after": "2026-04-01T10:00:00+00:00"}) == "2026-04-01"
    assert cr.record_as_of({"conf": {}}) is None


def test_the_ui_data_does_not_import_airflow():
    source = open(cr.__file__, encoding="utf-8").read()
    assert "import airflow" not in source and "from airflow" not in source


def test_report_urls_of_a_model_go_under_its_own_route():
    assert cr.report_url("drift/2026-04-01/report.html", "http://af/") == "http://af/retrainer/reports/drift/2026-04-01/report.html"
    assert cr.report_url("validation/dt=2026-04-01/v.json", "", "fraud") == "/retrainer/models/fraud/reports/validation/dt=2026-04-01/v.json"
    assert cr.report_url(None, "", "fraud") is None
