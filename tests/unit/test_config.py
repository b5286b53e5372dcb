from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from retrainer.config import ConfigError, load_params

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_repo_params_load_and_resolve_against_their_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the CWD must not matter
    params = load_params(REPO_ROOT / "params.yaml")
    assert params.root == REPO_ROOT
    assert params.source_url == f"sqlite:///{REPO_ROOT / 'data' / 'source.db'}"
    assert params.tracking_uri == f"sqlite:///{REPO_ROOT / '.mlflow' / 'mlflow.db'}"
    assert params.dvc_remote_url == str(REPO_ROOT / ".dvc-remote")
    assert params.path(params.validation.raw_suite).exists()
    assert len(params.digest) == 64


def test_env_var_selects_the_params_file(tmp_path, monkeypatch):
    other = tmp_path / "other.yaml"
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    raw["model"]["registered_name"] = "someone-else"
    other.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("RETRAINER_PARAMS", str(other))
    assert load_params().model.registered_name == "someone-else"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda raw: raw.update(colour="blue"), "colour: unknown key"),
        (lambda raw: raw["model"].update(max_depth=3), "model.max_depth: unknown key"),
        (lambda raw: raw["prepare"].update(window_days="four weeks"), "prepare.window_days: Input should be a valid integer"),
        (lambda raw: raw["prepare"].update(holdout_days=40), "holdout_days (40) must be smaller than window_days"),
        (lambda raw: raw["evaluation"].update(primary_metric="mape"), "evaluation.primary_metric"),
        (lambda raw: raw["source"].update(table="x; drop table y"), "source.table: String should match pattern"),
        (lambda raw: raw.pop("dataset"), "dataset: Field required"),
        (lambda raw: raw["dataset"].update(label="tenure_months"), "columns named more than once: ['tenure_months']"),
        (lambda raw: raw["run"].update(as_of="yesterday"), "run.as_of"),
    ],
)
def test_invalid_params_name_the_key_and_the_reason(tmp_path, mutate, expected):
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    mutate(raw)
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as caught:
        load_params(bad)
    assert str(bad) in str(caught.value)
    assert expected in str(caught.value)


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read params file"):
        load_params(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(broken)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_params(listy)


def _load(tmp_path, mutate):
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    mutate(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_params(path)


@pytest.mark.parametrize(
    ("task", "metric", "guards"),
    [("binary", "roc_auc", {"calibration_error": 0.02}), ("multiclass", "macro_f1", {"calibration_error": 0.02}),
     ("regression", "rmse", {})],
)
def test_each_task_gets_its_own_default_metric_and_guards(tmp_path, task, metric, guards):
    def mutate(raw):
        raw["dataset"]["task"] = task
        raw["evaluation"].pop("primary_metric")
        raw["evaluation"]["guards"].pop("metrics")
        raw["model"]["estimator"] = "random_forest"

    params = _load(tmp_path, mutate)
    assert params.evaluation.primary_metric == metric and params.evaluation.guards.metrics == guards
    assert params.higher_is_better is (metric != "rmse")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda raw: raw["dataset"].update(task="regression"),
         "evaluation.primary_metric: 'roc_auc' does not fit dataset.task 'regression'"),
        (lambda raw: (raw["dataset"].update(task="regression"), raw["evaluation"].update(primary_metric="rmse")),
         "evaluation.guards.metrics.calibration_error: not a metric of dataset.task 'regression'"),
        (lambda raw: (raw["dataset"].update(task="multiclass"), raw["evaluation"].update(primary_metric="roc_auc")),
         "evaluation.primary_metric: 'roc_auc' does not fit dataset.task 'multiclass'"),
        (lambda raw: raw["model"].update(estimator="ridge"), "model.estimator: 'ridge' does not fit dataset.task 'binary'"),
        (lambda raw: raw["model"].update(factory="my_models:build"), "set exactly one of model.estimator"),
        (lambda raw: raw["model"].update(estimator=None, factory="not a path"), "model.factory"),
        (lambda raw: raw["dataset"].update(task="ranking"), "dataset.task"),
    ],
)
def test_a_metric_estimator_or_factory_that_does_not_fit_the_task_is_refused_naming_the_key(tmp_path, mutate, expected):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, mutate)
    assert expected in str(err.value)
