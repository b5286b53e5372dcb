"""One drift check as the `drift_monitor` DAG runs it, without Airflow: a real SQLite source, DVC repo
and MLflow store, a champion trained by the pipeline, and generated days with injected drift.

The tests share one project and run in order (the ledger accumulates like a real one).
"""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from retrainer import monitor
from retrainer.config import load_params
from retrainer.datagen import DriftSpec, seed_source
from retrainer.drift import ReferenceProfile
from retrainer.errors import NoChampion
from retrainer.ingest import ingest_window
from retrainer.pipeline import run_pipeline
from tests.conftest import AS_OF, seed

DRIFT_START = AS_OF + timedelta(days=4)
CONCEPT_START = AS_OF + timedelta(days=30)


def day(offset: int):
    return AS_OF + timedelta(days=offset)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from tests.conftest import write_project

    params = load_params(write_project(tmp_path_factory.mktemp("monitor") / "project"))
    seed(params.source_file, end=day(3), days=19)
    covariate = DriftSpec(start=DRIFT_START, kind="abrupt", features=("monthly_charges", "num_support_calls"))
    seed_source(params.source_url, params.source.table, day(4), day(12), 300, params.project.seed, drift=covariate)
    # Pure concept drift: the features keep their distribution, the label's relation to them changes.
    concept = DriftSpec(start=CONCEPT_START, features=(), concept=True, magnitude=1.5)
    seed_source(params.source_url, params.source.table, day(30), day(36), 300, params.project.seed, drift=concept)
    run_pipeline(params, AS_OF, {"dag_id": "training", "reason": "manual"})
    ingest_window(params, day(12), window=12)
    ingest_window(params, day(36), window=7)
    return params


def _mlflow_run(params, run_id):
    from retrainer.tracking import mlflow_client

    return mlflow_client(params).get_run(run_id)


def test_no_champion_means_nothing_to_check(make_project):
    params = load_params(make_project())
    with pytest.raises(NoChampion, match="has no champion yet"):
        monitor.run_check(params, AS_OF)


def test_a_check_without_drift_writes_report_mlflow_run_and_ledger(project):
    params = project
    summary = monitor.run_check(params, day(3))

    assert summary["decision"]["action"] == "no_drift"
    assert summary["summary_line"] == "drift: 0/14 columns drifted (share 0.00); drifted: none; decision: no_drift"
    folder = params.reports_dir / "drift" / day(3).isoformat()
    assert summary["report_html"] == f"reports/drift/{day(3).isoformat()}/report.html"
    assert (folder / "report.html").stat().st_size > 100_000
    report = json.loads((folder / "report.json").read_text())
    assert any("DriftedColumnsCount" in m["metric_name"] for m in report["metrics"])
    assert summary["trigger_conf"] is None

    # The reference: the champion's training set, DVC-tracked and pushed, profiled once.
    reference = params.root / "data" / "reference" / "retrainer-churn" / "v1"
    meta = json.loads((reference / "meta.json").read_text())
    assert meta["rows"] == 11 * 300  # 14-day window minus the 3 holdout days, 300 rows a day
    assert meta["source"].endswith("train.parquet") and meta["run_id"] == summary["champion"]["run_id"]
    md5 = (reference / "reference.parquet.dvc").read_text().split("md5: ")[1].split()[0]
    assert (Path(params.dvc_remote_url) / "files" / "md5" / md5[:2] / md5[2:]).exists()
    assert "score" in pd.read_parquet(reference / "reference.parquet").columns  # the champion's scores

    run = _mlflow_run(params, summary["mlflow_run_id"])
    from retrainer.tracking import mlflow_client

    assert mlflow_client(params).get_experiment(run.info.experiment_id).name == "retrainer-monitoring"
    assert run.data.tags["retrainer.decision"] == "no_drift"
    assert run.data.metrics["drifted_share"] == 0.0
    assert set(run.data.metrics) >= {f"drift_score.{c}" for c in params.dataset.features}
    assert run.data.metrics["performance.roc_auc"] > 0.7

    ledger = monitor.load_ledger(params)
    assert [(c["as_of"], c["decision"], c["signal"]) for c in ledger["checks"]] == [(day(3).isoformat(), "no_drift", False)]


def test_a_rerun_reuses_the_reference_and_the_mlflow_run(project):
    params = project
    reference = params.root / "data" / "reference" / "retrainer-churn" / "v1"
    built = (reference / "profile.npz").stat().st_mtime_ns
    first = json.loads((params.reports_dir / "drift" / day(3).isoformat() / "summary.json").read_text())
    again = monitor.run_check(params, day(3))
    assert (reference / "profile.npz").stat().st_mtime_ns == built
    assert again["check_key"] == first["check_key"]
    from retrainer.tracking import mlflow_client

    runs = mlflow_client(params).search_runs(
        [_mlflow_run(params, again["mlflow_run_id"]).info.experiment_id],
        filter_string=f"tags.`retrainer.as_of` = '{day(3).isoformat()}'",
    )
    assert len(runs) == 1
    assert len(monitor.load_ledger(params)["checks"]) == 1


def test_abrupt_drift_is_confirmed_then_triggers_then_cools_down(project):
    params = project
    first = monitor.run_check(params, day(4))
    assert first["decision"]["action"] == "unconfirmed"
    assert "critical columns drifted: num_support_calls" in first["decision"]["reasons"]
    assert "monthly_charges=" in first["summary_line"] and "num_support_calls=" in first["summary_line"]

    second = monitor.run_check(params, day(5))
    assert second["decision"]["action"] == "retrain"
    report = f"reports/drift/{day(5).isoformat()}/report.html"
    assert second["trigger_conf"] == {"reason": "drift", "report": report, "as_of": day(5).isoformat()}
    assert second["trigger_run_id"] == f"drift__{day(5).isoformat()}"
    assert (params.root / report).exists()
    monitor.record_trigger(params, day(5).isoformat(), second["trigger_run_id"], report, "1")

    third = monitor.run_check(params, day(6))
    assert third["decision"]["action"] == "cooldown" and third["decision"]["cooldown_until"] == day(12).isoformat()
    assert third["trigger_conf"] is None
    again = monitor.run_check(params, day(5))
    assert again["decision"]["action"] == "already_triggered"

    ledger = monitor.load_ledger(params)
    assert [t["as_of"] for t in ledger["triggers"]] == [day(5).isoformat()]
    assert [c["triggered"] for c in ledger["checks"] if c["as_of"] == day(5).isoformat()] == [True]


def test_batch_scoring_outputs_give_prediction_drift_and_performance(project):
    params = project
    from retrainer.run_context import day_interval
    from retrainer.scoring import score_partition
    from retrainer.validate import validate_partition

    window = [day(6 + i) for i in range(7)]
    for scored in window:
        start, end = day_interval(scored)
        validate_partition(
            params.data_dir / "raw" / f"dt={scored.isoformat()}" / "part.parquet",
            params.path(params.validation.raw_suite),
            params.reports_dir / "validation" / f"dt={scored.isoformat()}",
            interval_start=start, interval_end=end, build_docs=False,
        )
        score_partition(params, scored)  # the batch_scoring DAG's step: champion scores, Parquet and SQL

    summary = monitor.run_check(params, day(12))
    assert summary["prediction_drift"]["rows"] == 7 * 300
    assert summary["prediction_drift"]["method"] == "wasserstein"
    # Drifted support calls and charges raise the champion's churn scores.
    assert summary["prediction_drift"]["drifted"] is True
    assert summary["performance"]["source"] == "batch-scoring outputs"
    assert summary["performance"]["labelled_rows"] == 7 * 300
    assert "drift_score.score" in _mlflow_run(params, summary["mlflow_run_id"]).data.metrics
    shutil.rmtree(params.path(params.scoring.output_dir))


def test_concept_drift_shows_as_performance_below_its_floor(project):
    params = project
    summary = monitor.run_check(params, day(36))
    assert summary["drift"]["drifted_share"] < params.drift.drift_share
    performance = summary["performance"]
    assert performance["judged"] and performance["degraded"]
    assert performance["value"] < performance["floor"] == pytest.approx(performance["champion_holdout"] - 0.05)
    assert any(r.startswith("performance below its floor: roc_auc") for r in summary["decision"]["reasons"])


def test_too_few_rows_is_recorded_as_inconclusive(project):
    params = project
    summary = monitor.run_check(params, day(60))
    assert summary["decision"]["action"] == "inconclusive"
    assert summary["report_html"] is None
    assert "0 rows in the window" in summary["summary_line"]
    record = next(c for c in monitor.load_ledger(params)["checks"] if c["as_of"] == day(60).isoformat())
    assert record["inconclusive"] is True and record["signal"] is False


def test_the_reference_is_rebuilt_from_the_lineage_manifest_when_the_training_set_is_gone(project):
    params = project
    champion = monitor.current_champion(params)
    work = params.data_dir / "runs" / f"as_of={champion.as_of}" / champion.run_key
    reference = params.root / "data" / "reference" / "retrainer-churn" / "v1"
    before = json.loads((reference / "meta.json").read_text())
    profile = ReferenceProfile.load(reference)
    moved = work.with_name(work.name + ".moved")
    work.rename(moved)
    try:
        shutil.rmtree(reference)
        rebuilt = monitor.champion_reference(params, champion)
    finally:
        moved.rename(work)
    assert rebuilt.meta["source"] == "manifest partitions" and rebuilt.meta["changed_since"] == []
    assert rebuilt.meta["rows"] == before["rows"] and rebuilt.meta["md5"] == before["md5"]
    for name, column in profile.columns.items():
        again = rebuilt.profile.columns[name]
        assert (again.rows, again.std, list(again.values), list(again.counts)) == (
            column.rows, column.std, list(column.values), list(column.counts)
        ), name


def test_a_training_set_above_the_cap_is_stored_as_a_day_stratified_sample(project):
    params = project
    capped = params.model_copy(update={"drift": params.drift.model_copy(update={"reference_max_rows": 1100})})
    champion = monitor.current_champion(capped)
    reference = monitor.champion_reference(capped, champion)
    assert reference.meta["sampled"] is True
    assert (reference.meta["rows"], reference.meta["source_rows"]) == (1100, 11 * 300)
    stored = pd.read_parquet(reference.data_path)
    assert stored["__day__"].value_counts().to_dict() == dict.fromkeys(sorted(stored["__day__"].unique()), 100)
    assert reference.profile.rows == 1100
    # The cap is part of the cache key: the uncapped params rebuild the full reference.
    assert monitor.champion_reference(params, champion).meta["rows"] == 11 * 300
