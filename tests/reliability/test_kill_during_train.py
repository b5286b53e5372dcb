"""A `train` task killed by SIGKILL while its MLflow run is open, then retried by a real Airflow scheduler:
the retry ends the killed attempt's run as KILLED, tagged with the retry that ended it, and registers
exactly one version. Nothing stays RUNNING.

A real stack (tests/integration/scheduler_stack.py: scheduler, api-server, LocalExecutor, SQLite), a
real MLflow store and a real kill: the test watches the store for the train task's run to appear as
RUNNING, reads the process that made it from its attempt tag, and kills that process.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pytest

from retrainer.names import TRAINING_DAG
from retrainer.tracking import ATTEMPT_TAG, ENDED_BY_TAG, RUN_KEY_TAG, ensure_experiment, mlflow_client
from retrainer_launcher import airflow_api
from tests.conftest import AS_OF
from tests.integration.scheduler_stack import RUN_TIMEOUT, scheduler_stack

pytestmark = pytest.mark.e2e


def _runs(client, experiment_id: str) -> list:
    return client.search_runs([experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` != ''")


def _kill_the_running_train(client, experiment_id: str, timeout: float) -> tuple[str, str]:
    """Wait for a RUNNING training run, SIGKILL the process its attempt tag names; its run id and attempt."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in _runs(client, experiment_id):
            attempt = run.data.tags.get(ATTEMPT_TAG, "")
            if run.info.status == "RUNNING" and attempt:
                os.kill(int(attempt.rpartition(":")[2]), signal.SIGKILL)
                return run.info.run_id, attempt
        time.sleep(0.05)
    pytest.fail(f"no RUNNING training run appeared within {timeout:.0f}s")


def test_a_retry_after_a_killed_train_ends_the_killed_run_and_registers_once(tmp_path):
    with scheduler_stack(tmp_path / "kill", AS_OF - timedelta(days=7), AS_OF) as stack:
        params = stack.params
        client = mlflow_client(params)
        experiment_id = ensure_experiment(params)
        airflow_api.wait_for_dag(stack.api, stack.token, TRAINING_DAG, timeout=180, out=lambda _msg: None)
        airflow_api.trigger_run(stack.api, stack.token, TRAINING_DAG, {"as_of": AS_OF.isoformat()},
                                run_id="kill_train")
        airflow_api.set_paused(stack.api, stack.token, TRAINING_DAG, paused=False)
        killed_run, killed_attempt = _kill_the_running_train(client, experiment_id, RUN_TIMEOUT)

        [run] = stack.wait_runs(TRAINING_DAG, lambda r: r["dag_run_id"] == "kill_train", 1, RUN_TIMEOUT,
                                "the run whose train was killed")
        assert run["state"] == "success"
        train = next(ti for ti in airflow_api.task_instances(stack.api, stack.token, TRAINING_DAG, "kill_train")
                     if ti["task_id"] == "train")
        assert train["try_number"] >= 2, f"train was not retried: {train}"

        runs = {r.info.run_id: r for r in _runs(client, experiment_id)}
        assert [r.info.status for r in runs.values()].count("RUNNING") == 0, {k: r.info.status for k, r in runs.items()}
        killed = runs[killed_run]
        assert killed.info.status == "KILLED" and killed.info.end_time
        ended_by = killed.data.tags[ENDED_BY_TAG]
        assert "retry" in ended_by and "kill_train" in ended_by and killed_attempt not in ended_by, ended_by
        [finished] = [r for r in runs.values() if r.info.status == "FINISHED"]
        assert finished.data.tags[RUN_KEY_TAG] == killed.data.tags[RUN_KEY_TAG]
        assert finished.data.tags[ATTEMPT_TAG] in ended_by
        versions = client.search_model_versions(f"name = '{params.model.registered_name}'")
        assert [v.run_id for v in versions] == [finished.info.run_id]
