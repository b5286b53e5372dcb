"""`drift_monitor` and the training run it triggers, through Airflow itself (`airflow dags test`),
against a real SQLite source, DVC repo and MLflow store in a temporary project and AIRFLOW_HOME.

The tests share one project and run in order: drift is injected after the champion's as-of date,
the monitor decides to retrain and triggers `training` with the drift reason and report; a training
run with that conf registers a version tagged with both; once that version is champion, the next
check uses its reference and, inside the cooldown, triggers nothing.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta

import pytest

from retrainer import monitor
from retrainer.config import load_params
from retrainer.datagen import DriftSpec, seed_source
from retrainer.ingest import ingest_window
from retrainer.pipeline import run_pipeline
from tests.conftest import AS_OF, seed, write_project
from tests.e2e.test_training_dag import Airflow, _tail

pytestmark = pytest.mark.e2e
DRIFT_DAY = AS_OF + timedelta(days=1)


def dags_test(airflow: Airflow, dag_id: str, conf: dict) -> tuple[bool, str]:
    done = airflow.cli("dags", "test", dag_id, "-c", json.dumps(conf))
    output = done.stdout + done.stderr
    (airflow.home / f"last_{dag_id}.log").write_text(output)
    return done.returncode == 0 and " successful [" in output, output


def task_states(airflow: Airflow, dag_id: str) -> dict[str, str]:
    """States of the tasks of the latest run of ``dag_id`` (read from Airflow's SQLite DB by the test)."""
    with sqlite3.connect(airflow.home / "airflow.db") as db:
        run_id = db.execute(
            "select run_id from dag_run where dag_id = ? order by id desc limit 1", (dag_id,)
        ).fetchone()[0]
        rows = db.execute("select task_id, state from task_instance where dag_id = ? and run_id = ?", (dag_id, run_id))
        return dict(rows.fetchall())


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e-drift")
    # Confirm drift at its first sighting, so one check suffices (persistence has its own tests).
    params_file = write_project(root / "project", {"drift": {"persistence": {"checks": 1, "required": 1}}})
    seed(params_file, end=AS_OF, days=16, rows_per_day=300)
    params = load_params(params_file)
    drift = DriftSpec(start=DRIFT_DAY, kind="abrupt", features=("monthly_charges", "num_support_calls"), magnitude=2.0)
    seed_source(params.source_url, params.source.table, DRIFT_DAY, DRIFT_DAY + timedelta(days=2), 300,
                params.project.seed, drift=drift)
    run_pipeline(params, AS_OF, {"dag_id": "training", "reason": "manual"})
    ingest_window(params, DRIFT_DAY + timedelta(days=2), window=3)
    airflow = Airflow(root / "airflow", params_file)
    migrated = airflow.cli("db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    return airflow, params


def test_drift_monitor_reports_and_triggers_training_with_reason_and_report(stack):
    airflow, params = stack
    ok, output = dags_test(airflow, "drift_monitor", {"as_of": DRIFT_DAY.isoformat()})
    assert ok, _tail(output)

    day = DRIFT_DAY.isoformat()
    assert "decision: retrain" in output
    assert "monthly_charges=" in output and "num_support_calls=" in output
    report = f"reports/drift/{day}/report.html"
    assert (params.root / report).exists() and (params.root / f"reports/drift/{day}/report.json").exists()
    assert f"report: {params.root / report}" in output
    assert task_states(airflow, "drift_monitor") == {
        "check": "success", "should_retrain": "success", "trigger_training": "success", "record_trigger": "success"
    }

    with sqlite3.connect(airflow.home / "airflow.db") as db:
        triggered = db.execute("select run_id, conf from dag_run where dag_id = 'training'").fetchall()
    assert [run_id for run_id, _ in triggered] == [f"drift__{day}"]
    conf = json.loads(triggered[0][1])
    assert {k: conf[k] for k in ("reason", "report", "as_of")} == {"reason": "drift", "report": report, "as_of": day}
    assert [t["as_of"] for t in monitor.load_ledger(params)["triggers"]] == [day]


def test_the_triggered_training_run_tags_its_model_version_with_reason_and_report(stack):
    airflow, params = stack
    day = DRIFT_DAY.isoformat()
    conf = {"reason": "drift", "report": f"reports/drift/{day}/report.html", "as_of": day}
    ok, output = dags_test(airflow, "training", conf)
    assert ok, _tail(output)

    from retrainer.tracking import champion_summary, mlflow_client

    client = mlflow_client(params)
    version = client.get_model_version(params.model.registered_name, "2")
    assert version.tags["airflow.reason"] == "drift"
    assert version.tags["airflow.trigger_report"] == conf["report"]
    run = client.get_run(version.run_id)
    assert run.data.tags["airflow.reason"] == "drift" and run.data.tags["airflow.trigger_report"] == conf["report"]
    if champion_summary(params)["version"] != "2":
        # The statistical gate may judge the retrained model indistinguishable from the champion on this
        # small holdout; a reviewer then approves it with an override, as the promote DAG allows, and the
        # override is recorded with the reason.
        from retrainer.register import promote_version

        move = promote_version(
            params, "2", reason="drift retrain reviewed", by="e2e-reviewer", expected_champion="1", override=True
        )
        assert "override" in move.reason
    assert champion_summary(params)["version"] == "2"


def test_the_next_check_uses_the_new_champions_reference_and_respects_the_cooldown(stack):
    airflow, params = stack
    next_day = (DRIFT_DAY + timedelta(days=2)).isoformat()
    ok, output = dags_test(airflow, "drift_monitor", {"as_of": next_day})
    assert ok, _tail(output)

    summary = json.loads((params.root / f"reports/drift/{next_day}/summary.json").read_text())
    assert summary["champion"]["version"] == "2"
    assert summary["reference"]["folder"] == "data/reference/retrainer-churn/v2"
    meta = json.loads((params.root / "data/reference/retrainer-churn/v2/meta.json").read_text())
    assert meta["version"] == "2" and meta["as_of"] == DRIFT_DAY.isoformat()
    assert summary["decision"]["action"] in ("cooldown", "no_drift")
    assert task_states(airflow, "drift_monitor") == {
        "check": "success", "should_retrain": "success", "trigger_training": "skipped", "record_trigger": "skipped"
    }
    assert len(monitor.load_ledger(params)["triggers"]) == 1
