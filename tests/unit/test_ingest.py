"""Ingest reads the SQL source in batches straight into Arrow: real SQLite source, no Airflow."""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from retrainer import ingest
from retrainer.config import load_params
from retrainer.datagen import IncidentSpec
from retrainer.errors import SourceError
from retrainer.ingest import ingest_day
from retrainer.prepare import prepare_window
from retrainer.storage import md5_file, partition_file
from tests.conftest import AS_OF, seed


def _set(params, column: str, value, rows: str) -> None:
    """UPDATE the source: ``column`` = ``value`` where the SQL condition ``rows`` holds."""
    table = sa.table(params.source.table, sa.column(column))
    engine = sa.create_engine(params.source_url)
    with engine.begin() as conn:
        conn.execute(sa.update(table).where(sa.text(rows)).values({column: value}))
    engine.dispose()


def test_a_day_read_in_small_batches_is_the_same_partition_as_in_one(make_project, monkeypatch):
    params = load_params(make_project())
    seed(params.source_file, days=1)
    # NULL throughout the first batches only: they type the column null, the later ones float.
    _set(params, "monthly_charges", None, "rowid <= 20")
    one_batch = ingest_day(params, AS_OF, track=False)
    reference = partition_file(params.data_dir, AS_OF).read_bytes()

    other = load_params(make_project())
    seed(other.source_file, days=1)
    _set(other, "monthly_charges", None, "rowid <= 20")
    monkeypatch.setattr(ingest, "SOURCE_BATCH_ROWS", 7)
    batched = ingest_day(other, AS_OF, track=False)

    assert batched.rows == one_batch.rows == 300
    assert partition_file(other.data_dir, AS_OF).read_bytes() == reference
    frame = pd.read_parquet(batched.path)
    assert frame["monthly_charges"].dtype == "float64" and frame["monthly_charges"].isna().sum() == 20
    assert frame["event_time"].dtype == "datetime64[ns]" and frame["event_time"].is_monotonic_increasing


def test_integer_columns_with_nulls_read_back_as_pandas_would_hold_them(make_project):
    params = load_params(make_project())
    seed(params.source_file, days=1)
    _set(params, "tenure_months", None, "rowid % 10 = 0")
    frame = pd.read_parquet(ingest_day(params, AS_OF, track=False).path)
    assert frame["tenure_months"].dtype == "float64" and frame["tenure_months"].isna().sum() == 30
    assert frame["churned"].dtype == "int64"
    expected = pd.read_sql_table(params.source.table, params.source_url)
    assert sorted(frame["tenure_months"].dropna()) == sorted(expected["tenure_months"].dropna())


def test_a_value_of_the_wrong_type_names_the_column_and_writes_nothing(make_project):
    params = load_params(make_project())
    seed(params.source_file, days=1)
    # SQLite keeps text in a REAL column; the typed read must refuse it, not coerce it.
    _set(params, "monthly_charges", "n/a", "rowid = 5")
    wrong_type = r"table 'customer_events'.*column 'monthly_charges' holds a value of the wrong type"
    with pytest.raises(SourceError, match=wrong_type):
        ingest_day(params, AS_OF, track=False)
    assert not partition_file(params.data_dir, AS_OF).parent.exists()


def test_prepare_joins_days_of_different_column_types_and_drops_unlabelled_rows(make_project):
    params = load_params(make_project({"prepare": {"window_days": 6, "holdout_days": 2, "min_train_rows": 100}}))
    # One day loses a quarter of its labels (the label column is float with NULLs that day, int64 elsewhere).
    seed(params.source_file, days=6, incidents=[IncidentSpec(AS_OF - timedelta(days=3), "nulls", "churned", 0.25)])
    ingest.ingest_window(params, AS_OF, track=False)
    labels_by_day = {
        d: pd.read_parquet(partition_file(params.data_dir, AS_OF - timedelta(days=d)))["churned"].dtype
        for d in range(6)
    }
    assert labels_by_day[3] == "float64" and labels_by_day[0] == "int64"

    prepared = prepare_window(params, AS_OF, params.root / "prepared")
    train = pd.read_parquet(prepared.train_path)
    holdout = pd.read_parquet(prepared.holdout_path)
    assert prepared.train_rows == len(train) == 4 * 300 - 75
    assert prepared.holdout_rows == len(holdout) == 2 * 300
    assert train["churned"].notna().all() and set(train["churned"].unique()) == {0, 1}
    manifest = pd.read_json(prepared.manifest_path, typ="series")
    assert manifest["unlabelled_rows_dropped"] == 75
    assert md5_file(partition_file(params.data_dir, AS_OF)) == manifest["partitions"][-1]["md5"]


def _restamp(params, rowids: list[int], text: str) -> None:
    """Store the event time of ``rowids`` as ``text`` (SQLite keeps any text in a DATETIME column)."""
    source = sa.table(params.source.table, sa.column("event_time"), sa.column("rowid"))
    engine = sa.create_engine(params.source_url)
    with engine.begin() as conn:
        conn.execute(sa.update(source).where(source.c.rowid.in_(rowids)).values(event_time=text))
    engine.dispose()


def _rowids_of_day(params, day) -> list[int]:
    from retrainer.run_context import day_interval

    start, end = day_interval(day)
    source = sa.table(params.source.table, sa.column("event_time"), sa.column("rowid"))
    engine = sa.create_engine(params.source_url)
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(
            sa.select(source.c.rowid).where(source.c.event_time >= start, source.c.event_time < end))]
    engine.dispose()
    return ids


def test_rows_whose_event_time_is_text_in_another_format_are_accounted_for_never_lost(make_project):
    """`10/26/2026 05:00`-style text in a DATETIME column: no interval query selects those rows. They are
    found, the day they belong to is quarantined as text with a report (count and examples), and it fails
    its gate; rows whose event time is no date at all are counted for every run that reads the table."""
    from retrainer.errors import GateFailed
    from retrainer.pipeline import step_ingest, step_validate
    from retrainer.quarantine import quarantine_record
    from retrainer.storage import partition_dir

    params = load_params(make_project({"prepare": {"window_days": 3, "holdout_days": 1, "min_train_rows": 100}}))
    seed(params.source_file, days=3)
    day_ids = _rowids_of_day(params, AS_OF)
    _restamp(params, day_ids[:4], AS_OF.strftime("%m/%d/%Y 05:00"))
    _restamp(params, day_ids[4:6], "not a date")
    total = pd.read_sql_query(f"SELECT count(*) AS n FROM {params.source.table}", params.source_url)["n"][0]  # noqa: S608

    # The day read alone: it is unreadable, with the misplaced rows named.
    with pytest.raises(ingest.UnreadableValues) as caught:
        ingest_day(params, AS_OF, track=False)
    message = str(caught.value)
    assert "column 'event_time' (datetime (stored in another form)): 4 rows" in message, message
    assert f"['{AS_OF.strftime('%m/%d/%Y')} 05:00']" in message
    kept = pd.read_parquet(partition_dir(params.data_dir, AS_OF, area="quarantine") / "part.parquet")
    # Every row of the day kept as text, the misplaced ones included; the undatable two are on no day.
    assert len(kept) == len(day_ids) - 2 and caught.value.found["rows"] == len(kept)
    assert (kept["event_time"] == AS_OF.strftime("%m/%d/%Y 05:00")).sum() == 4
    assert not partition_file(params.data_dir, AS_OF).exists()
    report = json.loads((params.reports_dir / "validation" / f"dt={AS_OF.isoformat()}" / "validation.json").read_text())
    [failed] = report["failed"]
    assert report["success"] is False and failed["column"] == "event_time" and failed["unexpected_count"] == 4
    assert quarantine_record(params, AS_OF)["kind"] == "unreadable"

    # The run as of the day: ingest reports the undatable rows, the day fails its gate with the report.
    summary = step_ingest(params, AS_OF)
    assert summary["unplaced_rows"] == {"rows": 2, "examples": ["not a date"]}
    assert [(s["day"], s["status"]) for s in summary["skipped_days"]] == [(AS_OF.isoformat(), "unreadable")]
    with pytest.raises(GateFailed, match=r"column 'event_time' \(datetime \(stored in another form\)\): 4 rows"):
        step_validate(params, AS_OF, summary)

    # Nothing lost: every source row is in a partition, in the quarantine, or counted as on no day.
    in_partitions = sum(len(pd.read_parquet(p["path"])) for p in summary["new_partitions"])
    assert in_partitions + len(kept) + summary["unplaced_rows"]["rows"] == total
