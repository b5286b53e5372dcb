"""retrainer.prepare: the window's partitions become train/holdout sets, named and hashed."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from retrainer.config import load_params
from retrainer.errors import InsufficientData
from retrainer.ingest import ingest_window
from retrainer.prepare import prepare_window, window_manifest
from retrainer.storage import partition_file
from tests.conftest import AS_OF, seed


@pytest.fixture
def params(make_project):
    params = load_params(make_project())
    seed(params.source_file)
    ingest_window(params, AS_OF)
    return params


def _rewrite(params, day, change) -> None:
    path = partition_file(params.data_dir, day)
    frame = change(pd.read_parquet(path))
    frame.to_parquet(path, index=False)


def test_the_manifest_splits_days_hashes_them_and_names_missing_ones(params) -> None:
    manifest = window_manifest(params, AS_OF)
    assert manifest["window_days"] == 14 and len(manifest["partitions"]) == 14 and manifest["missing_days"] == []
    assert [p["split"] for p in manifest["partitions"]].count("holdout") == params.prepare.holdout_days
    partition_file(params.data_dir, AS_OF - timedelta(days=5)).unlink()
    fewer = window_manifest(params, AS_OF)
    assert fewer["missing_days"] == [(AS_OF - timedelta(days=5)).isoformat()]
    assert fewer["data_hash"] != manifest["data_hash"]
    assert window_manifest(params, AS_OF, window=20)["window_days"] == 20


def test_unlabelled_rows_are_dropped_and_counted(params, tmp_path) -> None:
    label = params.dataset.label
    day = AS_OF - timedelta(days=8)

    def unlabel(frame: pd.DataFrame) -> pd.DataFrame:
        frame[label] = frame[label].astype("float64")
        frame.loc[frame.index[:25], label] = float("nan")
        return frame

    _rewrite(params, day, unlabel)
    prepared = prepare_window(params, AS_OF, tmp_path / "sets")
    manifest = pd.read_json(prepared.manifest_path, typ="series")
    assert manifest["unlabelled_rows_dropped"] == 25
    assert prepared.train_rows == 300 * (14 - params.prepare.holdout_days) - 25
    assert pd.read_parquet(prepared.train_path)[label].notna().all()


def test_a_partition_without_a_needed_column_is_named(params, tmp_path) -> None:
    day = AS_OF - timedelta(days=2)
    _rewrite(params, day, lambda frame: frame.drop(columns=[params.dataset.label]))
    with pytest.raises(InsufficientData, match=rf"dt={day.isoformat()}/part.parquet lacks columns \['{params.dataset.label}'\]"):
        prepare_window(params, AS_OF, tmp_path / "sets")


def test_a_single_label_class_cannot_train(params, tmp_path) -> None:
    label = params.dataset.label
    for offset in range(14):
        day = AS_OF - timedelta(days=offset)

        def one_class(frame: pd.DataFrame) -> pd.DataFrame:
            frame[label] = 0
            return frame

        _rewrite(params, day, one_class)
    with pytest.raises(InsufficientData, match=r"the training set has a single label class \[0\]"):
        prepare_window(params, AS_OF, tmp_path / "sets")
    assert not (tmp_path / "sets" / "train.parquet").exists()


def test_the_sets_hold_every_labelled_row_of_the_window_in_day_order(params, tmp_path) -> None:
    """Streamed one partition at a time, the sets are exactly the window's partitions stacked in day order."""
    import pyarrow.parquet as pq

    prepared = prepare_window(params, AS_OF, tmp_path / "sets")
    manifest = window_manifest(params, AS_OF)
    ds = params.dataset
    columns = [ds.entity_id, ds.event_time, *ds.features, ds.label]
    for split, path in (("train", prepared.train_path), ("holdout", prepared.holdout_path)):
        days = [params.path(p["path"]) for p in manifest["partitions"] if p["split"] == split]
        expected = pd.concat([pd.read_parquet(d, columns=columns) for d in days], ignore_index=True)
        pd.testing.assert_frame_equal(pd.read_parquet(path), expected)
        # One row group per day: nothing larger than a partition was held to write it.
        assert pq.ParquetFile(path).metadata.num_row_groups == len(days)


def test_a_column_typed_differently_across_days_takes_the_type_that_holds_both(params, tmp_path) -> None:
    """int64 on most days, float64 with NULLs on one, all NULL on another: the set's column is float64."""
    column = "num_support_calls"
    with_gaps, all_null = AS_OF - timedelta(days=9), AS_OF - timedelta(days=6)

    def gaps(frame: pd.DataFrame) -> pd.DataFrame:
        frame[column] = frame[column].astype("float64")
        frame.loc[frame.index[:10], column] = float("nan")
        return frame

    def nulls(frame: pd.DataFrame) -> pd.DataFrame:
        frame[column] = None
        return frame

    _rewrite(params, with_gaps, gaps)
    _rewrite(params, all_null, nulls)
    prepared = prepare_window(params, AS_OF, tmp_path / "sets")
    train = pd.read_parquet(prepared.train_path)
    assert train[column].dtype == "float64"
    assert train[column].isna().sum() == 10 + 300


def test_a_refused_window_leaves_no_set_and_keeps_the_previous_one(params, tmp_path) -> None:
    out = tmp_path / "sets"
    first = prepare_window(params, AS_OF, out)
    before = {p: (out / p).read_bytes() for p in ("train.parquet", "holdout.parquet")}
    label = params.dataset.label
    for offset in range(params.prepare.holdout_days):
        _rewrite(params, AS_OF - timedelta(days=offset), lambda frame: frame.assign(**{label: 1}))
    with pytest.raises(InsufficientData, match=r"the holdout set has a single label class \[1\]"):
        prepare_window(params, AS_OF, out)
    assert {p: (out / p).read_bytes() for p in before} == before
    assert sorted(p.name for p in out.iterdir()) == ["holdout.parquet", "manifest.json", "train.parquet"]
    assert first.train_rows == len(pd.read_parquet(out / "train.parquet"))
