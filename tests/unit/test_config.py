from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from retrainer.config import ConfigError, load_params
from retrainer.deployment import find_deployment
from tests.conftest import repo_model_document

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_repo_params_load_and_resolve_against_their_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the CWD must not matter
    params = find_deployment(REPO_ROOT, explicit=REPO_ROOT / "models").load("churn")
    assert params.root == REPO_ROOT
    assert params.source_url == f"sqlite:///{REPO_ROOT / 'data' / 'source.db'}"
    assert params.tracking_uri == f"sqlite:///{REPO_ROOT / '.mlflow' / 'mlflow.db'}"
    assert params.dvc_remote_url == str(REPO_ROOT / ".dvc-remote")
    assert params.path(params.validation.raw_suite).exists()
    assert len(params.digest) == 64


def test_env_var_selects_the_params_file(tmp_path, monkeypatch):
    other = tmp_path / "other.yaml"
    raw = repo_model_document()
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
        (lambda raw: raw["registry"].update(approval_timeout="three days"), "registry.approval_timeout: Value error, "
         "expected a duration such as '3d'"),
        (lambda raw: raw["registry"].update(approval_timeout="0s"), "registry.approval_timeout: Value error, must be "
         "at least 1 second"),
        (lambda raw: raw["registry"].update(approvers=["admin", "admin"]), "registry.approvers: Value error, users "
         "named more than once: ['admin']"),
        (lambda raw: raw["registry"].update(approvers=[" "]), "registry.approvers: Value error, user ids must not"),
    ],
)
def test_invalid_params_name_the_key_and_the_reason(tmp_path, mutate, expected):
    raw = repo_model_document()
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
    from tests.conftest import repo_model_document

    raw = repo_model_document()
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


def test_approval_settings_default_to_three_days_and_everyone_who_may_promote(tmp_path):
    from datetime import timedelta

    raw = repo_model_document()
    for key in ("approval_timeout", "approvers"):
        raw["registry"].pop(key, None)  # a params file from before these settings still loads
    old = tmp_path / "params.yaml"
    old.write_text(yaml.safe_dump(raw))
    registry = load_params(old).registry
    assert (registry.approval_timeout, registry.approvers) == (timedelta(days=3), [])
    repo = find_deployment(REPO_ROOT, explicit=REPO_ROOT / "models").load("churn")
    assert repo.registry.approval_timeout == timedelta(days=3)
    for given, seconds in (("12h", 43200), ("1.5m", 90), ("30s", 30), (45, 45)):
        raw["registry"]["approval_timeout"] = given
        old.write_text(yaml.safe_dump(raw))
        assert load_params(old).registry.approval_timeout.total_seconds() == seconds


def _with(tmp_path, **top):
    raw = repo_model_document()
    for key, value in top.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_without_notifications_or_deadlines_todays_webhook_and_default_deadlines_apply(tmp_path):
    from datetime import timedelta

    from retrainer.names import NOTIFY_EVENTS

    params = load_params(_with(tmp_path, notifications=None, deadlines=None))
    (webhook,) = params.notifications
    assert (webhook.kind, webhook.conn_id, webhook.events) == ("webhook", "retrainer_webhook", list(NOTIFY_EVENTS))
    assert params.deadlines.training == timedelta(hours=6)
    assert params.deadlines.drift_monitor == params.deadlines.batch_scoring == timedelta(hours=2)


def test_notifications_and_deadlines_parse():
    from datetime import timedelta

    from retrainer.config import DeadlinesConfig, NotifierConfig

    slack = NotifierConfig(kind="slack", conn_id="slack_api_default", events=["failure"], options={"channel": "#ml"})
    assert slack.wants("failure") and not slack.wants("promotion")
    smtp = NotifierConfig(kind="smtp", conn_id="smtp_default", options={"to": ["a@example.com"]})
    assert smtp.wants("deadline_missed")
    deadlines = DeadlinesConfig(training="90m", drift_monitor=30, batch_scoring=None)
    assert deadlines.training == timedelta(minutes=90) and deadlines.drift_monitor == timedelta(seconds=30)
    assert deadlines.batch_scoring is None
    assert DeadlinesConfig(training="1d").training == timedelta(days=1)
    assert DeadlinesConfig(training="2.5s").training == timedelta(seconds=2.5)


@pytest.mark.parametrize(
    ("notifications", "deadlines", "expected"),
    [
        ([{"kind": "teams", "conn_id": "x"}], None, "notifications.0.kind: Input should be"),
        ([{"kind": "slack"}], None, "notifications.0.conn_id: Field required"),
        ([{"kind": "slack", "conn_id": "a b"}], None, "notifications.0.conn_id: String should match pattern"),
        ([{"kind": "slack", "conn_id": "s", "events": ["failures"]}], None, "unknown events ['failures']"),
        ([{"kind": "slack", "conn_id": "s", "events": []}], None, "notifications.0.events"),
        ([{"kind": "slack", "conn_id": "s", "options": {"token": "xoxb"}}], None,
         "options ['token'] are not options of kind 'slack'"),
        ([{"kind": "webhook", "conn_id": "w", "options": {"url": "http://x"}}], None,
         "secrets belong in the Airflow connection"),
        ([{"kind": "smtp", "conn_id": "smtp_default"}], None, "kind 'smtp' needs options ['to']"),
        ([{"kind": "slack", "conn_id": "s", "colour": 1}], None, "notifications.0.colour: unknown key"),
        (None, {"training": "6 hours"}, "deadlines.training: Value error, expected a duration such as '3d', '12h'"),
        (None, {"drift_monitor": "0s"}, "deadlines.drift_monitor: Value error, a deadline must be longer than 0"),
        (None, {"batch_scoring": True}, "deadlines.batch_scoring"),
        (None, {"ingest_landing": "1h"}, "deadlines.ingest_landing: unknown key"),
    ],
)
def test_bad_notifications_or_deadlines_name_the_key(tmp_path, notifications, deadlines, expected):
    path = _with(tmp_path, **({"notifications": notifications} if notifications is not None else {}),
                 **({"deadlines": deadlines} if deadlines is not None else {}))
    with pytest.raises(ConfigError) as caught:
        load_params(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)
