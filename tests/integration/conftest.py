"""The production topology on this machine's PostgreSQL and Redis, for the integration tests.

One session-wide stack (the compose file's services as processes, retrainer_launcher.distributed.DistributedStack):
api-server, scheduler, dag-processor, triggerer, two Celery workers and the MLflow server with basic
auth, on databases made for this session (retrainer_it_<random>_*) and a Celery queue of its own in
Redis DB 5 (other sessions may run at the same time on the same services). Without
Postgres or Redis the tests skip with the reason, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import secrets
import socket
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from retrainer_launcher import airflow_api, distributed, http_client, processes
from tests.conftest import AS_OF, REPO_ROOT, seed, write_project

POSTGRES = (os.environ.get("RETRAINER_IT_POSTGRES_HOST", "127.0.0.1"), int(os.environ.get("RETRAINER_IT_POSTGRES_PORT", "5432")))
POSTGRES_USER = os.environ.get("RETRAINER_IT_POSTGRES_USER", "postgres")
REDIS = (os.environ.get("RETRAINER_IT_REDIS_HOST", "127.0.0.1"), int(os.environ.get("RETRAINER_IT_REDIS_PORT", "6379")))
REDIS_DB = os.environ.get("RETRAINER_IT_REDIS_DB", "5")
# Preferred ports (free ones are picked when these are taken).
PORTS = {"api": 8480, "mlflow": 5480, "worker1": 8491, "worker2": 8492, "trigger": 8493}
SEED_DAYS = 12
# Small and quick: a 7-day window of 300 rows a day, a smaller model and bootstrap.
WINDOW = {
    "prepare": {"window_days": 7, "holdout_days": 2, "min_train_rows": 300},
    "model": {"hyperparameters": {"max_iter": 60}},
    "evaluation": {"bootstrap": {"resamples": 200}},
}


def unreachable_services() -> str | None:
    """Why the integration tests cannot run here, or None when Postgres and Redis both answer."""
    import psycopg
    import redis

    problems = []
    try:
        psycopg.connect(
            host=POSTGRES[0], port=POSTGRES[1], user=POSTGRES_USER, dbname="postgres", connect_timeout=3
        ).close()
    except psycopg.Error as exc:
        problems.append(f"PostgreSQL at {POSTGRES[0]}:{POSTGRES[1]} ({str(exc).strip().splitlines()[0]})")
    try:
        redis.Redis(host=REDIS[0], port=REDIS[1], socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        problems.append(f"Redis at {REDIS[0]}:{REDIS[1]} ({exc})")
    return "; ".join(problems) or None


def require_services() -> None:
    """Skip loudly when Postgres or Redis is missing; under CI=true that is a failure instead."""
    problem = unreachable_services()
    if problem is None:
        return
    message = f"INTEGRATION TESTS NOT RUN: unreachable {problem}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: the services must be there)", pytrace=False)
    warnings.warn(message, stacklevel=2)
    pytest.skip(message)


def _port(preferred: int, taken: set[int]) -> int:
    if preferred not in taken and not processes.port_in_use(preferred):
        taken.add(preferred)
        return preferred
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in taken:
            taken.add(port)
            return port


@dataclass
class Topology:
    stack: distributed.DistributedStack
    params_file: Path
    variables: dict[str, str]

    @property
    def api(self) -> str:
        return self.stack.api

    @property
    def mlflow(self) -> str:
        return self.stack.mlflow

    def token(self, user: str = "admin") -> str:
        password = self.variables["AIRFLOW_ADMIN_PASSWORD" if user == "admin" else "AIRFLOW_VIEWER_PASSWORD"]
        return airflow_api.api_token(self.api, user, password)

    def mlflow_get(self, path: str, **query: str) -> dict:
        import base64
        import urllib.parse

        auth = base64.b64encode(f"admin:{self.variables['MLFLOW_ADMIN_PASSWORD']}".encode()).decode()
        url = f"{self.mlflow}/api/2.0/mlflow/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        return http_client.http("GET", url, headers={"Authorization": f"Basic {auth}"})

    def secrets(self) -> dict[str, str]:
        from retrainer_launcher.topology import SECRET_VARIABLES

        return {k: self.variables[k] for k in SECRET_VARIABLES}


def _drop(names: list[str]) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(
        host=POSTGRES[0], port=POSTGRES[1], user=POSTGRES_USER, dbname="postgres", autocommit=True
    ) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    require_services()
    import redis

    root = tmp_path_factory.mktemp("distributed")
    params_file = write_project(root / "project", WINDOW, git=True)
    seed(params_file, end=AS_OF, days=SEED_DAYS, rows_per_day=300)
    prefix = f"retrainer_it_{secrets.token_hex(4)}"
    taken: set[int] = set()
    ports = {name: _port(port, taken) for name, port in PORTS.items()}
    variables = {
        "POSTGRES_HOST": POSTGRES[0],
        "POSTGRES_PORT": str(POSTGRES[1]),
        "POSTGRES_USER": POSTGRES_USER,
        "AIRFLOW_DB": f"{prefix}_airflow",
        "MLFLOW_DB": f"{prefix}_mlflow",
        "MLFLOW_AUTH_DB": f"{prefix}_mlflow_auth",
        "REDIS_HOST": REDIS[0],
        "REDIS_PORT": str(REDIS[1]),
        "REDIS_DB": REDIS_DB,
        # Other sessions (other checkouts, CI) may share this Redis DB: tasks go to a queue of our own.
        "AIRFLOW_QUEUE": prefix,
        "RETRAINER_DVC_REMOTE_URL": str(root / "dvc-remote"),
    }
    stack = distributed.DistributedStack(
        REPO_ROOT,
        root / "home",
        ports["api"],
        ports["mlflow"],
        params_file=params_file,
        variables=variables,
        worker_log_ports=(ports["worker1"], ports["worker2"]),
        trigger_log_port=ports["trigger"],
        use_dotenv=False,
    )
    databases = [variables["AIRFLOW_DB"], variables["MLFLOW_DB"], variables["MLFLOW_AUTH_DB"]]
    try:
        distributed.cmd_up_distributed(stack, seed=False, out=lambda _: None)
        yield Topology(stack, params_file, stack.resolved_variables())
    finally:
        processes.stop(stack.home, out=lambda _: None)
        _drop(databases)
        client = redis.Redis(host=REDIS[0], port=REDIS[1], db=int(REDIS_DB))
        for key in client.scan_iter(match=f"*{prefix}*"):  # only our queue's keys, never the whole DB
            client.delete(key)
        client.close()


def days_before(days: int) -> str:
    return (AS_OF - timedelta(days=days)).isoformat()
