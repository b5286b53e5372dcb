"""retrainer.train's model pieces: the estimator's preprocessing and the rows the training metrics use."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from retrainer.config import load_params
from retrainer.datagen import generate_day
from retrainer.train import build_pipeline, feature_frame, predict_scores, training_metric_rows


def _params(make_project, **model):
    """The repo's params with ``model`` settings replaced (not merged: another estimator takes other hyperparameters)."""
    params = load_params(make_project())
    return params.model_copy(update={"model": params.model.model_copy(update=model)}) if model else params


def _days(rows: int, seed: int = 42) -> pd.DataFrame:
    return generate_day(date(2026, 3, 1), rows, seed)


def test_boosting_splits_on_categories_natively_and_learns_where_missing_values_go(make_project):
    params = _params(make_project)
    ds = params.dataset
    train = _days(3_000)
    model = build_pipeline(params).fit(feature_frame(train, params), train[ds.label].astype(int))

    # One column per feature (no one-hot expansion), the categorical ones marked as such.
    assert model[-1].n_features_in_ == len(ds.features)
    assert list(model[-1].is_categorical_) == [False] * len(ds.numeric_features) + [True] * len(ds.categorical_features)

    # A category first seen in serving and missing values (numeric and text) still get a probability.
    serving = _days(50, seed=7)
    serving.loc[serving.index[:10], "region"] = "atlantis"
    serving.loc[serving.index[10:20], "plan_tier"] = None
    serving.loc[serving.index[20:30], "tenure_months"] = np.nan
    scores = predict_scores(model, serving, params)
    assert scores.shape == (50,) and np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
    # An unseen category is scored as a missing one, not as some other known category.
    unseen, missing = serving.head(1).copy(), serving.head(1).copy()
    missing["region"] = None
    assert predict_scores(model, unseen, params)[0] == pytest.approx(predict_scores(model, missing, params)[0])


def test_boosting_takes_a_category_column_with_more_values_than_bins(make_project):
    params = _params(make_project, hyperparameters={"max_iter": 5, "max_bins": 32})
    train = _days(2_000)
    train["region"] = [f"r{i % 300}" for i in range(len(train))]  # 300 values, 32 bins
    model = build_pipeline(params).fit(feature_frame(train, params), train[params.dataset.label].astype(int))
    assert np.isfinite(predict_scores(model, train.head(100), params)).all()


@pytest.mark.parametrize("estimator", ["random_forest", "logistic_regression"])
def test_other_estimators_get_one_hot_categories(make_project, estimator: str):
    hyper = {"n_estimators": 5} if estimator == "random_forest" else {"max_iter": 200}
    params = _params(make_project, estimator=estimator, hyperparameters=hyper)
    train = _days(1_000)
    model = build_pipeline(params).fit(feature_frame(train, params), train[params.dataset.label].astype(int))
    assert model[-1].n_features_in_ > len(params.dataset.features)
    assert np.isfinite(predict_scores(model, train.head(20), params)).all()


def test_a_hyperparameter_the_estimator_does_not_take_is_named(make_project):
    params = _params(make_project, hyperparameters={"n_trees": 5})
    with pytest.raises(ValueError, match=r"model.hyperparameters: not accepted by hist_gradient_boosting.*n_trees"):
        build_pipeline(params)


def test_training_metrics_use_every_row_up_to_the_cap_then_a_seeded_sample(make_project):
    params = _params(make_project)
    cap = params.model.train_metrics_max_rows
    small = pd.DataFrame({"x": np.arange(cap)})
    assert training_metric_rows(small, params) is small

    large = pd.DataFrame({"x": np.arange(cap * 3 + 17)})
    sample = training_metric_rows(large, params)
    assert len(sample) == cap and sample["x"].is_unique and sample.index.is_monotonic_increasing
    assert sample["x"].isin(large["x"]).all()
    # Spread over the whole set, not its first rows, and the same rows on every call (a rerun logs the same figures).
    assert sample["x"].max() > 2 * cap
    assert training_metric_rows(large, params)["x"].equals(sample["x"])

    every_row = params.model_copy(update={"model": params.model.model_copy(update={"train_metrics_max_rows": None})})
    assert training_metric_rows(large, every_row) is large


def test_train_metrics_max_rows_is_checked(make_project):
    from retrainer.config import ConfigError

    with pytest.raises(ConfigError, match="train_metrics_max_rows"):
        load_params(make_project({"model": {"train_metrics_max_rows": 10}}))
