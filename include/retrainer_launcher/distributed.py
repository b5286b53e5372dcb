"""The production topology on this machine: docker-compose.yaml's services as processes.

``make up-distributed``: CeleryExecutor with two workers on this machine's Redis, Postgres for Airflow
and MLflow, the MLflow server behind basic auth; home ``.airflow-distributed/``. Every setting comes
from the compose file (:mod:`retrainer_launcher.topology`); only the variables differ.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from retrainer_launcher import topology
from retrainer_launcher.airflow_api import (
    api_token,
    api_url,
    mlflow_url,
    wait_airflow_healthy,
    wait_mlflow_healthy,
)
from retrainer_launcher.common import API_PORT, BIND_HOST, MLFLOW_PORT, Out, StackError, params_location, say
from retrainer_launcher.credentials import ADMIN_USER
from retrainer_launcher.demo import seed_source
from retrainer_launcher.envfile import read_env_file, write_env_file
from retrainer_launcher.http_client import wait_for
from retrainer_launcher.models import stack_models
from retrainer_launcher.processes import (
    START_MARKER,
    Process,
    check_port_free,
    log_dir,
    log_file,
    pid_file,
    run_logged,
    running_pid,
    start_process,
    tail,
    venv_bin,
)

DISTRIBUTED_HOME = ".airflow-distributed"
SECRETS_FILE = "secrets.env"
WORKER_LOG_PORTS = (8793, 8795)
TRIGGER_LOG_PORT = 8794

Plan = dict[str, tuple[list[str], dict[str, str]]]


@dataclass
class DistributedStack:
    """CeleryExecutor + Postgres + Redis + MLflow server, every setting from docker-compose.yaml.

    ``variables`` override the environment, the project's ``.env`` and the native defaults (tests
    use them for their own database names and Redis DB); secrets missing from all of them are
    generated once into ``<home>/secrets.env`` (mode 600).
    """

    root: Path
    home: Path
    api_port: int = API_PORT
    mlflow_port: int = MLFLOW_PORT
    params_file: Path | None = None
    variables: dict[str, str] | None = None
    worker_log_ports: tuple[int, ...] = WORKER_LOG_PORTS
    trigger_log_port: int = TRIGGER_LOG_PORT
    use_dotenv: bool = True
    compose_file: Path | None = None

    @property
    def params_path(self) -> Path:
        explicit = self.params_file or os.environ.get("RETRAINER_PARAMS_FILE")
        return Path(explicit).resolve() if explicit else params_location(self.root)

    @property
    def api(self) -> str:
        return api_url(self.api_port)

    @property
    def mlflow(self) -> str:
        return mlflow_url(self.mlflow_port)

    @property
    def compose_path(self) -> Path:
        return Path(self.compose_file or self.root / topology.COMPOSE_FILE)

    def resolved_variables(self) -> dict[str, str]:
        """The variables the compose file is interpolated with here (Compose's order of precedence:
        the shell's environment over ``.env``; then the native defaults; explicit ``variables`` win)."""
        root, home = Path(self.root).resolve(), Path(self.home).resolve()
        params = next(iter(stack_models(self.params_path, lambda _: None).values()))  # the shared DVC remote
        values = topology.native_defaults(
            root, home, self.api_port, self.mlflow_port, self.params_path, params.dvc_remote_url
        )
        if self.use_dotenv:
            values.update(read_env_file(root / topology.ENV_FILE))
        values.update({k: v for k, v in os.environ.items() if k in values or k in topology.SECRET_VARIABLES})
        values.update(self.variables or {})
        missing = [k for k in topology.SECRET_VARIABLES if not values.get(k)]
        if missing:
            stored = read_env_file(home / SECRETS_FILE)
            fresh = {k: stored.get(k) or topology.generate_secret(k) for k in missing}
            if any(k not in stored for k in missing):
                write_env_file(home / SECRETS_FILE, {**stored, **fresh})
            values.update(fresh)
        return values

    def services(self) -> dict[str, topology.ServiceSpec]:
        return topology.default_services(topology.services(self.compose_path, self.resolved_variables()))

    def password(self) -> str:
        return self.resolved_variables()["AIRFLOW_ADMIN_PASSWORD"]

    def token(self) -> str:
        return api_token(self.api, ADMIN_USER, self.password())

    def client_env(self) -> dict[str, str]:
        """What a client of this topology (the summary, a test) needs to reach MLflow as the tasks do."""
        worker = self.services()[topology.WORKER_SERVICE].environment
        keys = ("RETRAINER_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                "RETRAINER_PARAMS", "RETRAINER_DVC_REMOTE_URL")
        return {k: worker[k] for k in keys if k in worker}

    def native_env(self) -> dict[str, str]:
        """What a container has from its image and from being a container (topology.NATIVE_ONLY_KEYS)."""
        home = Path(self.home).resolve()
        return {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(log_dir(home)),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.trigger_log_port),
            # Where the api-server fetches a running task's log (the shared folder has it too).
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.worker_log_ports[0]),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }

    def process_envs(self) -> Plan:
        """name -> (argv, environment) of every native process, in start order."""
        native = self.native_env()
        plan: Plan = {}
        for name, spec in self.services().items():
            if name in topology.EXTERNAL_SERVICES or name == topology.INIT_SERVICE:
                continue
            if name not in topology.NATIVE_NAMES:
                raise StackError(f"{self.compose_path}: service {name!r} has no native counterpart")
            env = {**spec.environment, **native}
            argv = spec.argv()
            argv[0] = venv_bin(argv[0])
            if spec.replicas == 1:
                plan[topology.NATIVE_NAMES[name]] = (argv, env)
            else:
                plan.update(self._replicas(name, spec.replicas, argv, env))
        return plan

    def _replicas(self, name: str, replicas: int, argv: list[str], env: dict[str, str]) -> Plan:
        """The native processes of a service with several replicas (the Celery workers): each with a
        log server port and a loopback address of its own."""
        if replicas > len(self.worker_log_ports):
            raise StackError(
                f"{name} has {replicas} replicas but only {len(self.worker_log_ports)} log server "
                "ports are configured natively"
            )
        plan: Plan = {}
        for index in range(1, replicas + 1):
            worker_env = {
                **env,
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.worker_log_ports[index - 1]),
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": topology.WORKER_HOSTNAME_CALLABLE,
                "RETRAINER_WORKER_HOSTNAME": f"127.0.0.{index}",
            }
            plan[f"{topology.NATIVE_NAMES[name]}-{index}"] = (
                [*argv, "--celery-hostname", f"worker-{index}@%h"],
                worker_env,
            )
        return plan

    def init_command(self) -> tuple[list[str], dict[str, str]]:
        spec = topology.services(self.compose_path, self.resolved_variables())[topology.INIT_SERVICE]
        return spec.argv(), {**spec.environment, **self.native_env()}


def postgres_admin_url(variables: dict[str, str], database: str = "postgres") -> str:
    user, password = variables["POSTGRES_USER"], variables["POSTGRES_PASSWORD"]
    host, port = variables["POSTGRES_HOST"], variables["POSTGRES_PORT"]
    return f"postgresql://{urllib.parse.quote(user)}:{urllib.parse.quote(password)}@{host}:{port}/{database}"


def ensure_databases(variables: dict[str, str], out: Out = say) -> list[str]:
    """Create the topology's Postgres databases that do not exist yet (the compose file's
    deploy/postgres/create-databases.sh does this in a container); return the ones created."""
    import psycopg
    from psycopg import sql

    wanted = [variables[k] for k in ("AIRFLOW_DB", "MLFLOW_DB", "MLFLOW_AUTH_DB")]
    created = []
    try:
        conn = psycopg.connect(postgres_admin_url(variables), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        where = f"{variables['POSTGRES_HOST']}:{variables['POSTGRES_PORT']}"
        raise StackError(f"PostgreSQL at {where} is not reachable: {str(exc).strip()}") from None
    with conn:
        for name in wanted:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                created.append(name)
    if created:
        out(f"created Postgres databases {', '.join(created)}")
    return created


def check_redis(variables: dict[str, str]) -> None:
    import redis

    client = redis.Redis(
        host=variables["REDIS_HOST"],
        port=int(variables["REDIS_PORT"]),
        db=int(variables["REDIS_DB"]),
        username="default",
        password=variables["REDIS_PASSWORD"],
        socket_connect_timeout=5,
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        where = f"{variables['REDIS_HOST']}:{variables['REDIS_PORT']}"
        raise StackError(f"Redis at {where} is not reachable: {exc}") from None
    finally:
        client.close()


def run_init(stack: DistributedStack, out: Out = say) -> None:
    """The compose file's airflow-init job, run here: migrate, write the login file, create pools."""
    argv, env = stack.init_command()
    argv[0] = venv_bin(argv[0]) if not os.path.isabs(argv[0]) else argv[0]
    logf = log_file(stack.home, "airflow-init")
    out("airflow-init: db migrate, login file, pools ...")
    code = run_logged(argv, env, logf, cwd=stack.root)
    if code != 0:
        raise StackError(f"airflow-init failed (exit {code}):\n{tail(logf)}")


def _celery_ready(proc: Process) -> bool:
    try:
        return " ready." in proc.log.read_text(errors="replace").split(START_MARKER)[-1]
    except OSError:
        return False


def _check_ports(stack: DistributedStack) -> None:
    for name, port in (("api-server", stack.api_port), ("mlflow", stack.mlflow_port)):
        check_port_free(name, stack.home, port, BIND_HOST)
    for index, port in enumerate(stack.worker_log_ports, 1):
        check_port_free(f"celery-worker-{index}", stack.home, port, BIND_HOST)


def cmd_up_distributed(stack: DistributedStack, seed: bool = True, out: Out = say) -> list[Process]:
    t0 = time.monotonic()
    variables = stack.resolved_variables()
    ensure_databases(variables, out)
    check_redis(variables)
    plan = stack.process_envs()
    if seed:
        seed_source(stack.root, plan["scheduler"][1], out=out)
    _check_ports(stack)
    if running_pid(pid_file(stack.home, "api-server")) is None:
        run_init(stack, out)
    procs = [start_process(name, argv, env, stack.home, stack.root) for name, (argv, env) in plan.items()]
    for p in procs:
        out(f"  {p.name:<16} pid {p.pid:<7} {'(already running)' if p.reused else 'started'}  log: {p.log}")
    wait_airflow_healthy(stack.api, processes=procs)
    wait_mlflow_healthy(stack.mlflow, processes=procs)
    workers = [p for p in procs if p.name.startswith("celery-worker")]
    wait_for("the Celery workers", lambda: all(_celery_ready(p) for p in workers), 120, 1.0, procs)
    out(
        f"distributed stack up in {time.monotonic() - t0:.0f}s: Airflow {stack.api} (CeleryExecutor, "
        f"{len(workers)} workers), MLflow {stack.mlflow}"
    )
    return procs
