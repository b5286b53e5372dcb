"""retrainer_launcher.distributed: the native process plan of the compose file's services."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from retrainer_launcher import topology
from retrainer_launcher.distributed import SECRETS_FILE, DistributedStack
from tests.conftest import REPO_ROOT, write_project


def test_native_plan_runs_every_compose_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in topology.SECRET_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    params = write_project(tmp_path / "project")
    distributed = DistributedStack(
        REPO_ROOT, tmp_path / "home", 8123, 5123, params_file=params, use_dotenv=False,
        variables={"AIRFLOW_DB": "x_airflow", "REDIS_DB": "7"}, worker_log_ports=(9001, 9002),
    )
    plan = distributed.process_envs()
    assert list(plan) == [
        "api-server", "scheduler", "dag-processor", "triggerer", "celery-worker-1", "celery-worker-2", "mlflow",
    ]
    # Secrets were generated once, privately, and are reused.
    secrets_file = tmp_path / "home" / SECRETS_FILE
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    first = distributed.resolved_variables()
    assert all(first[name] for name in topology.SECRET_VARIABLES)
    assert distributed.resolved_variables() == first

    argv, env = plan["celery-worker-2"]
    assert argv[1:] == ["celery", "worker", "--celery-hostname", "worker-2@%h"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == f"redis://default:{first['REDIS_PASSWORD']}@127.0.0.1:6379/7"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@127.0.0.1:5432/x_airflow")
    assert env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] == "9002"
    assert env["RETRAINER_WORKER_HOSTNAME"] == "127.0.0.2"
    assert env["RETRAINER_PARAMS"] == str(params)
    assert env["RETRAINER_TRACKING_URI"] == "http://localhost:5123"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://localhost:8123/execution/"
    ml_argv, ml_env = plan["mlflow"]
    assert ml_argv[1:] == [str(REPO_ROOT / "deploy/mlflow/serve.sh"), "--host", "127.0.0.1", "--port", "5123",
                           "--workers", "1", "--serve-artifacts", "--allowed-hosts",
                           "mlflow,mlflow:5000,localhost,localhost:*,127.0.0.1:*"]
    assert ml_env["MLFLOW_AUTH_ADMIN_PASSWORD"] == first["MLFLOW_ADMIN_PASSWORD"]

    # The shell's environment wins over the native defaults, as it does over .env for Compose.
    monkeypatch.setenv("POSTGRES_HOST", "db.internal")
    assert "@db.internal:5432/" in distributed.process_envs()["scheduler"][1]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
