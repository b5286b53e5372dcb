"""A bad day is isolated: real SQLite source, DVC repo and MLflow store, the pipeline's own steps, no Airflow.

The run whose as-of day fails still fails; later runs leave the quarantined (or unreadable) day out of
their window, say why, and train on the rest, until a replay of the fixed day brings it back.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from retrainer.config import load_params
from retrainer.datagen import IncidentSpec
from retrainer.errors import GateFailed, InsufficientData
from retrainer.pipeline import run_pipeline, step_ingest, step_prepare, step_validate
from retrainer.quarantine import quarantine_record, window_gaps
from retrainer.storage import partition_dir, partition_file
from tests.conftest import AS_OF, seed

BAD_DAY = AS_OF - timedelta(days=1)


def _set_on_day(params, column: str, value, day, rows: int) -> None:
    """``column`` = ``value`` (bound, any type: SQLite keeps text in a REAL column) on ``rows`` rows of ``day``."""
    from retrainer.run_context import day_interval

    start, end = day_interval(day)
    source = sa.table(params.source.table, sa.column(column), sa.column("event_time"), sa.column("rowid"))
    picked = sa.select(source.c.rowid).where(source.c.event_time >= start, source.c.event_time < end).limit(rows)
    engine = sa.create_engine(params.source_url)
    with engine.begin() as conn:
        conn.execute(sa.update(source).where(source.c.rowid.in_(picked)).values({column: value}))
    engine.dispose()


def test_a_failed_day_stays_out_of_later_windows_and_a_replay_brings_it_back(make_project):
    from retrainer.tracking import mlflow_client

    params = load_params(make_project())
    seed(params.source_file, incidents=[IncidentSpec(day=BAD_DAY, kind="out_of_range")])
    with pytest.raises(GateFailed, match="tenure_months"):
        run_pipeline(params, BAD_DAY)  # the run whose as-of day is bad fails
    quarantined = partition_dir(params.data_dir, BAD_DAY, area="quarantine")
    marker = (quarantined / "QUARANTINED.json").read_bytes()

    # The next day: the bad day is not re-read (nor re-quarantined), it is a gap with its reason.
    result = run_pipeline(params, AS_OF)
    skipped = result["ingest"]["skipped_days"]
    assert [(s["day"], s["status"]) for s in skipped] == [(BAD_DAY.isoformat(), "quarantined")]
    assert (quarantined / "QUARANTINED.json").read_bytes() == marker
    assert not list(quarantined.parent.glob("*.superseded-*"))
    gaps = {g["day"]: g for g in result["prepared"]["gaps"]}
    assert gaps[BAD_DAY.isoformat()]["kind"] == "quarantined_gate"
    assert "tenure_months" in gaps[BAD_DAY.isoformat()]["reason"]
    assert result["registered"]["version"] == "1"
    manifest = json.loads(open(result["prepared"]["manifest_path"]).read())
    assert BAD_DAY.isoformat() not in {p["day"] for p in manifest["partitions"]}
    # The lineage record of the model names the gap and why.
    client = mlflow_client(params)
    lineage_file = client.download_artifacts(result["trained"]["run_id"], "lineage/lineage.json")
    lineage = json.loads(open(lineage_file).read())
    assert BAD_DAY.isoformat() in {g["day"] for g in lineage["gaps"]}

    # The source is fixed and the day replayed (a run as of it): it passes and is released.
    seed(params.source_file)
    replay = step_validate(params, BAD_DAY, step_ingest(params, BAD_DAY))
    assert all(p["success"] for p in replay["partitions"])
    assert quarantine_record(params, BAD_DAY) is None and not quarantined.exists()
    again = step_prepare(params, AS_OF)
    assert BAD_DAY.isoformat() not in {g["day"] for g in again["gaps"]}
    assert again["data_hash"] != result["prepared"]["data_hash"]


def test_an_unreadable_day_is_quarantined_as_text_with_a_report_and_left_out(make_project):
    params = load_params(make_project())
    seed(params.source_file)
    # A decimal comma in a REAL column (SQLite keeps the text): the day cannot be read as its types.
    _set_on_day(params, "monthly_charges", "12,5", BAD_DAY, 7)
    with pytest.raises(GateFailed, match=r"column 'monthly_charges' \(float\): 7 rows, e.g. \['12,5'\]"):
        step_validate(params, BAD_DAY, step_ingest(params, BAD_DAY))
    quarantined = partition_dir(params.data_dir, BAD_DAY, area="quarantine")
    kept = pd.read_parquet(quarantined / "part.parquet")
    assert len(kept) == 300 and (kept["monthly_charges"] == "12,5").sum() == 7  # every row, as text
    report = json.loads((quarantined / "report" / f"dt={BAD_DAY.isoformat()}" / "validation.json").read_text())
    assert report["success"] is False
    [failed] = report["failed"]
    assert failed["column"] == "monthly_charges" and failed["unexpected_count"] == 7
    assert failed["unexpected_examples"] == ["12,5"]
    assert quarantine_record(params, BAD_DAY)["kind"] == "unreadable"

    # A later run: the unreadable day is neither read again nor a failure; it is a gap.
    ingested = step_ingest(params, AS_OF)
    assert [(s["day"], s["status"]) for s in ingested["skipped_days"]] == [(BAD_DAY.isoformat(), "quarantined")]
    validated = step_validate(params, AS_OF, ingested)
    assert all(p["success"] for p in validated["partitions"])
    prepared = step_prepare(params, AS_OF)
    gap = next(g for g in prepared["gaps"] if g["day"] == BAD_DAY.isoformat())
    assert gap["kind"] == "quarantined_unreadable" and "column 'monthly_charges' (float): 7 rows" in gap["reason"]
    assert not partition_file(params.data_dir, BAD_DAY).exists()


def test_an_unreadable_day_inside_a_later_window_is_quarantined_there_without_failing_it(make_project):
    params = load_params(make_project())
    seed(params.source_file)
    _set_on_day(params, "tenure_months", "n/a", BAD_DAY, 3)
    ingested = step_ingest(params, AS_OF)  # BAD_DAY is first read here, as a day of the window
    [skipped] = ingested["skipped_days"]
    assert skipped["day"] == BAD_DAY.isoformat() and skipped["status"] == "unreadable"
    assert "column 'tenure_months' (int): 3 rows, e.g. ['n/a']" in skipped["reason"]
    validated = step_validate(params, AS_OF, ingested)  # not the as-of day: no failure
    entry = next(p for p in validated["partitions"] if p["day"] == BAD_DAY.isoformat())
    assert entry["success"] is False and entry["unreadable"] and entry["quarantined_to"]
    assert [g["kind"] for g in window_gaps(params, [BAD_DAY])] == ["quarantined_unreadable"]


def test_too_few_days_left_fails_with_a_clear_message(make_project):
    params = load_params(make_project({"prepare": {"min_window_days": 14}}))
    seed(params.source_file, incidents=[IncidentSpec(day=BAD_DAY, kind="duplicate_keys")])
    with pytest.raises(GateFailed):
        step_validate(params, BAD_DAY, step_ingest(params, BAD_DAY))
    step_validate(params, AS_OF, step_ingest(params, AS_OF))
    with pytest.raises(InsufficientData, match=r"only 13 of 14 days have data, fewer than 14 \(prepare.min_window_days=14"):
        step_prepare(params, AS_OF)


def test_a_bad_day_first_read_by_a_later_run_is_quarantined_without_failing_that_run(make_project):
    """The first run over a window (a new project's bootstrap) reads every day: one bad day among them is
    quarantined and left out, the run trains on the rest; only an as-of day's failure stops a run."""
    params = load_params(make_project())
    seed(params.source_file, incidents=[IncidentSpec(day=BAD_DAY, kind="unseen_category")])
    result = run_pipeline(params, AS_OF)
    entry = next(p for p in result["validation"]["partitions"] if p["day"] == BAD_DAY.isoformat())
    assert entry["success"] is False and entry["quarantined_to"]
    assert quarantine_record(params, BAD_DAY)["kind"] == "gate"
    gap = next(g for g in result["prepared"]["gaps"] if g["day"] == BAD_DAY.isoformat())
    assert gap["kind"] == "quarantined_gate" and "region" in gap["reason"]
    assert result["registered"]["version"] == "1"


def test_a_partition_no_gate_passed_is_judged_by_the_next_run(make_project):
    """A run that stopped between ingest and validate (a broken suite file, a killed worker) leaves a raw
    partition nobody judged: the next run validates it instead of training on it unjudged."""
    from retrainer.ingest import ingest_day

    params = load_params(make_project())
    seed(params.source_file, incidents=[IncidentSpec(day=BAD_DAY, kind="out_of_range")])
    ingest_day(params, BAD_DAY)  # ingested, never validated
    ingested = step_ingest(params, AS_OF)
    assert {p["day"]: p["status"] for p in ingested["new_partitions"]}[BAD_DAY.isoformat()] == "unvalidated"
    validated = step_validate(params, AS_OF, ingested)  # the bad day is quarantined, the run goes on
    assert quarantine_record(params, BAD_DAY)["kind"] == "gate"
    assert not partition_file(params.data_dir, BAD_DAY).exists()
    assert all(p["success"] for p in validated["partitions"] if p["day"] != BAD_DAY.isoformat())
    # Judged once: the next run finds every partition passed (existing), nothing to validate again.
    again = step_ingest(params, AS_OF)
    assert [p["day"] for p in again["new_partitions"]] == [AS_OF.isoformat()]
