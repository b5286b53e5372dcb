"""The `training` DAG on the production topology: CeleryExecutor with two workers on Redis, Postgres
metadata DB, MLflow tracking server with basic auth, all set up from docker-compose.yaml.

The tests share the session's stack and run in order: a first run makes the champion; then a
drift-triggered run and a 4-day backfill (max-active-runs 4) run together across both workers.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse

import pytest

from retrainer_launcher import airflow_api, http_client
from tests.conftest import AS_OF
from tests.integration.conftest import Topology, days_before

pytestmark = pytest.mark.integration
DAG = "training"
WORKERS = {"127.0.0.1", "127.0.0.2"}  # the task-instance hostnames of celery-worker-1 and -2
RUNS: dict[str, list[str]] = {}


def _tis(topology: Topology, token: str, run_id: str) -> list[dict]:
    return airflow_api.task_instances(topology.api, token, DAG, run_id)


def _wait(topology: Topology, token: str, run_id: str, timeout: float = 420) -> dict:
    lines: list[str] = []
    run = airflow_api.wait_for_run(topology.api, token, DAG, run_id, timeout=timeout, poll=3, out=lines.append)
    if run["state"] != "success":
        logs = [
            airflow_api.task_log_tail(topology.api, token, DAG, run_id, ti)
            for ti in airflow_api.failed_tasks(topology.api, token, DAG, run_id)
        ]
        pytest.fail(f"run {run_id} ended {run['state']}:\n" + "\n".join(lines) + "\n" + "\n".join(logs))
    return run


def _mlflow_runs(topology: Topology) -> list[dict]:
    experiment = topology.mlflow_get("experiments/get-by-name", experiment_name="retrainer-training")
    experiment_id = experiment["experiment"]["experiment_id"]
    import base64

    auth = base64.b64encode(f"admin:{topology.variables['MLFLOW_ADMIN_PASSWORD']}".encode()).decode()
    answer = http_client.http(
        "POST",
        f"{topology.mlflow}/api/2.0/mlflow/runs/search",
        {"experiment_ids": [experiment_id], "max_results": 100},
        headers={"Authorization": f"Basic {auth}"},
    )
    return answer.get("runs", [])


def _tags(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def test_a_training_run_succeeds_on_celery_and_postgres(topology: Topology) -> None:
    token = topology.token()
    airflow_api.wait_for_dag(topology.api, token, DAG, timeout=180, out=lambda _: None)
    airflow_api.set_paused(topology.api, token, DAG, paused=False)
    started = time.monotonic()
    run = airflow_api.trigger_run(topology.api, token, DAG, {"as_of": AS_OF.isoformat(), "note": "integration"})
    finished = _wait(topology, token, run["dag_run_id"])
    print(f"training run on Celery/Postgres: {time.monotonic() - started:.0f}s from trigger to end, "
          f"{airflow_api.run_duration(finished):.0f}s running")
    RUNS["first"] = [run["dag_run_id"]]

    tis = _tis(topology, token, run["dag_run_id"])
    states = {ti["task_id"]: ti["state"] for ti in tis}
    steps = {"ingest", "validate", "prepare", "train", "evaluate", "register"}
    # registry.promotion is auto: the approval tasks skip themselves (nothing awaits a person).
    assert states == {**dict.fromkeys(steps, "success"), "approve": "skipped", "apply_approval": "skipped"}
    ran = [ti for ti in tis if ti["task_id"] in steps]
    assert {ti["hostname"] for ti in ran} <= WORKERS  # run by the Celery workers, nothing else

    model = topology.mlflow_get("registered-models/get", name="retrainer-churn")["registered_model"]
    aliases = {a["alias"]: a["version"] for a in model.get("aliases", [])}
    assert aliases == {"champion": "1", "challenger": "1"}


def test_a_drift_triggered_run_and_a_four_day_backfill_spread_over_both_workers(topology: Topology) -> None:
    from retrainer.config import load_params

    params = load_params(topology.params_file)
    token = topology.token()
    report = params.reports_dir / "drift" / f"as_of={AS_OF.isoformat()}" / "drift.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({"dataset_drift": True, "drift_share": 0.6}))
    # What drift_monitor sends: the same REST call, with the reason and its report.
    drift = airflow_api.trigger_run(
        topology.api, token, DAG,
        {"as_of": AS_OF.isoformat(), "reason": "drift", "report": str(report), "force": True},
        note="drift detected",
    )
    first, last = days_before(4), days_before(1)
    backfill = http_client.http(
        "POST",
        f"{topology.api}/api/v2/backfills",
        {
            "dag_id": DAG,
            "from_date": f"{first}T00:00:00Z",
            "to_date": f"{last}T00:00:00Z",
            "max_active_runs": 4,
            "reprocess_behavior": "none",
        },
        token,
    )
    assert backfill["max_active_runs"] == 4

    def backfill_runs() -> list[dict]:
        answer = http_client.http("GET", f"{topology.api}/api/v2/dags/{DAG}/dagRuns?run_type=backfill&limit=100", token=token)
        return answer.get("dag_runs", [])

    runs = http_client.wait_for("4 backfill runs", lambda: (r := backfill_runs()) and len(r) >= 4 and r, 120, 2.0)
    assert len(runs) == 4
    RUNS["drift"] = [drift["dag_run_id"]]
    RUNS["backfill"] = [r["dag_run_id"] for r in runs]
    for run_id in [drift["dag_run_id"], *RUNS["backfill"]]:
        _wait(topology, token, run_id, timeout=600)

    hostnames = {ti["hostname"] for run_id in RUNS["backfill"] for ti in _tis(topology, token, run_id)
                 if ti["state"] != "skipped"}  # a skipped approval task may never have reached a worker
    assert hostnames == WORKERS, f"backfill tasks ran on {hostnames}, expected both workers"

    by_run = {_tags(r).get("airflow.run_id"): r for r in _mlflow_runs(topology)}
    backfilled = {_tags(by_run[run_id])["retrainer.as_of"] for run_id in RUNS["backfill"]}
    assert backfilled == {days_before(n) for n in (4, 3, 2, 1)}  # each run trains as of its own day
    drift_tags = _tags(by_run[drift["dag_run_id"]])
    assert drift_tags["airflow.reason"] == "drift"
    assert drift_tags["airflow.trigger_report"] == str(report.resolve())
    assert drift_tags["retrainer.as_of"] == AS_OF.isoformat()


def test_four_concurrent_runs_leave_a_consistent_dvc_repo_and_complete_lineage(topology: Topology) -> None:
    """After the 4-run backfill (max-active-runs 4, both workers): DVC cache and remote agree with every
    stub, everything can be fetched back, and each backfilled model has a full lineage record."""
    import subprocess
    import sys
    from pathlib import Path

    from retrainer import versioning
    from retrainer.config import load_params
    from retrainer.storage import md5_file

    if not RUNS.get("backfill"):
        pytest.fail("needs the backfill of test_a_drift_triggered_run_and_a_four_day_backfill_spread_over_both_workers")
    params = load_params(topology.params_file)
    partitions = sorted((params.data_dir / "raw").glob("dt=*/part.parquet"))
    assert partitions and all(p.with_name("part.parquet.dvc").exists() for p in partitions)
    # `dvc status` and `dvc status --cloud`: workspace, cache and remote all agree.
    assert versioning.status_clean(params.root, partitions, remote_name=params.dvc.remote_name)
    # `dvc fetch` of every partition from the remote restores the same bytes.
    recorded = {p: versioning.file_md5(params.root, p) for p in partitions}
    for p in partitions:
        p.unlink()
    versioning.fetch(params.root, partitions, params.dvc.remote_name)
    assert {p: md5_file(p) for p in partitions} == recorded

    env = {**os.environ, **topology.stack.client_env(), "RETRAINER_PARAMS": str(topology.params_file)}
    by_run = {_tags(r).get("airflow.run_id"): r for r in _mlflow_runs(topology)}
    for run_id in RUNS["backfill"]:
        mlflow_run_id = by_run[run_id]["info"]["run_id"]
        versions = topology.mlflow_get("model-versions/search", filter=f"run_id = '{mlflow_run_id}'")["model_versions"]
        assert len(versions) == 1, f"{run_id}: expected one model version, got {versions}"
        shown = subprocess.run(
            [str(Path(sys.executable).parent / "retrainer"), "lineage", "retrainer-churn", versions[0]["version"], "--json"],
            env=env, cwd=params.root, capture_output=True, text=True, timeout=120,
        )
        assert shown.returncode == 0, shown.stderr
        record = json.loads(shown.stdout)
        assert record["airflow"]["run_id"] == run_id and record["airflow"]["run_type"] == "backfill"
        assert record["airflow"]["ui_url"] and record["airflow"]["try_number"]
        assert record["manifest_sha256"] and record["data_hash"] and record["code_version"] and record["packages"]
        for part in record["partitions"]:  # each one names bytes the remote still has
            assert recorded[params.data_dir / "raw" / f"dt={part['day']}" / "part.parquet"] == part["md5"], part


def test_the_mlflow_server_holds_the_runs_models_and_aliases(topology: Topology) -> None:
    runs = _mlflow_runs(topology)
    assert len(runs) >= 6  # first, drift (forced: a new model) and the 4 backfilled days
    run_ids = {r["info"]["run_id"] for r in runs}
    assert all(r["info"]["status"] == "FINISHED" for r in runs)

    model = topology.mlflow_get("registered-models/get", name="retrainer-churn")["registered_model"]
    aliases = {a["alias"]: a["version"] for a in model.get("aliases", [])}
    assert set(aliases) == {"champion", "challenger"}
    versions = topology.mlflow_get(
        "model-versions/search", filter=f"name = '{urllib.parse.quote('retrainer-churn', safe='-')}'"
    )["model_versions"]
    assert len(versions) >= 6
    assert {v["run_id"] for v in versions} <= run_ids
    assert aliases["champion"] in {v["version"] for v in versions}

    # The artifacts went through the server (--serve-artifacts) into its artifact destination.
    destination = topology.stack.home / "mlflow-artifacts"
    assert destination == type(destination)(topology.variables["MLFLOW_ARTIFACTS_DESTINATION"])
    assert any(p.name == "MLmodel" for p in destination.rglob("MLmodel"))
    assert all(r["info"]["artifact_uri"].startswith("mlflow-artifacts:") for r in runs)
