"""Ingest reads the SQL source in batches straight into Arrow: real SQLite source, no Airflow."""

from __future__ import annotations

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
