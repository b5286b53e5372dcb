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
