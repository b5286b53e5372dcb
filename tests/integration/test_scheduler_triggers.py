"""New data, schedules and backfills through a real Airflow scheduler, driven like a user would.

One real stack (api-server, scheduler, dag-processor, triggerer, LocalExecutor, SQLite metadata DB)
runs in a temporary AIRFLOW_HOME against a temporary project (params.yaml, SQLite source, DVC repo,
MLflow store). The tests talk to Airflow only through its CLI and REST API, and look at the files,
the DVC stubs and the MLflow registry the runs leave behind. They run in order and share the stack:

1. both DAGs are parsed, paused, and `training` shows its next scheduled run once unpaused;
2. a CSV dropped into the landing folder -> `ingest_landing` (deferrable sensor) -> a `training`
   run for that day -> the first champion;
3. `airflow backfill create` over the 7 days before it, --max-active-runs 2 -> 7 successful runs,
   7 distinct as-of dates, 7 new versions tagged `backfill`, the newer champion untouched;
4. the same backfill again through `POST /api/v2/backfills` with reprocess_behavior=completed ->
   identical partition hashes and metrics, no new version.

Every wait is bounded; when a run fails, the failed tasks' logs are printed.

The stack itself is tests/integration/scheduler_stack.py (ports: RETRAINER_IT_PORTS, else free ones).
"""

from __future__ import annotations

import json
import os
import time
from datetime import date, timedelta

import pytest

from retrainer.datagen import generate_day
from retrainer.storage import md5_file, partition_file
from retrainer_launcher import airflow_api
from tests.conftest import AS_OF
from tests.integration.scheduler_stack import BACKFILL_TIMEOUT, ROWS_PER_DAY, RUN_TIMEOUT, scheduler_stack

pytestmark = pytest.mark.e2e

LANDING_DAY = AS_OF
BACKFILL_DAYS = [LANDING_DAY - timedelta(days=n) for n in range(7, 0, -1)]  # the 7 days before it


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    first_day = BACKFILL_DAYS[0] - timedelta(days=6)  # the first backfill run's window
    with scheduler_stack(tmp_path_factory.mktemp("scheduler"), first_day, LANDING_DAY - timedelta(days=1)) as running:
        yield running


def test_dags_are_parsed_paused_and_training_shows_its_next_run(running):
    for dag_id in ("training", "ingest_landing"):
        dag = airflow_api.wait_for_dag(running.api, running.token, dag_id, timeout=120, out=lambda _msg: None)
        assert dag["is_paused"], f"{dag_id} must start paused"
    assert airflow_api.import_errors(running.api, running.token) == []
    running.cli("dags", "unpause", "training")
    running.cli("dags", "unpause", "ingest_landing")
    deadline = time.monotonic() + 60
    while not (dag := running.rest("GET", "dags/training")).get("next_dagrun_run_after"):
        assert time.monotonic() < deadline, f"no next run shown for training: {dag}"
        time.sleep(2)
    assert dag["timetable_summary"] and not dag["is_paused"]


def test_a_file_dropped_in_the_landing_folder_trains_a_model_for_its_day(running):
    params = running.params
    # Written under a dot-name, then renamed: the sensor never sees half a file.
    params.landing_dir.mkdir(parents=True, exist_ok=True)
    partial = params.landing_dir / ".batch.csv"
    generate_day(LANDING_DAY, ROWS_PER_DAY, seed=params.project.seed).to_csv(partial, index=False)
    os.replace(partial, params.landing_dir / f"batch-{LANDING_DAY}.csv")

    prefix = f"new_data__{LANDING_DAY.isoformat()}__"
    [run] = running.wait_runs(
        "training", lambda r: r["dag_run_id"].startswith(prefix), 1, RUN_TIMEOUT, "landing-triggered training run"
    )
    assert run["state"] == "success"
    assert run["conf"]["as_of"] == LANDING_DAY.isoformat() and run["conf"]["reason"] == "new_data"
    assert not list(params.landing_dir.iterdir())
    assert len(list(params.staging_dir.glob("*/batch-*.csv"))) == 1
    landed = partition_file(params.data_dir, LANDING_DAY)
    assert (landed.parent / "source.json").exists() and (landed.parent / "part.parquet.dvc").exists()

    [landing_run] = [r for r in running.runs("ingest_landing") if r["state"] == "success"][:1]
    tis = {t["task_id"]: t["state"] for t in airflow_api.task_instances(running.api, running.token, "ingest_landing",
                                                                         landing_run["dag_run_id"])}
    assert tis["wait_for_files"] == "success" and tis["trigger_training"] == "success", tis

    versions = _versions(params)
    assert [str(v.version) for v in versions] == ["1"]
    assert versions[0].tags["retrainer.as_of"] == LANDING_DAY.isoformat()
    assert "champion" in versions[0].aliases


def test_a_seven_day_backfill_with_two_runs_at_a_time(running):
    params = running.params
    started = time.monotonic()
    running.cli(
        "backfill", "create", "--dag-id", "training",
        "--from-date", BACKFILL_DAYS[0].isoformat(), "--to-date", BACKFILL_DAYS[-1].isoformat(),
        "--max-active-runs", "2",
    )
    [backfill] = running.rest("GET", "backfills?dag_id=training")["backfills"]
    runs = running.wait_runs("training", lambda r: r["run_type"] == "backfill", 7, BACKFILL_TIMEOUT, "backfill")
    print(f"\n7-day backfill, --max-active-runs 2: {time.monotonic() - started:.0f}s from create to the last run's end")
    assert [r["state"] for r in runs] == ["success"] * 7
    assert sorted(r["data_interval_start"][:10] for r in runs) == [d.isoformat() for d in BACKFILL_DAYS]
    # Two runs at a time, and no task needed a second try: no DVC lock error, no registry collision.
    retried = [
        (r["dag_run_id"], t["task_id"], t["try_number"])
        for r in runs
        for t in airflow_api.task_instances(running.api, running.token, "training", r["dag_run_id"])
        if t["try_number"] > 1  # 0: never ran (a skipped approval task)
    ]
    assert retried == [], f"tasks that needed another try: {retried}"
    running.wait_backfill(backfill["id"])

    versions = _versions(params)
    backfilled = [v for v in versions if v.tags.get("retrainer.run_type") == "backfill"]
    assert len(versions) == 8 and len(backfilled) == 7
    assert sorted(v.tags["retrainer.as_of"] for v in backfilled) == [d.isoformat() for d in BACKFILL_DAYS]
    champion = [v for v in versions if "champion" in v.aliases]
    assert [str(v.version) for v in champion] == ["1"], "a backfill moved the newer champion"

    running.snapshot = _snapshot(params)  # for the replay
    # Each run trained only on days up to its own as-of date.
    for as_of, facts in running.snapshot["runs"].items():
        days = [item.split(":")[0] for item in facts["partitions"].split(",")]
        assert max(days) == as_of and min(days) == (date.fromisoformat(as_of) - timedelta(days=6)).isoformat()


def test_replaying_the_backfill_gives_identical_results(running):
    before = getattr(running, "snapshot", None)
    if before is None:
        pytest.skip("needs the backfill of the previous test")
    created = running.rest(
        "POST",
        "backfills",
        {
            "dag_id": "training",
            "from_date": f"{BACKFILL_DAYS[0].isoformat()}T00:00:00Z",
            "to_date": f"{BACKFILL_DAYS[-1].isoformat()}T00:00:00Z",
            "reprocess_behavior": "completed",
            "max_active_runs": 2,
        },
    )
    running.wait_backfill(created["id"])
    runs = [r for r in running.runs("training") if r["run_type"] == "backfill"]
    if any(r["state"] != "success" for r in runs):
        pytest.fail(running.failure_report("training", runs))
    assert len(runs) == 7  # the same runs, cleared and run again

    after = _snapshot(running.params)
    assert after["partitions"] == before["partitions"]
    assert after["versions"] == before["versions"]  # no extra version, same as-of per version
    assert after["metrics"] == before["metrics"]


# --------------------------------------------------------------------------------------------------


def _versions(params) -> list:
    from retrainer.tracking import mlflow_client

    client = mlflow_client(params)
    name = params.model.registered_name
    found = client.search_model_versions(f"name = '{name}'")
    # Search results carry no aliases: read each version.
    return [client.get_model_version(name, str(v.version)) for v in sorted(found, key=lambda v: int(v.version))]


def _snapshot(params) -> dict:
    """Partition hashes, versions and the metrics of each version's training run."""
    from retrainer.tracking import mlflow_client

    client = mlflow_client(params)
    versions = _versions(params)
    runs = {v.run_id: client.get_run(v.run_id) for v in versions}
    return {
        "partitions": {p.parent.name: md5_file(p) for p in sorted((params.data_dir / "raw").glob("dt=*/part.parquet"))},
        "versions": {str(v.version): (v.tags.get("retrainer.as_of"), v.run_id) for v in versions},
        "metrics": {str(v.version): json.dumps(runs[v.run_id].data.metrics, sort_keys=True) for v in versions},
        "runs": {
            runs[v.run_id].data.tags["retrainer.as_of"]: {"partitions": runs[v.run_id].data.tags["retrainer.partitions"]}
            for v in versions
            if v.tags.get("retrainer.run_type") == "backfill"
        },
    }
