"""The pipeline steps as plain functions: real SQLite source, real DVC repo, real MLflow store, no Airflow."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from retrainer.config import load_params
from retrainer.datagen import IncidentSpec
from retrainer.errors import GateFailed, InsufficientData, NoData, SourceError
from retrainer.ingest import ingest_day, ingest_window
from retrainer.pipeline import run_pipeline, step_ingest, step_prepare
from retrainer.run_context import resolve_as_of
from retrainer.storage import partition_file
from tests.conftest import AS_OF, seed


def test_resolve_as_of_prefers_request_then_interval_then_trigger_day():
    interval = datetime(2026, 3, 30, 0, 0)
    trigger = datetime(2026, 4, 2, 13, 5)
    assert resolve_as_of("2026-03-01", interval, trigger) == date(2026, 3, 1)
    assert resolve_as_of(None, interval, trigger) == date(2026, 3, 30)
    assert resolve_as_of("", None, trigger) == date(2026, 4, 2)
    with pytest.raises(ValueError, match="as_of must be a date YYYY-MM-DD, got 'soon'"):
        resolve_as_of("soon", interval, trigger)


def test_ingest_writes_deterministic_partitions_and_reruns_change_nothing(make_project):
    params = load_params(make_project())
    seed(params.source_file)
    first = ingest_day(params, AS_OF)
    assert first.status == "written" and first.rows == 300
    frame = pd.read_parquet(first.path)
    assert frame["event_time"].min() >= pd.Timestamp(AS_OF)
    assert frame["event_time"].max() < pd.Timestamp(AS_OF + timedelta(days=1))
    assert (params.root / "data/raw/dt=2026-03-31/part.parquet.dvc").exists()

    again = ingest_day(params, AS_OF)
    assert again.status == "unchanged" and again.md5 == first.md5

    # Re-seeding the same day with the same seed gives byte-identical partitions.
    seed(params.source_file)
    assert ingest_day(params, AS_OF).md5 == first.md5
    assert not list(partition_file(params.data_dir, AS_OF).parent.glob(".*tmp"))


def test_ingest_window_fills_missing_days_only(make_project):
    params = load_params(make_project())
    seed(params.source_file)
    summary = ingest_window(params, AS_OF)
    assert len(summary["new_partitions"]) == params.prepare.window_days
    stamps = {p["day"]: Path(p["path"]).stat().st_mtime_ns for p in summary["new_partitions"][:-1]}
    second = ingest_window(params, AS_OF)
    # Older days are not re-read; the as-of day is re-read and found unchanged. No gate has judged the
    # older ones yet (no validation report), so they are listed for it, as they are.
    assert [p["status"] for p in second["new_partitions"]] == ["unvalidated"] * len(stamps) + ["unchanged"]
    assert {p["day"]: Path(p["path"]).stat().st_mtime_ns for p in second["new_partitions"][:-1]} == stamps


def test_empty_day_ends_cleanly_without_files(make_project):
    params = load_params(make_project())
    seed(params.source_file, end=AS_OF - timedelta(days=1))
    with pytest.raises(NoData, match="no rows for 2026-03-31"):
        step_ingest(params, AS_OF)
    assert not partition_file(params.data_dir, AS_OF).exists()


def test_unreachable_source_names_the_url_without_its_password(make_project):
    params = load_params(make_project({"source": {"url": "postgresql://retrainer:s3cret@127.0.0.1:1/nowhere"}}))
    with pytest.raises(SourceError) as caught:
        ingest_day(params, AS_OF)
    message = str(caught.value)
    assert "127.0.0.1:1/nowhere" in message and "***" in message
    assert "s3cret" not in message
    assert not (params.data_dir / "raw").exists()


def test_missing_table_is_named(make_project):
    from retrainer.datagen import seed_source

    params = load_params(make_project({"source": {"table": "no_such_table"}}))
    seed_source(params.source_url, "customer_events", AS_OF, AS_OF, 10, seed=1)
    with pytest.raises(SourceError, match="table 'no_such_table' does not exist"):
        ingest_day(params, AS_OF)


def test_prepare_keeps_the_holdout_after_the_training_rows(make_project):
    params = load_params(make_project())
    seed(params.source_file)
    ingest_window(params, AS_OF)
    prepared = step_prepare(params, AS_OF)
    train = pd.read_parquet(prepared["train_path"])
    holdout = pd.read_parquet(prepared["holdout_path"])
    holdout_start = pd.Timestamp(AS_OF - timedelta(days=params.prepare.holdout_days - 1))
    assert train["event_time"].max() < holdout_start <= holdout["event_time"].min()
    assert len(holdout) == 300 * params.prepare.holdout_days
    assert len(train) == 300 * (params.prepare.window_days - params.prepare.holdout_days)
    # Same inputs, same key and the same folder.
    assert step_prepare(params, AS_OF)["run_key"] == prepared["run_key"]


def test_on_a_full_retrain_weekday_prepare_and_its_gate_use_the_long_window(make_project):
    # The prepared-set gate checks event_time against the window's first day: a gate given the short
    # window would fail on the full-retrain weekday's older rows (the same rule, in one place, for both).
    weekday = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")[AS_OF.weekday()]
    params = load_params(make_project({"schedule": {"full_retrain_weekday": weekday, "full_retrain_window_days": 16}}))
    assert params.prepare.window_days == 14
    seed(params.source_file)
    ingest_window(params, AS_OF)
    prepared = step_prepare(params, AS_OF)
    assert prepared["prepared_gate"]["suite"]["success"] is True
    train = pd.read_parquet(prepared["train_path"])
    assert len(train) == 300 * (16 - params.prepare.holdout_days)
    assert train["event_time"].min() < pd.Timestamp(AS_OF - timedelta(days=13))


def test_prepare_refuses_a_window_too_small_to_train(make_project):
    params = load_params(make_project({"prepare": {"min_train_rows": 100_000}}))
    seed(params.source_file)
    ingest_window(params, AS_OF)
    with pytest.raises(InsufficientData, match="fewer than prepare.min_train_rows=100000"):
        step_prepare(params, AS_OF)


def _champion(params):
    from retrainer.tracking import current_alias

    found = current_alias(params, "champion")
    return None if found is None else str(found.version)


def test_full_pipeline_registers_champion_and_is_idempotent(make_project):
    from retrainer.tracking import mlflow_client

    params = load_params(make_project())
    seed(params.source_file)
    result = run_pipeline(params, AS_OF)
    registered = result["registered"]
    assert registered["version"] == "1" and registered["promoted"]
    assert registered["aliases"] == ["challenger", "champion"]
    assert result["trained"]["metrics"]["holdout_roc_auc"] > 0.7

    client = mlflow_client(params)
    run = client.get_run(result["trained"]["run_id"])
    assert run.data.tags["retrainer.data_hash"] == result["prepared"]["data_hash"]
    assert run.data.tags["retrainer.partitions"].count(":") == params.prepare.window_days
    assert {i.dataset.name for i in run.inputs.dataset_inputs} == {"train", "holdout"}

    again = run_pipeline(params, AS_OF)
    assert again["trained"]["reused"] and again["registered"]["reused"]
    assert again["registered"]["version"] == "1"
    assert len(client.search_model_versions(f"name = '{params.model.registered_name}'")) == 1


def test_a_challenger_that_does_not_beat_the_champion_leaves_it_in_place(make_project):
    params = load_params(make_project())
    seed(params.source_file, days=17)
    run_pipeline(params, AS_OF - timedelta(days=1))
    strict = load_params(make_project({"evaluation": {"min_improvement": 0.5}, "source": {"url": params.source_url},
                                       "mlflow": {"tracking_uri": params.tracking_uri}}))
    # Same source and registry, a gate no model can pass: the new version is challenger only.
    strict_result = run_pipeline(strict, AS_OF)
    assert strict_result["registered"]["version"] == "2"
    assert not strict_result["registered"]["promoted"]
    assert strict_result["registered"]["aliases"] == ["challenger"]
    assert _champion(params) == "1"


def test_a_bad_batch_is_quarantined_and_stops_before_training(make_project):
    params = load_params(make_project())
    seed(params.source_file, incidents=[IncidentSpec(day=AS_OF, kind="out_of_range")])
    with pytest.raises(GateFailed) as caught:
        run_pipeline(params, AS_OF)
    message = str(caught.value)
    assert "tenure_months" in message and "quarantined to" in message
    quarantined = params.data_dir / "quarantine" / f"dt={AS_OF.isoformat()}"
    assert (quarantined / "part.parquet").exists()
    assert list((quarantined / "report").rglob("*.json"))
    assert not partition_file(params.data_dir, AS_OF).exists()
    assert not (params.root / "data/raw/dt=2026-03-31/part.parquet.dvc").exists()
    assert not (params.data_dir / "runs").exists()
    assert _champion(params) is None


def test_infinite_values_stop_the_batch_at_the_gate_and_never_reach_a_model(make_project):
    from tests.unit.test_quarantine import _set_on_day

    params = load_params(make_project())
    seed(params.source_file)
    _set_on_day(params, "total_charges", float("inf"), AS_OF, rows=4)
    with pytest.raises(GateFailed, match=r"retrainer_numeric_values_finite on total_charges.*4 unexpected"):
        run_pipeline(params, AS_OF)
    assert (params.data_dir / "quarantine" / f"dt={AS_OF.isoformat()}" / "part.parquet").exists()
    assert not (params.data_dir / "runs").exists()
    assert _champion(params) is None


def test_the_prepared_gate_refuses_infinite_features_a_hand_edited_suite_let_through(make_project):
    params = load_params(make_project())
    seed(params.source_file)
    ingest_window(params, AS_OF)
    day = partition_file(params.data_dir, AS_OF - timedelta(days=6))
    frame = pd.read_parquet(day)
    frame.loc[frame.index[:3], "monthly_charges"] = -float("inf")
    frame.to_parquet(day, index=False)
    with pytest.raises(GateFailed, match=r"column 'monthly_charges' has 3 non-finite values"):
        step_prepare(params, AS_OF)


def test_a_leaking_feature_stops_the_run_at_the_prepared_gate(make_project):
    params = load_params(make_project())
    seed(params.source_file)
    ingest_window(params, AS_OF)
    # Rewrite one partition so a feature becomes a copy of the label: the prepared gate must catch it.
    for path in sorted((params.data_dir / "raw").glob("dt=*/part.parquet"))[:-3]:
        frame = pd.read_parquet(path)
        frame["late_payments_12m"] = frame["churned"] * 12
        frame.to_parquet(path, index=False)
    with pytest.raises(GateFailed, match="'late_payments_12m' alone separates 'churned' with AUC"):
        step_prepare(params, AS_OF)


def test_the_prepared_gate_checks_label_balance(make_project):
    params = load_params(make_project())
    seed(params.source_file)
    ingest_window(params, AS_OF)
    for path in sorted((params.data_dir / "raw").glob("dt=*/part.parquet")):
        frame = pd.read_parquet(path)
        frame.loc[frame.index[: int(len(frame) * 0.97)], "churned"] = 0
        frame.to_parquet(path, index=False)
    with pytest.raises(GateFailed, match="expect_column_mean_to_be_between.*churned"):
        step_prepare(params, AS_OF)


def test_replay_after_a_fix_reingests_and_releases_the_quarantined_day(make_project):
    from retrainer.pipeline import step_validate

    params = load_params(make_project())
    seed(params.source_file, incidents=[IncidentSpec(day=AS_OF, kind="duplicate_keys")])
    ingested = step_ingest(params, AS_OF)
    with pytest.raises(GateFailed, match="customer_id"):
        step_validate(params, AS_OF, ingested)
    quarantined = params.data_dir / "quarantine" / f"dt={AS_OF.isoformat()}"
    assert (quarantined / "part.parquet").exists()
    assert "customer_id" in (quarantined / "QUARANTINED.json").read_text()

    seed(params.source_file)  # the source is fixed
    # Clearing the failed validate task re-runs it with the same ingest output: the day is read again.
    summary = step_validate(params, AS_OF, ingested)
    entry = next(p for p in summary["partitions"] if p["day"] == AS_OF.isoformat())
    assert entry["replayed"] and entry["success"]
    assert entry["released_from_quarantine"] == [str(quarantined)]
    assert not quarantined.exists()
    assert partition_file(params.data_dir, AS_OF).exists()


def test_prediction_check_rejects_broken_models():
    import numpy as np

    from retrainer.gates import prediction_problems

    assert prediction_problems(np.array([0.1, 0.7, 0.4]), "h") == []
    assert "predicts a constant" in prediction_problems(np.full(10, 0.3), "h")[0]
    assert "outside [0, 1]" in prediction_problems(np.array([0.2, 1.5]), "h")[0]
    assert "NaN" in prediction_problems(np.array([0.2, np.nan]), "h")[0]
