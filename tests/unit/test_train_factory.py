"""model.factory: the team's own estimator, imported from beside the params file, called with the agreed
keyword arguments; every way it can fail names the factory and the cause, at the run's first step.
Also the built-in estimators of each task."""

from __future__ import annotations

import sys
import textwrap
from datetime import date

import numpy as np
import pandas as pd
import pytest

from retrainer.config import load_params
from retrainer.errors import FactoryError
from retrainer.train import build_pipeline, factory, predict_scores, training_labels

GOOD = """
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.compose import make_column_transformer
from sklearn.preprocessing import OneHotEncoder

CALLS = []

def build(*, numeric_features, categorical_features, hyperparameters, seed, task):
    CALLS.append(dict(numeric_features=numeric_features, categorical_features=categorical_features,
                      hyperparameters=hyperparameters, seed=seed, task=task))
    columns = make_column_transformer(("passthrough", numeric_features),
                                      (OneHotEncoder(handle_unknown="ignore"), categorical_features))
    return make_pipeline(columns, LogisticRegression(max_iter=50, random_state=seed))
"""


def _project(make_project, module: str, source: str, spec: str, task: str = "binary"):
    overrides = {"model": {"estimator": None, "factory": spec, "hyperparameters": {"depth": 3}},
                 "dataset": {"task": task}}
    path = make_project(overrides)
    (path.parent / f"{module}.py").write_text(textwrap.dedent(source))
    sys.modules.pop(module, None)
    return load_params(path)


def _without_guards(path):
    """The project's params without guard metrics (the repo's binary guards do not fit every task)."""
    import yaml

    raw = yaml.safe_load(path.read_text())
    raw["evaluation"]["guards"]["metrics"] = {}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(autouse=True)
def _clean_path():
    saved = list(sys.path)
    yield
    sys.path[:] = saved


def test_a_factory_beside_the_params_file_is_called_with_the_agreed_keyword_arguments(make_project):
    params = _project(make_project, "team_model_ok", GOOD, "team_model_ok:build")
    model = build_pipeline(params)
    calls = sys.modules["team_model_ok"].CALLS
    assert params.model.hyperparameters["depth"] == 3
    assert calls == [{
        "numeric_features": list(params.dataset.numeric_features),
        "categorical_features": list(params.dataset.categorical_features),
        "hyperparameters": dict(params.model.hyperparameters), "seed": params.project.seed, "task": "binary",
    }]
    assert hasattr(model, "fit") and not hasattr(model, "classes_")  # unfitted
    assert factory.code_path(params) == params.root.resolve() / "team_model_ok.py"
    assert factory.check(params)["estimator"] == "Pipeline"


def test_the_source_hash_follows_the_code_and_an_edited_factory_is_reimported(make_project):
    params = _project(make_project, "team_model_edit", GOOD, "team_model_edit:build")
    first = factory.source_sha256(params)
    build_pipeline(params)
    (params.root / "team_model_edit.py").write_text(GOOD + "\nEDITED = True\n")
    assert factory.source_sha256(params) != first
    build_pipeline(params)
    assert sys.modules["team_model_edit"].EDITED is True


@pytest.mark.parametrize(
    ("source", "spec", "expected"),
    [
        (GOOD, "no_such_team_module:build", "no module 'no_such_team_module' in "),
        ("raise RuntimeError('broken at import')\n", "team_model_bad_import:build", "RuntimeError: broken at import"),
        ("def build(:\n", "team_model_syntax:build", "SyntaxError"),
        (GOOD, "team_model_no_function:make", "has no function 'make'"),
        ("def build(**kwargs):\n    raise ValueError('no such depth')\n", "team_model_raises:build",
         "raised ValueError: no such depth"),
        ("def build(**kwargs):\n    return object()\n", "team_model_object:build", "which has no fit, predict, predict_proba"),
        ("from sklearn.linear_model import Ridge\ndef build(**kwargs):\n    return Ridge()\n", "team_model_ridge:build",
         "has no predict_proba: a binary model needs fit, predict, predict_proba"),
    ],
)
def test_a_broken_factory_is_named_with_its_cause(make_project, source, spec, expected):
    module = spec.split(":")[0]
    params = _project(make_project, module if module != "no_such_team_module" else "unrelated_file", source, spec)
    with pytest.raises(FactoryError) as err:
        build_pipeline(params)
    assert spec in str(err.value) and expected in str(err.value)


def test_a_broken_factory_fails_the_first_step_before_anything_is_ingested(make_project):
    from retrainer.pipeline import step_ingest

    params = _project(make_project, "team_model_first", "def build(**kwargs):\n    raise KeyError('x')\n",
                      "team_model_first:build")
    with pytest.raises(FactoryError, match="team_model_first:build"):
        step_ingest(params, date(2026, 3, 31))
    assert not (params.data_dir / "raw").exists()


def _frame(task: str, rows: int = 240) -> pd.DataFrame:
    from retrainer.datagen import generate_day

    frame = generate_day(date(2026, 3, 1), rows, 7)
    if task == "multiclass":
        frame["churned"] = frame["plan_tier"].astype(str)  # a label with a few text classes
        frame["plan_tier"] = "same"
    elif task == "regression":
        frame["churned"] = frame["monthly_charges"] * 2.0 + frame["tenure_months"]
    return frame


@pytest.mark.parametrize(
    ("task", "estimator"),
    [(t, e) for t in ("multiclass", "regression") for e in ("hist_gradient_boosting", "random_forest")]
    + [("multiclass", "logistic_regression"), ("regression", "ridge")],
)
def test_the_built_in_estimators_of_each_task_fit_and_predict_the_tasks_output(make_project, task, estimator):
    overrides = {"dataset": {"task": task}, "model": {"estimator": estimator, "hyperparameters": {}}}
    overrides["evaluation"] = {"primary_metric": "rmse" if task == "regression" else "macro_f1"}
    params = load_params(_without_guards(make_project(overrides)))
    params = params.model_copy(update={"model": params.model.model_copy(update={"hyperparameters": {}})})
    frame = _frame(task)
    model = build_pipeline(params)
    from retrainer.train import feature_frame

    model.fit(feature_frame(frame, params), training_labels(frame, params))
    output = predict_scores(model, frame, params)
    if task == "regression":
        assert output.shape == (len(frame),) and np.isfinite(output).all()
    else:
        assert output.shape == (len(frame), frame["churned"].nunique())
        assert np.allclose(output.sum(axis=1), 1.0)
