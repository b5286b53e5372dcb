"""retrainer.train.dataset_input: the MLflow dataset entity of a large frame, without MLflow's per-cell passes."""

from __future__ import annotations

import warnings
from datetime import date

import mlflow
import pandas as pd
import pytest

from retrainer.datagen import generate_day
from retrainer.train import SCHEMA_SAMPLE_ROWS, dataset_input


def _frame() -> pd.DataFrame:
    frame = generate_day(date(2026, 3, 1), 2 * SCHEMA_SAMPLE_ROWS + 500, 42)
    # text columns as the ingest step writes them (object), with missing values only after the sampled rows
    frame = frame.astype({c: object for c, t in frame.dtypes.items() if isinstance(t, pd.StringDtype)})
    frame.loc[frame.index[-1], "region"] = None
    frame.loc[frame.index[-2], "tenure_months"] = None
    return frame


@pytest.mark.parametrize("missing_late", [True, False])
def test_dataset_input_logs_what_mlflow_from_pandas_would(missing_late: bool) -> None:
    frame = _frame() if missing_late else _frame().dropna()
    ours = dataset_input(frame, "/data/train.parquet", "churned", "train").to_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        theirs = mlflow.data.from_pandas(frame, source="/data/train.parquet", targets="churned", name="train").to_dict()
    assert ours == theirs
    schema = ours["schema"]
    assert ('"name": "region", "required": false' in schema) is missing_late


@pytest.mark.parametrize("missing_late", [True, False])
def test_a_set_read_with_arrow_strings_logs_the_entity_of_its_object_frame(missing_late: bool, tmp_path) -> None:
    """train reads its sets with ``storage.read_frame`` (text as Arrow-backed strings); MLflow must
    still see the dataset the set's Python-string frame is."""
    from retrainer.storage import read_frame

    frame = _frame() if missing_late else _frame().dropna()
    path = tmp_path / "train.parquet"
    frame.to_parquet(path, index=False)
    as_read = read_frame(path)
    assert any(isinstance(t, pd.StringDtype) for t in as_read.dtypes)
    ours = dataset_input(as_read, "/data/train.parquet", "churned", "train").to_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        theirs = mlflow.data.from_pandas(
            pd.read_parquet(path), source="/data/train.parquet", targets="churned", name="train"
        ).to_dict()
    assert ours == theirs
