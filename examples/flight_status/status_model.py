"""The flight-status team's own model, named in params.yaml as ``model.factory: "status_model:build"``.

Retrainer calls :func:`build` with keyword arguments and fits what it returns on a frame of the
feature columns. The departure delay is the strongest signal and is heavy-tailed, so the pipeline adds
its signed log and the delay bands the statuses are cut at (``DelayBands``, a transformer of the team's
own: the logged model carries this file, so it loads without the project installed).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

BANDS = (-15.0, 15.0, 60.0)


class DelayBands(BaseEstimator, TransformerMixin):
    """The departure delay as itself, its signed log and which status band it falls in."""

    def fit(self, x, y=None):
        return self

    def transform(self, x):
        delay = np.asarray(x, dtype="float64").reshape(-1)
        band = np.searchsorted(np.asarray(BANDS), delay, side="left").astype("float64")
        band[np.isnan(delay)] = np.nan
        return np.column_stack([delay, np.sign(delay) * np.log1p(np.abs(delay)), band])

    def get_feature_names_out(self, input_features=None):
        return np.asarray(["dep_delay", "dep_delay_log", "dep_delay_band"], dtype=object)


def build(*, numeric_features, categorical_features, hyperparameters, seed, task):
    """An unfitted Pipeline for the task (classification only: it predicts class probabilities)."""
    if task == "regression":
        raise ValueError("status_model predicts a status (a class); use it with dataset.task: multiclass")
    others = [c for c in numeric_features if c != "dep_delay"]
    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan)
    columns = ColumnTransformer(
        [("delay", DelayBands(), ["dep_delay"]), ("numeric", "passthrough", others),
         ("categorical", encoder, list(categorical_features))],
        verbose_feature_names_out=False,
    )
    first_categorical = 3 + len(others)
    model = HistGradientBoostingClassifier(
        categorical_features=list(range(first_categorical, first_categorical + len(categorical_features))),
        random_state=seed, **dict(hyperparameters),
    )
    return Pipeline([("columns", columns), ("model", model)])


__all__ = ["DelayBands", "build"]
