"""retrainer_airflow.tasks / links: library errors -> Airflow outcomes, run facts, the landing glob, UI URLs.

Plain calls with a fake Airflow context (the attributes the task runner's context has); no scheduler.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from retrainer_airflow import links, tasks

from retrainer import errors
from retrainer.config import PARAMS_ENV, ConfigError, load_params
from retrainer.inputs import UnsafeInput


def _context(params=None, conf=None, *, dag_id="training", run_id="manual__2026-04-01", run_type="manual",
             run_after=datetime(2026, 4, 1, 8, 0), interval=None, try_number=1, user=None) -> dict:
    run = SimpleNamespace(dag_id=dag_id, run_id=run_id, run_type=run_type, conf=conf or {}, run_after=run_after,
                          triggering_user_name=user)
    return {"dag_run": run, "params": params or {}, "data_interval_start": interval,
            "ti": SimpleNamespace(try_number=try_number)}


@pytest.fixture
def no_ui_config(monkeypatch):
    for name in ("AIRFLOW__API__BASE_URL", "AIRFLOW__API__HOST", "AIRFLOW__API__PORT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# --- outcomes -------------------------------------------------------------------------------------------


def test_no_data_skips_the_rest_of_the_run():
    with pytest.raises(AirflowSkipException, match="no rows for 2026-03-31"):
        with tasks.airflow_outcomes():
            raise errors.NoData("no rows for 2026-03-31")
    with pytest.raises(AirflowSkipException, match="no champion"):  # NoChampion is a NoData
        with tasks.airflow_outcomes():
            raise errors.NoChampion("no champion yet")


@pytest.mark.parametrize("error", [errors.GateFailed, errors.InsufficientData, errors.ModelCheckFailed,
                                   ConfigError, UnsafeInput])
def test_a_failed_gate_bad_data_or_bad_config_fails_without_retry(error):
    # AirflowFailException: the task fails at once, its retries are not used (the answer would not change).
    with pytest.raises(AirflowFailException, match="the message") as failed:
        with tasks.airflow_outcomes():
            raise error("the message")
    assert failed.value.__cause__ is None and failed.value.__suppress_context__


@pytest.mark.parametrize("error", [errors.SourceError, OSError, errors.RegistryError])
def test_a_flaky_source_or_store_is_left_to_the_retries(error):
    with pytest.raises(error):
        with tasks.airflow_outcomes():
            raise error("try again")


@pytest.mark.parametrize("error", [errors.PromotionRefused, errors.ChampionMoved, ConfigError])
def test_a_registry_refusal_fails_without_retry(error):
    with pytest.raises(AirflowFailException, match="refused"):
        with tasks.registry_outcomes():
            raise error("refused")


@pytest.mark.parametrize("error", [errors.NoModel, errors.PartitionNotReady])
def test_no_model_or_no_partition_to_score_skips(error):
    with pytest.raises(AirflowSkipException, match="nothing to score"):
        with tasks.registry_outcomes():
            raise error("nothing to score")


def test_a_busy_lock_or_an_unknown_registry_error_is_retried():
    # RegistryError itself (a busy lock, a flaky store) is not a refusal: the retries handle it.
    with pytest.raises(errors.RegistryError):
        with tasks.registry_outcomes():
            raise errors.RegistryError("lock busy")
    with pytest.raises(TimeoutError):
        with tasks.registry_outcomes():
            raise TimeoutError("lock busy")


def test_outcomes_let_a_clean_body_through():
    with tasks.airflow_outcomes():
        done = 1
    with tasks.registry_outcomes():
        done += 1
    assert done == 2


# --- params, facts, user --------------------------------------------------------------------------------


def test_task_params_is_the_env_file_else_the_projects_own(make_project, monkeypatch):
    path = make_project({"prepare": {"window_days": 9}})
    monkeypatch.setenv(PARAMS_ENV, str(path))
    assert tasks.task_params().prepare.window_days == 9
    monkeypatch.delenv(PARAMS_ENV)
    assert tasks.PROJECT_ROOT == Path(__file__).resolve().parents[3]
    assert tasks.model_params(None).root == tasks.PROJECT_ROOT  # the repo's models/: its only model
    assert tasks.model_params(None).source_file == tasks.PROJECT_ROOT / "models" / "churn.yaml"


def test_task_params_of_a_models_deployment_follow_the_dag_id(tmp_path, monkeypatch):
    from airflow.sdk.execution_time.context import set_current_context

    from tests.conftest import write_models_project

    folder = write_models_project(tmp_path / "p", {"churn": {}, "fraud": {"prepare": {"window_days": 9}}})
    monkeypatch.setenv(PARAMS_ENV, str(folder))
    for dag_id, window in (("training__fraud", 9), ("drift_monitor__churn", 14)):
        with set_current_context(_context(dag_id=dag_id)):
            assert tasks.task_params().prepare.window_days == window
            assert tasks.current_model() == dag_id.split("__")[1]
    with set_current_context(_context(dag_id="training__gone")), pytest.raises(ConfigError, match="no model 'gone'"):
        tasks.task_params()


def test_run_facts_are_the_run_context_with_the_runs_page(make_project, no_ui_config):
    no_ui_config.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example/")
    params = load_params(make_project())
    facts = tasks.run_facts(_context({"as_of": "2026-03-31", "window_days": 7, "force": True, "note": "n"},
                                     {"reason": "drift"}, run_id="manual__a/b", try_number=2), params)
    assert facts == {
        "ui_url": "https://airflow.example/dags/training/runs/manual__a%2Fb",
        "as_of": "2026-03-31", "dag_id": "training", "run_id": "manual__a/b", "run_type": "manual",
        "reason": "drift", "window_days": 7, "force": True, "note": "n", "trigger_report": "", "try_number": "2",
    }
    # A scheduled run without a date: its data interval's day; the reason is the run type.
    facts = tasks.run_facts(_context(run_type="scheduled", interval=datetime(2026, 3, 30)), params)
    assert facts["as_of"] == "2026-03-30" and facts["reason"] == "scheduled" and facts["window_days"] is None


def test_run_facts_check_the_window_a_training_run_allows(make_project):
    params = load_params(make_project())
    with pytest.raises(UnsafeInput, match="window_days"):
        tasks.run_facts(_context({"window_days": 1}), params)


def test_monitor_facts_allow_a_one_day_check_and_name_the_run():
    facts = tasks.monitor_facts(_context({"window_days": 1}, dag_id="drift_monitor", run_id="r1",
                                         run_type="asset_triggered"))
    assert facts == {"as_of": "2026-04-01", "window_days": 1, "dag_id": "drift_monitor", "run_id": "r1",
                     "run_type": "asset_triggered"}
    with pytest.raises(UnsafeInput, match="window_days"):
        tasks.monitor_facts(_context({"window_days": 0}))


def test_run_user_names_the_triggering_user_else_airflow():
    assert tasks.run_user(_context(user="alice", dag_id="promote", run_id="r9")) == "alice via promote/r9"
    assert tasks.run_user(_context(dag_id="rollback", run_id="r1")) == "airflow via rollback/r1"


def test_landing_glob_is_read_when_called_and_makes_the_landing_folders(make_project, monkeypatch):
    path = make_project()
    monkeypatch.setenv(PARAMS_ENV, str(path))
    params = load_params(path)
    assert not params.landing_dir.exists()
    glob = tasks.landing_glob()
    assert glob == os.path.join(str(params.landing_dir.resolve()), "*")
    assert params.landing_dir.is_dir() and params.staging_dir.is_dir() and params.landing_quarantine_dir.is_dir()


# --- links ----------------------------------------------------------------------------------------------


def test_ui_urls_come_from_the_api_config(no_ui_config):
    no_ui_config.setenv("AIRFLOW__API__HOST", "0.0.0.0")  # noqa: S104 - a config value, nothing binds
    no_ui_config.setenv("AIRFLOW__API__PORT", "8123")
    assert links.ui_base_url() == "http://localhost:8123"
    assert links.link_base_url() == ""  # a path on the server the user is on
    assert links.run_ui_url("training", "scheduled__2026-04-01T00:00:00+00:00") == (
        "http://localhost:8123/dags/training/runs/scheduled__2026-04-01T00%3A00%3A00%2B00%3A00"
    )
    no_ui_config.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example/sub/")
    assert links.ui_base_url() == links.link_base_url() == "https://airflow.example/sub"
