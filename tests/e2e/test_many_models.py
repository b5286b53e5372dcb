"""Many models, one deployment, through a real Airflow scheduler (tests/integration/scheduler_stack.py):
a models/ folder of two binary models on different source tables, ``churn`` and ``fraud``.

In order, sharing the stack:

1. every DAG kind is built for both models, paused, tagged with the model; no import error;
2. both train at the same time (their DVC steps take turns in the one ``dvc`` pool): churn promotes its
   first champion while fraud trains one day and quarantines its bad batch of the next, in its own
   folders only;
3. a backfill of ``training__fraud`` leaves churn alone (its runs, files and registered model);
4. a third file dropped into models/ shows up as its DAGs after the next parse; a broken one gives an
   import error naming the file and the key while the others stay; removing a file removes its DAGs.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import yaml

from retrainer.datagen import IncidentSpec, seed_source
from retrainer.storage import md5_file
from retrainer_launcher import airflow_api
from tests.conftest import AS_OF
from tests.integration.scheduler_stack import BACKFILL_TIMEOUT, ROWS_PER_DAY, RUN_TIMEOUT, scheduler_stack

pytestmark = pytest.mark.e2e

BAD_DAY = AS_OF  # fraud's bad batch
FRAUD_DAY = AS_OF - timedelta(days=1)
BACKFILL_DAY = AS_OF - timedelta(days=2)
PARSE_TIMEOUT = 180
QUIET = {"out": lambda _msg: None}


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    models = {"churn": {}, "fraud": {"source": {"table": "fraud_events"}, "project": {"seed": 7}}}
    # Re-parse DAG files every few seconds: a new or broken model file shows up quickly.
    extra = {"AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5"}
    first = BACKFILL_DAY - timedelta(days=6)  # the backfilled run's window
    with scheduler_stack(tmp_path_factory.mktemp("models"), first, AS_OF, models=models, extra_env=extra) as running:
        yield running


def _versions(params) -> list:
    from retrainer.tracking import mlflow_client

    client, name = mlflow_client(params), params.model.registered_name
    found = client.search_model_versions(f"name = '{name}'")
    # Search results carry no aliases: read each version.
    return [client.get_model_version(name, str(v.version)) for v in sorted(found, key=lambda v: int(v.version))]


def _trigger(running, dag: str, day) -> None:
    """Trigger run ``test__<day>`` of ``dag``. A loaded api-server may answer after the client gave up: the
    run id is fixed, so a retry finds the run made by the first try instead of making a second one."""
    from retrainer_launcher.http_client import HttpError

    run_id = f"test__{day.isoformat()}"
    for attempt in range(3):
        try:
            airflow_api.trigger_run(running.api, running.token, dag, {"as_of": day.isoformat()}, run_id=run_id)
            return
        except HttpError as exc:
            if exc.status == 409:  # made by a try that timed out
                return
            raise
        except OSError:  # TimeoutError: the answer did not come within the client's timeout
            if attempt == 2:
                raise
            time.sleep(5)


def _files(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): md5_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_every_dag_kind_is_built_per_model(running):
    for model in ("churn", "fraud"):
        for kind in ("training", "drift_monitor", "ingest_landing", "batch_scoring", "promote", "rollback"):
            dag = airflow_api.wait_for_dag(running.api, running.token, f"{kind}__{model}", PARSE_TIMEOUT, **QUIET)
            assert dag["is_paused"] and f"model:{model}" in {t["name"] for t in dag["tags"]}, dag
    assert airflow_api.import_errors(running.api, running.token) == []
    for model in ("churn", "fraud"):
        running.cli("dags", "unpause", f"training__{model}")


def test_both_train_and_a_bad_batch_is_quarantined_in_its_model_only(running):
    churn, fraud = running.models["churn"], running.models["fraud"]
    assert churn.source.table != fraud.source.table and churn.data_dir != fraud.data_dir
    seed_source(fraud.source_url, fraud.source.table, BAD_DAY, BAD_DAY, ROWS_PER_DAY, fraud.project.seed,
                incidents=[IncidentSpec(day=BAD_DAY, kind="unseen_category")])
    for dag, day in (("training__churn", AS_OF), ("training__fraud", FRAUD_DAY), ("training__fraud", BAD_DAY)):
        _trigger(running, dag, day)
    [churn_run] = running.wait_runs("training__churn", lambda r: r["dag_run_id"].startswith("test__"), 1,
                                    RUN_TIMEOUT, "churn's run")
    assert churn_run["state"] == "success"
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        runs = {r["dag_run_id"]: r["state"] for r in running.runs("training__fraud") if r["dag_run_id"].startswith("test__")}
        if all(state in airflow_api.TERMINAL_RUN_STATES for state in runs.values()) and len(runs) == 2:
            break
        assert time.monotonic() < deadline, runs
        time.sleep(3)
    assert runs == {f"test__{FRAUD_DAY}": "success", f"test__{BAD_DAY}": "failed"}, running.failure_report(
        "training__fraud", running.runs("training__fraud"))

    # churn promoted its champion; fraud trained its good day, and its bad day is quarantined in its folders.
    assert [("champion" in v.aliases, v.tags["retrainer.as_of"]) for v in _versions(churn)] == [(True, AS_OF.isoformat())]
    assert [v.tags["retrainer.as_of"] for v in _versions(fraud)] == [FRAUD_DAY.isoformat()]
    assert (fraud.data_dir / "quarantine" / f"dt={BAD_DAY}" / "part.parquet").exists()
    assert not (churn.data_dir / "quarantine").exists()
    assert (churn.data_dir / "raw" / f"dt={BAD_DAY}" / "part.parquet").exists()  # the same day, churn's table
    assert churn.reports_dir != fraud.reports_dir and (churn.reports_dir / "validation").is_dir()


def test_a_backfill_of_one_model_leaves_the_other_alone(running):
    churn, fraud = running.models["churn"], running.models["fraud"]
    # churn's scheduled run (made when it was unpaused; no rows that day) has ended: nothing of churn moves.
    running.wait_runs("training__churn", lambda r: True, len(running.runs("training__churn")), RUN_TIMEOUT, "churn")
    before = (_files(churn.data_dir), _files(churn.reports_dir), len(_versions(churn)),
              [r["dag_run_id"] for r in running.runs("training__churn")])
    running.cli("backfill", "create", "--dag-id", "training__fraud",
                "--from-date", BACKFILL_DAY.isoformat(), "--to-date", BACKFILL_DAY.isoformat())
    [backfill] = running.rest("GET", "backfills?dag_id=training__fraud")["backfills"]
    [run] = running.wait_runs("training__fraud", lambda r: r["run_type"] == "backfill", 1, BACKFILL_TIMEOUT,
                              "fraud's backfill")
    running.wait_backfill(backfill["id"], dag_id="training__fraud")
    assert run["state"] == "success" and run["data_interval_start"][:10] == BACKFILL_DAY.isoformat()
    assert BACKFILL_DAY.isoformat() in {v.tags["retrainer.as_of"] for v in _versions(fraud)}
    after = (_files(churn.data_dir), _files(churn.reports_dir), len(_versions(churn)),
             [r["dag_run_id"] for r in running.runs("training__churn")])
    assert after == before
    assert not running.rest("GET", "backfills?dag_id=training__churn")["backfills"]


def _wait(what: str, check) -> None:
    deadline = time.monotonic() + PARSE_TIMEOUT
    while not check():
        assert time.monotonic() < deadline, f"not within {PARSE_TIMEOUT}s: {what}"
        time.sleep(3)


def _dag(running, dag_id: str) -> dict | None:
    from retrainer_launcher.http_client import HttpError

    try:
        return running.rest("GET", f"dags/{dag_id}")
    except HttpError:
        return None


def test_model_files_added_broken_and_removed_on_the_next_parse(running):
    folder = running.deployment.models_dir
    third = yaml.safe_load((folder / "churn.yaml").read_text())
    third["source"]["table"] = "third_events"
    (folder / "third.yaml").write_text(yaml.safe_dump(third))
    dag = airflow_api.wait_for_dag(running.api, running.token, "training__third", PARSE_TIMEOUT, **QUIET)
    assert "model:third" in {t["name"] for t in dag["tags"]}

    (folder / "broken.yaml").write_text("prepare:\n  window_days: four weeks\n")

    def broken_reported() -> bool:
        return any("broken.yaml" in (e.get("stack_trace") or "") for e in airflow_api.import_errors(running.api, running.token))

    _wait("an import error naming broken.yaml", broken_reported)
    [error] = airflow_api.import_errors(running.api, running.token)
    assert error["filename"].endswith("model_files.py")
    assert "prepare.window_days (set in broken.yaml)" in error["stack_trace"]
    assert _dag(running, "training__broken") is None
    for dag_id in ("training__churn", "training__fraud", "training__third"):  # the others keep their DAGs
        assert _dag(running, dag_id)["is_stale"] is False, dag_id

    (folder / "third.yaml").unlink()
    (folder / "broken.yaml").unlink()
    _wait("training__third gone", lambda: (_dag(running, "training__third") or {"is_stale": True})["is_stale"])
    _wait("the import error cleared", lambda: airflow_api.import_errors(running.api, running.token) == [])
    assert _dag(running, "training__churn")["is_stale"] is False
