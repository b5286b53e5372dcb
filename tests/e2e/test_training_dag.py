"""The `training` DAG run by Airflow itself (`airflow dags test`) against a real SQLite source,
GX suite, DVC repo and MLflow store, all in a temporary project and AIRFLOW_HOME.

The tests share one project and run in order: a first run makes the champion, later runs check
reruns, an empty day, a bad batch and a broken params file against that state.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from retrainer.config import load_params
from retrainer.datagen import IncidentSpec, seed_source
from tests.conftest import AS_OF, REPO_ROOT, seed, write_project

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


class Airflow:
    def __init__(self, home: Path, params_file: Path):
        self.home = home
        self.params_file = params_file
        self.env = dict(os.environ)
        self.env.update(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=str(REPO_ROOT / "dags"),
            AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO_ROOT / "plugins"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__UNIT_TEST_MODE="False",
            RETRAINER_PARAMS=str(params_file),
            PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        self.env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)

    def cli(self, *args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "airflow"), *args], env=env or self.env, capture_output=True, text=True, timeout=timeout
        )

    def dags_test(self, conf: dict, env: dict | None = None) -> tuple[bool, str]:
        done = self.cli("dags", "test", "training", "-c", json.dumps(conf), env=env)
        output = done.stdout + done.stderr
        (self.home / "last_dags_test.log").write_text(output)
        succeeded = done.returncode == 0 and " successful [" in output
        return succeeded, output


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    params_file = write_project(root / "project", git=True)
    seed(params_file, end=AS_OF, days=16, rows_per_day=300)
    airflow = Airflow(root / "airflow", params_file)
    migrated = airflow.cli("db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    return airflow, load_params(params_file)


class _Webhook:
    def __init__(self):
        import http.server
        import threading

        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def webhook():
    hook = _Webhook()
    yield hook
    hook.server.shutdown()


def _tail(output: str, lines: int = 60) -> str:
    return "\n".join(ln for ln in output.splitlines() if "Skipping registering" not in ln)[-6000:]


def _versions(params) -> list:
    from retrainer.tracking import mlflow_client

    client = mlflow_client(params)
    return client.search_model_versions(f"name = '{params.model.registered_name}'")


def test_training_run_lands_partition_report_run_and_champion(stack):
    airflow, params = stack
    ok, output = airflow.dags_test({"as_of": AS_OF.isoformat(), "note": "e2e first run"})
    assert ok, _tail(output)

    partition = params.data_dir / "raw" / f"dt={AS_OF.isoformat()}" / "part.parquet"
    assert len(pd.read_parquet(partition)) == 300
    stub = partition.with_name("part.parquet.dvc")
    md5 = stub.read_text().split("md5: ")[1].split()[0]
    assert (Path(params.dvc_remote_url) / "files" / "md5" / md5[:2] / md5[2:]).exists()

    report_dir = params.reports_dir / "validation" / f"dt={AS_OF.isoformat()}"
    report = json.loads((report_dir / "validation.json").read_text())
    assert report["success"] is True
    assert list(report_dir.rglob("index.html"))

    from retrainer.tracking import champion_summary, mlflow_client

    champion = champion_summary(params)
    assert champion is not None and champion["version"] == "1"
    assert champion["aliases"] == ["challenger", "champion"]
    assert champion["as_of"] == AS_OF.isoformat()
    run = mlflow_client(params).get_run(champion["run_id"])
    assert run.data.metrics["holdout_roc_auc"] > 0.7
    assert run.data.tags["airflow.dag_id"] == "training"
    assert run.data.tags["airflow.note"] == "e2e first run"
    assert run.data.tags["retrainer.partitions"].count(":") == params.prepare.window_days
    assert md5 in run.data.tags["retrainer.partitions"]
    assert "gate decision:" in output and "v1 promoted to champion" in output


def test_rerun_of_the_same_date_makes_nothing_new(stack):
    airflow, params = stack
    partition = params.data_dir / "raw" / f"dt={AS_OF.isoformat()}" / "part.parquet"
    before = partition.read_bytes()
    ok, output = airflow.dags_test({"as_of": AS_OF.isoformat()})
    assert ok, _tail(output)
    assert partition.read_bytes() == before
    assert [str(v.version) for v in _versions(params)] == ["1"]
    assert "(reused)" in output


def test_the_dag_trained_champion_reproduces_exactly_from_a_fresh_scratch_dir(stack, tmp_path):
    airflow, params = stack
    scratch = tmp_path / "scratch"
    done = subprocess.run(
        [str(BIN / "retrainer"), "reproduce", "champion", "--scratch", str(scratch)],
        env=airflow.env, cwd=params.root, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout)  # stdout is the JSON result alone
    assert result["identical"] is True and result["causes"] == [], result
    assert result["metric_differences"] == {} and result["max_prediction_difference"] == 0.0
    # The bytes came from the DVC remote into the scratch folder, not from the project's data/.
    assert len(list(scratch.rglob("part.parquet"))) == params.prepare.window_days


def test_a_day_without_rows_ends_the_run_cleanly(stack):
    airflow, params = stack
    empty_day = AS_OF + timedelta(days=5)
    ok, output = airflow.dags_test({"as_of": empty_day.isoformat()})
    assert ok, _tail(output)
    assert f"no rows for {empty_day.isoformat()}" in output
    assert not (params.data_dir / "raw" / f"dt={empty_day.isoformat()}").exists()
    assert [str(v.version) for v in _versions(params)] == ["1"]


def test_a_bad_batch_stops_at_the_gate_and_is_quarantined(stack, webhook):
    airflow, params = stack
    bad_day = AS_OF + timedelta(days=1)
    seed_source(
        params.source_url, params.source.table, bad_day, bad_day, 300, params.project.seed,
        incidents=[IncidentSpec(day=bad_day, kind="unseen_category")],
    )
    env = dict(airflow.env, AIRFLOW_CONN_RETRAINER_WEBHOOK=json.dumps({"conn_type": "http", "host": webhook.url}))
    ok, output = airflow.dags_test({"as_of": bad_day.isoformat()}, env=env)
    assert not ok
    # The failure notification reached the webhook, naming the task, the date and the failed expectation.
    (message,) = webhook.received
    assert message["task_id"] == "validate" and message["as_of"] == bad_day.isoformat()
    assert "expect_column_values_to_be_in_set" in message["error"] and "region" in message["error"]
    assert "data-quality gate failed" in output and "region" in output and "mars" in output
    quarantined = params.data_dir / "quarantine" / f"dt={bad_day.isoformat()}"
    assert (quarantined / "part.parquet").exists()
    assert (quarantined / "report" / f"dt={bad_day.isoformat()}" / "validation.json").exists()
    assert not (params.data_dir / "raw" / f"dt={bad_day.isoformat()}").exists()
    assert [str(v.version) for v in _versions(params)] == ["1"]
    from retrainer.tracking import champion_summary

    assert champion_summary(params)["version"] == "1"
    assert "up_for_retry" not in output.split("validate")[-1]  # bad data is not retried


def test_an_invalid_params_file_fails_fast_naming_the_key(stack, tmp_path):
    airflow, params = stack
    broken = tmp_path / "params.yaml"
    broken.write_text(params.source_file.read_text().replace("  window_days: 14", "  window_days: 14\n  windw: 3"))
    env = dict(airflow.env, RETRAINER_PARAMS=str(broken))
    ok, output = airflow.dags_test({"as_of": AS_OF.isoformat()}, env=env)
    assert not ok
    assert "prepare.windw: unknown key" in output and str(broken) in output
    assert "up_for_retry" not in output
    assert [str(v.version) for v in _versions(params)] == ["1"]
