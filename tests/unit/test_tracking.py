"""retrainer.tracking against a real local MLflow store (a SQLite file): where the URIs
point, experiments and run keys, and the registry reads (aliases, as-of dates, history, status)."""

from __future__ import annotations

import json
import os

import pytest

from retrainer.config import TRACKING_URI_ENV, Params, load_params
from retrainer.names import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION
from retrainer.tracking import (
    AS_OF_TAG,
    GATE_TAG,
    HISTORY_TAG,
    RUN_KEY_TAG,
    alias_version,
    champion_history,
    champion_summary,
    current_alias,
    ensure_experiment,
    find_finished_run,
    mlflow_client,
    registry_status,
    version_as_of,
    version_number,
)


@pytest.fixture
def params(make_project) -> Params:
    """A project whose tracking store is a SQLite file, as params.yaml has it (MLflow 3 refuses a folder
    store unless MLFLOW_ALLOW_FILE_STORE opts in)."""
    return load_params(make_project())


def _run(params: Params, key: str | None = None, as_of: str | None = None, status: str = "FINISHED") -> str:
    client = mlflow_client(params)
    tags = {k: v for k, v in ((RUN_KEY_TAG, key), (AS_OF_TAG, as_of)) if v}
    run = client.create_run(ensure_experiment(params), tags=tags)
    client.set_terminated(run.info.run_id, status=status)
    return run.info.run_id


def _version(params: Params, run_id: str, tags: dict | None = None) -> str:
    client = mlflow_client(params)
    name = params.model.registered_name
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    return str(client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id, tags=tags).version)


def test_a_relative_sqlite_store_is_the_projects_and_the_environment_overrides_it(make_project, monkeypatch):
    import mlflow

    params = load_params(make_project())
    assert params.tracking_uri == f"sqlite:///{params.root / '.mlflow' / 'mlflow.db'}"
    client = mlflow_client(params)
    assert client.tracking_uri == mlflow.get_tracking_uri() == mlflow.get_registry_uri() == params.tracking_uri

    other = f"sqlite:///{params.root / 'elsewhere.db'}"
    monkeypatch.setenv(TRACKING_URI_ENV, other)
    assert params.tracking_uri == other and mlflow_client(params).tracking_uri == other
    assert mlflow.get_tracking_uri() == other


def test_each_params_gets_its_own_store_in_one_process(make_project):
    """A long-lived process (the scheduler's preloaded worker) may serve two projects in turn."""
    import mlflow

    first, second = load_params(make_project()), load_params(make_project())
    assert first.tracking_uri != second.tracking_uri
    ensure_experiment(first, "only-in-first")
    assert mlflow_client(second).get_experiment_by_name("only-in-first") is None
    assert mlflow.get_tracking_uri() == second.tracking_uri
    assert mlflow_client(first).get_experiment_by_name("only-in-first") is not None


def test_experiments_are_created_once_with_artifacts_under_the_project(params):
    experiment_id = ensure_experiment(params)
    assert ensure_experiment(params) == experiment_id
    experiment = mlflow_client(params).get_experiment(experiment_id)
    assert experiment.name == params.mlflow.experiment
    assert experiment.artifact_location == (params.artifact_root / params.mlflow.experiment).resolve().as_uri()


def test_a_finished_run_is_found_by_its_key_and_an_unfinished_one_is_not(params):
    experiment_id = ensure_experiment(params)
    assert find_finished_run(params, experiment_id, "k1") is None
    _run(params, key="k1", status="FAILED")
    assert find_finished_run(params, experiment_id, "k1") is None
    done = _run(params, key="k1")
    _run(params, key="k2")
    assert find_finished_run(params, experiment_id, "k1").info.run_id == done


def test_current_alias_is_none_until_the_model_and_the_alias_exist(params):
    assert current_alias(params, CHAMPION) is None  # no registered model
    assert alias_version(params, CHAMPION) is None
    run_id = _run(params, as_of="2026-03-01")
    version = _version(params, run_id)
    assert current_alias(params, CHAMPION) is None  # the model, but no alias
    mlflow_client(params).set_registered_model_alias(params.model.registered_name, CHAMPION, version)
    found = current_alias(params, CHAMPION)
    assert (str(found.version), found.run_id, alias_version(params, CHAMPION)) == (version, run_id, version)
    assert current_alias(params, CHALLENGER) is None
    assert version_number(found) == version and version_number(None) is None


def test_a_versions_as_of_date_is_its_tag_else_its_runs(params):
    tagged = _version(params, _run(params, as_of="2026-03-01"), {AS_OF_TAG: "2026-03-05"})
    untagged = _version(params, _run(params, as_of="2026-03-02"))
    neither = _version(params, _run(params))
    client, name = mlflow_client(params), params.model.registered_name
    assert version_as_of(params, client.get_model_version(name, tagged)) == "2026-03-05"
    assert version_as_of(params, client.get_model_version(name, untagged)) == "2026-03-02"
    assert version_as_of(params, client.get_model_version(name, neither)) is None
    assert version_as_of(params, None) is None


def test_champion_history_summary_and_status_read_the_registry(params):
    assert champion_history(params) == [] and champion_summary(params) is None
    client, name = mlflow_client(params), params.model.registered_name
    first = _version(params, _run(params, as_of="2026-03-01"), {GATE_TAG: "passed"})
    second = _version(params, _run(params, as_of="2026-03-02"), {GATE_TAG: "passed", AS_OF_TAG: "2026-03-02"})
    client.log_metric(client.get_model_version(name, second).run_id, "holdout_roc_auc", 0.81)
    for alias, version in ((PREVIOUS_CHAMPION, first), (CHAMPION, second), (CHALLENGER, second)):
        client.set_registered_model_alias(name, alias, version)
    history = [{"seq": 1, "action": "auto", "version": first}, {"seq": 2, "action": "auto", "version": second}]
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))

    assert champion_history(params) == history
    summary = champion_summary(params)
    assert summary == {
        "name": name,
        "version": second,
        "aliases": sorted([CHAMPION, CHALLENGER]),
        "metric_name": "holdout_roc_auc",
        "metric_value": 0.81,
        "run_id": client.get_model_version(name, second).run_id,
        "as_of": "2026-03-02",
        "previous_version": first,
        "challenger_version": second,
    }
    status = registry_status(params, limit=1)
    assert status["aliases"] == {CHAMPION: second, CHALLENGER: second, PREVIOUS_CHAMPION: first}
    assert [v["version"] for v in status["versions"]] == [second]
    newest = status["versions"][0]
    assert newest["aliases"] == sorted([CHAMPION, CHALLENGER]) and newest["gate"] == "passed"
    assert newest["as_of"] == "2026-03-02" and newest["demoted"] is None
    assert status["history"] == history


def test_a_retry_ends_runs_left_running_by_a_dead_attempt_and_leaves_live_ones_alone(params):
    """A CLI run killed on this host (its process is gone) and an earlier try of the same Airflow task are
    ended as KILLED with the retry named; a run of a live process of another Airflow run is left RUNNING."""
    import subprocess
    import sys

    from retrainer.tracking import ATTEMPT_TAG, ENDED_BY_TAG, attempt_id, end_abandoned_runs

    client = mlflow_client(params)
    experiment = ensure_experiment(params)
    host = attempt_id().rpartition(":")[0]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()  # a process that has ended: its pid runs nothing now

    def running(attempt: str, **airflow: str) -> str:
        tags = {RUN_KEY_TAG: "k1", ATTEMPT_TAG: attempt, **{f"airflow.{k}": v for k, v in airflow.items()}}
        return client.create_run(experiment, tags=tags).info.run_id

    killed_cli = running(f"{host}:{dead}", dag_id="cli")
    earlier_try = running("worker-2:4242", dag_id="training", run_id="manual__1")
    live_other = running(f"{host}:{os.getppid()}", dag_id="training", run_id="manual__2")
    other_key = client.create_run(experiment, tags={RUN_KEY_TAG: "k2", ATTEMPT_TAG: f"{host}:{dead}"}).info.run_id

    ended = end_abandoned_runs(params, experiment, "k1", {"dag_id": "training", "run_id": "manual__1"})
    assert sorted(ended) == sorted([killed_cli, earlier_try])
    for run_id in ended:
        run = client.get_run(run_id)
        assert run.info.status == "KILLED" and run.info.end_time
        assert f"retry, attempt {attempt_id()}" in run.data.tags[ENDED_BY_TAG]
    assert "(Airflow training manual__1)" in client.get_run(earlier_try).data.tags[ENDED_BY_TAG]
    assert client.get_run(live_other).info.status == "RUNNING"
    assert client.get_run(other_key).info.status == "RUNNING"
    assert end_abandoned_runs(params, experiment, "k1", {"dag_id": "cli"}) == []  # nothing left to end
