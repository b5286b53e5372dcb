"""retrainer.train: the estimator's preprocessing, the rows the training metrics use, the MLflow dataset
entity of a large frame (without MLflow's per-cell passes), and a training run logged once per run key."""

from __future__ import annotations

import warnings
from datetime import date, timedelta

import mlflow
import numpy as np
import pandas as pd
import pytest

from retrainer.config import load_params
from retrainer.datagen import generate_day
from retrainer.train import (
    SCHEMA_SAMPLE_ROWS,
    build_pipeline,
    dataset_input,
    feature_frame,
    fit_frame,
    predict_scores,
    train_model,
    training_metric_rows,
)
from tests.conftest import AS_OF


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


def test_boosting_fits_on_category_codes_and_serves_the_same_scores_from_text(make_project):
    """fit_frame holds a category as one code per cell and the numbers as the frame's own arrays; the model
    it fits scores a frame of text (what serving gives, missing as None) exactly as the codes it learned."""
    params = _params(make_project, hyperparameters={"max_iter": 20})
    ds = params.dataset
    train = _days(3_000)
    train.loc[train.index[:300], "plan_tier"] = None  # missing categories while fitting
    lean = fit_frame(train, params)
    assert all(isinstance(lean[c].dtype, pd.CategoricalDtype) for c in ds.categorical_features)
    assert lean["plan_tier"].isna().sum() == 300
    floats = [c for c in ds.numeric_features if train[c].dtype == "float64"]
    assert floats and all(np.shares_memory(lean[c].to_numpy(), train[c].to_numpy()) for c in floats)

    model = build_pipeline(params).fit(lean, train[ds.label].astype(int))
    served = predict_scores(model, train, params)  # feature_frame: text as Python strings, None for missing
    np.testing.assert_allclose(served, model.predict_proba(lean)[:, 1])
    # A missing category is missing (the learned direction), not a category of its own.
    assert not any(value is None for value in model[0].named_transformers_["categorical"].categories_[-1])


def test_factories_and_one_hot_estimators_fit_on_what_they_serve(make_project):
    params = _params(make_project, estimator="random_forest", hyperparameters={"n_estimators": 5})
    train = _days(200)
    pd.testing.assert_frame_equal(fit_frame(train, params), feature_frame(train, params))


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


def test_a_training_run_is_logged_once_per_run_key(make_project):
    from retrainer.prepare import prepare_window
    from retrainer.storage import partition_file
    from retrainer.tracking import AS_OF_TAG, RUN_KEY_TAG, mlflow_client

    params = _params(make_project, estimator="logistic_regression", hyperparameters={"max_iter": 300})
    for offset in range(-13, 1):
        day = AS_OF + timedelta(days=offset)
        path = partition_file(params.data_dir, day)
        path.parent.mkdir(parents=True, exist_ok=True)
        generate_day(day, 150, params.project.seed).to_parquet(path, index=False)
    prepared = prepare_window(params, AS_OF, params.data_dir / "run")
    trained = train_model(params, prepared, "key-1", {"dag_id": "test", "run_id": "r1", "note": ""})

    assert not trained.reused and trained.model_uri
    assert {"train_roc_auc", "holdout_roc_auc", "holdout_brier", "holdout_rows"} <= set(trained.metrics)
    run = mlflow_client(params).get_run(trained.run_id)
    tags = run.data.tags
    assert tags[RUN_KEY_TAG] == "key-1" and tags[AS_OF_TAG] == AS_OF.isoformat()
    assert tags["airflow.dag_id"] == "test" and "airflow.note" not in tags  # empty context values are left out
    assert tags["retrainer.model_uri"] == trained.model_uri and tags["retrainer.manifest_sha256"]
    assert run.data.params["estimator"] == "logistic_regression" and run.data.params["hp.max_iter"] == "300"
    assert run.data.metrics == pytest.approx(trained.metrics)
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"train", "holdout"}
    model = mlflow.sklearn.load_model(trained.model_uri)
    holdout = pd.read_parquet(prepared.holdout_path)
    assert np.isfinite(predict_scores(model, holdout, params)).all()

    # A retry of the same run key finds the finished run instead of training again.
    again = train_model(params, prepared, "key-1", {"dag_id": "test", "run_id": "r1"})
    assert again.reused and (again.run_id, again.model_uri) == (trained.run_id, trained.model_uri)
    assert again.metrics == pytest.approx(trained.metrics)


def test_train_refuses_non_finite_features(make_project):
    from retrainer.errors import GateFailed
    from retrainer.train import _fit

    params = _params(make_project)
    train = _days(400)
    train.loc[train.index[:2], "total_charges"] = np.inf
    with pytest.raises(GateFailed, match=r"train refuses non-finite features:\n.*'total_charges' has 2 non-finite"):
        _fit(params, train)
