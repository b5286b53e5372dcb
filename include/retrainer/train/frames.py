"""The model's inputs and labels as frames: stable dtypes for the features, the label as the task needs it,
and the MLflow dataset entity of a large frame."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from retrainer.config import Params

if TYPE_CHECKING:
    import pandas as pd


def feature_frame(frame: pd.DataFrame, params: Params) -> pd.DataFrame:
    """The model's input columns with stable dtypes (ints with gaps become floats, categories strings)."""
    ds = params.dataset
    x = frame[list(ds.features)].copy()
    for column in ds.numeric_features:
        x[column] = x[column].astype("float64")
    for column in ds.categorical_features:
        x[column] = python_strings(x[column])
    return x


def fit_frame(frame: pd.DataFrame, params: Params) -> pd.DataFrame:
    """The model's input columns for fitting, as ``feature_frame`` or, for the built-in boosting, leaner.

    Histogram boosting (``hist_gradient_boosting`` without a factory) gets its categories as pandas
    ``category`` columns whose values exist once (a one-byte code per cell instead of a Python string
    per cell) and its numbers as the frame's own float64
    arrays, not a copy. Its ordinal encoder turns a missing category into NaN either way (a missing
    value when fitting, an unseen one when serving ``feature_frame``'s ``None``), so the model serves
    ``feature_frame`` unchanged. Factories and the one-hot built-ins get ``feature_frame``: their
    encoders tell ``None`` from NaN, so they are fitted on what they serve.
    """
    if params.model.factory or params.model.estimator != "hist_gradient_boosting":
        return feature_frame(frame, params)
    import pandas as pd

    ds, numeric = params.dataset, set(params.dataset.numeric_features)
    columns = {c: frame[c].astype("float64", copy=False) if c in numeric else categories(frame[c]) for c in ds.features}
    return pd.DataFrame(columns, index=frame.index, copy=False)


def categories(values: pd.Series) -> pd.Series:
    """``values`` as a pandas ``category`` column whose categories are Python strings (or the column's
    own values), so an encoder reading it as an array gets one shared object per distinct value."""
    import pandas as pd

    if not isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype("category")
    if pd.api.types.is_string_dtype(values.cat.categories.dtype) and values.cat.categories.dtype != object:
        values = values.cat.rename_categories(values.cat.categories.astype(object))
    return values


def python_strings(values: pd.Series) -> pd.Series:
    """Text as Python ``str`` objects with ``None`` for missing (what scikit-learn's encoders and
    MLflow's schema inference take), whether it was read as ``object`` or Arrow-backed strings."""
    return values.astype("object").where(values.notna(), None)


def training_labels(frame: pd.DataFrame, params: Params) -> pd.Series:
    """The label as the estimator learns it: 0/1 integers (binary), numbers (regression), or the class
    values themselves (multiclass: text as Python strings, integers as integers)."""
    values = frame[params.dataset.label]
    if params.dataset.task == "binary":
        return values.astype(int)
    if params.dataset.task == "regression":
        return values.astype("float64")
    import pandas as pd

    if pd.api.types.is_float_dtype(values.dtype) and (values.dropna() % 1 == 0).all():
        return values.astype("int64")  # integer classes read as floats (a NULL elsewhere in the column)
    return python_strings(values) if not pd.api.types.is_numeric_dtype(values.dtype) else values


SCHEMA_SAMPLE_ROWS = 10_000  # also MLflow's own digest sample (mlflow.data.digest_utils.MAX_ROWS)


def dataset_input(frame: pd.DataFrame, source: str, label: str, name: str):
    """``mlflow.data.from_pandas`` for a large frame, without MLflow's two passes over every cell.

    MLflow infers a dataset's schema element by element in Python and its digest maps ``type`` over
    the whole frame (not just the rows it hashes): about 11 s per million rows, growing with the
    window (bench/bench_scale.py found it). Here the column types are inferred from the first
    rows, whether a column is required (has no missing value) from a vectorised check of all rows,
    and the digest is MLflow's own algorithm with a vectorised type check; the result is the same
    dataset entity (name, digest, source, schema, profile) MLflow would log.
    """
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.data.digest_utils import get_normalized_md5_digest
    from mlflow.types import ColSpec, Schema
    from mlflow.types.utils import _infer_schema

    # Text read as Arrow-backed strings is what ingest wrote as Python strings (None for NULL):
    # MLflow sees the sampled rows that way, so the entity is the one it logs for the object frame.
    arrow_text = [c for c in frame.columns if isinstance(frame[c].dtype, pd.StringDtype)]
    head = frame.head(SCHEMA_SAMPLE_ROWS).copy()
    for column in arrow_text:
        head[column] = python_strings(head[column])
    # MLflow hashes the first rows of the columns whose every value is a str (checked with a vectorised
    # type scan here; a text column qualifies when it has no missing value) and the numeric ones.
    string_columns = pd.Index(
        [
            c
            for c in frame.columns
            if (c in arrow_text and not frame[c].hasnans)
            or (frame[c].dtype == object and pd.api.types.infer_dtype(frame[c], skipna=False) == "string")
        ]
    )
    hashed = head[string_columns.union(head.select_dtypes(include="number").columns)]
    digest = get_normalized_md5_digest(
        [pd.util.hash_pandas_object(hashed).values, np.int64(len(frame))] + [str(c).encode() for c in frame.columns]
    )
    dataset = mlflow.data.from_pandas(frame, source=source, targets=label, name=name, digest=digest)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # MLflow's hint about integer columns and missing values
        sampled = _infer_schema(head)
    has_missing = frame.isna().any()
    dataset.schema = Schema(  # a cached_property: setting it replaces MLflow's full-frame inference
        [ColSpec(type=c.type, name=c.name, required=not bool(has_missing[c.name])) for c in sampled.inputs]
    )
    return dataset
