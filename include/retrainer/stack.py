"""The local stack behind ``make run`` / ``make stop``: Airflow 3 and an MLflow UI as separate processes.

Topology (the same as production, minus Postgres/Celery): ``airflow api-server``, ``airflow scheduler``
(LocalExecutor), ``airflow dag-processor``, ``airflow triggerer`` and ``mlflow server``, each started in
its own session with a log file under ``<home>/logs/`` and a pid file under ``<home>/run/``. All state
lives in git-ignored folders of the project root: ``.airflow/`` (metadata DB, logs, secrets, admin
password) and the MLflow store named in params.yaml (``.mlflow/``).

Every step is a plain function with explicit inputs (root, home, ports), so tests can start a real
scheduler in a temporary AIRFLOW_HOME. The command line::

    python -m retrainer.stack run      # up + trigger + wait + summary (what `make run` does)
    python -m retrainer.stack up       # initialise, seed, start the processes, wait for health
    python -m retrainer.stack trigger  # unpause `training` and trigger a run (as_of = today, UTC)
    python -m retrainer.stack wait     # follow a run (the latest one by default) to its end
    python -m retrainer.stack status   # which processes run, their health, URLs and login
    python -m retrainer.stack down     # stop everything started (SIGTERM, then SIGKILL)
    python -m retrainer.stack drift-demo  # inject drift after the champion's day and follow the reaction

With ``--distributed`` each command works on the production topology instead (``make up-distributed``):
the services of docker-compose.yaml as processes, CeleryExecutor with two workers on this machine's
Redis, Postgres for Airflow and MLflow, the MLflow server behind basic auth; home ``.airflow-distributed/``.
See :class:`DistributedStack` and retrainer.topology.

This module imports only the standard library at import time, so ``down`` works without the venv.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

DAG_ID = "training"
# Unpaused with `training`: manual-only DAGs (promote, rollback) then run as soon as they are triggered,
# and batch_scoring scores each new day with the champion.
COMPANION_DAGS = ("batch_scoring", "promote", "rollback")
# Unpaused by `make run` with `training`, so files dropped into the landing folder are picked up.
LANDING_DAG_ID = "ingest_landing"
API_PORT = 8080
MLFLOW_PORT = 5000
BIND_HOST = "127.0.0.1"
ADMIN_USER = "admin"
# SimpleAuthManager users of the local stack (name: role); passwords are generated into PASSWORDS_FILE.
# viewer can look at everything (the control room included), op can also start runs (replay).
STACK_USERS = {ADMIN_USER: "admin", "viewer": "viewer", "op": "op"}
# Where the control room's links open the MLflow UI (retrainer.control_room.MLFLOW_UI_ENV).
MLFLOW_UI_ENV = "RETRAINER_MLFLOW_UI_URL"
DVC_POOL = "dvc"
SEED_DAYS = 60

ENV_FILE = "retrainer.env"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
MIGRATED_STAMP = ".db-migrated"

FERNET_KEY = "AIRFLOW__CORE__FERNET_KEY"
JWT_SECRET = "AIRFLOW__API_AUTH__JWT_SECRET"  # noqa: S105 - the variable's name, not a secret
API_SECRET_KEY = "AIRFLOW__API__SECRET_KEY"  # noqa: S105 - the variable's name, not a secret
SECRET_KEYS = (FERNET_KEY, JWT_SECRET, API_SECRET_KEY)

# LocalExecutor that imports pandas, scikit-learn, MLflow, GX, Evidently and DVC once in the scheduler
# before forking its workers, so task processes (forked from them) never import them again; see
# retrainer/preload.py. bench/bench_overhead.py measures it against the plain "LocalExecutor".
LOCAL_EXECUTOR = "retrainer_airflow.executor.PreloadingLocalExecutor"
FS_DEFAULT_CONN = '{"conn_type": "fs", "extra": {"path": "/"}}'
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
MLFLOW_COMPONENT = "mlflow"
TERMINAL_RUN_STATES = {"success", "failed"}
FAILED_TASK_STATES = {"failed", "upstream_failed"}

Out = Callable[[str], None]


class StackError(RuntimeError):
    """The stack could not be started, reached or driven; the message says what to look at."""


def _say(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------------------------------
# Paths and files
# --------------------------------------------------------------------------------------------------


def default_home(root: Path) -> Path:
    return root / ".airflow"


def run_dir(home: Path) -> Path:
    return home / "run"


def log_dir(home: Path) -> Path:
    return home / "logs"


def pid_file(home: Path, name: str) -> Path:
    return run_dir(home) / f"{name}.pid"


def log_file(home: Path, name: str) -> Path:
    return log_dir(home) / f"{name}.log"


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode 600 (the file never exists with wider mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_env_file(path: Path) -> dict[str, str]:
    """Read a ``KEY=value`` file as written by :func:`write_env_file` (shell-quoted values, # comments)."""
    env: dict[str, str] = {}
    if not path.exists():
        return env
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for word in shlex.split(line):
            key, sep, value = word.partition("=")
            if sep:
                env[key] = value
    return env


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """Write ``env`` as a sourceable shell file (``set -a; . FILE; set +a``), mode 600."""
    lines = [
        "# Written by `python -m retrainer.stack`; secrets are generated once and kept.",
        "# Use the Airflow CLI against the local stack with:",
        "#   set -a; . .airflow/retrainer.env; set +a; .venv/bin/airflow dags list",
    ]
    lines += [f"{k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    _write_private(path, "\n".join(lines) + "\n")


def load_or_create_secrets(home: Path) -> dict[str, str]:
    """The Fernet key, JWT secret and API secret key of this AIRFLOW_HOME, generated on first use.

    They live in ``<home>/retrainer.env`` (mode 600). Every Airflow process must share them: without
    a shared JWT secret, each process makes its own and task tokens fail with "Invalid auth token".
    """
    existing = read_env_file(home / ENV_FILE)
    values = {k: existing[k] for k in SECRET_KEYS if existing.get(k)}
    if len(values) == len(SECRET_KEYS):
        return values
    generated = {
        FERNET_KEY: base64.urlsafe_b64encode(os.urandom(32)).decode(),
        JWT_SECRET: secrets.token_urlsafe(64),
        API_SECRET_KEY: secrets.token_urlsafe(32),
    }
    values = {k: values.get(k) or generated[k] for k in SECRET_KEYS}
    write_env_file(home / ENV_FILE, {**existing, **values})
    return values


def ensure_admin_password(home: Path, user: str = ADMIN_USER) -> str:
    """The SimpleAuthManager password of ``user``, generated once into ``<home>/<PASSWORDS_FILE>``."""
    path = home / PASSWORDS_FILE
    passwords: dict[str, str] = {}
    if path.exists() and path.read_text().strip():
        try:
            passwords = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise StackError(
                f"{path}: not valid JSON ({exc}); delete it to generate a new password"
            ) from None
    if not passwords.get(user):
        alphabet = "abcdefghkmnpqrstuvwxyzABCDEFGHKMNPQRSTUVWXYZ23456789"
        passwords[user] = "".join(secrets.choice(alphabet) for _ in range(16))
        _write_private(path, json.dumps(passwords) + "\n")
    return passwords[user]


SQLITE_BUSY_TIMEOUT = 60


def sqlite_metadata_url(home: Path) -> str:
    """The SQLite metadata DB of ``home``. A CLI command such as ``airflow backfill create`` writes
    while the scheduler does: wait up to a minute for the lock instead of sqlite3's 5 s, after which
    it fails with "database is locked" on a busy machine."""
    return f"sqlite:///{Path(home) / 'airflow.db'}?timeout={SQLITE_BUSY_TIMEOUT}"


def use_wal(sql_alchemy_conn: str) -> None:
    """Put a SQLite metadata DB in write-ahead-log mode (kept in the file): readers no longer block
    the writer, so the scheduler, api-server, dag-processor and CLI wait on each other far less."""
    prefix = "sqlite:///"
    if not sql_alchemy_conn.startswith(prefix):
        return
    import sqlite3

    path = sql_alchemy_conn[len(prefix) :].split("?", 1)[0]
    with sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


LOCAL_SETTINGS = """\
# Written by retrainer.stack for a SQLite metadata DB: see retrainer/airflow_sqlite.py.
from retrainer.airflow_sqlite import install

install()
"""


def write_local_settings(home: Path, sql_alchemy_conn: str) -> None:
    """``<home>/config/airflow_local_settings.py`` (imported by every Airflow process) for SQLite:
    transactions that start with a SAVEPOINT take the write lock first (no "database is locked")."""
    path = Path(home) / "config" / "airflow_local_settings.py"
    if sql_alchemy_conn.startswith("sqlite"):
        if not path.exists() or path.read_text() != LOCAL_SETTINGS:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(LOCAL_SETTINGS)
    elif path.exists() and path.read_text() == LOCAL_SETTINGS:
        path.unlink()


def airflow_env(
    root: Path,
    home: Path,
    port: int = API_PORT,
    executor: str = LOCAL_EXECUTOR,
    sql_alchemy_conn: str | None = None,
    extra: dict[str, str] | None = None,
    params_path: Path | None = None,
    parallelism: int = 4,
) -> dict[str, str]:
    """The environment every Airflow process of this stack runs with (only the variables we set).

    Side effects: creates ``home``, generates the secrets once and writes the whole environment to
    ``<home>/retrainer.env`` (mode 600) so a user can source it to use the Airflow CLI; for a SQLite
    metadata DB, writes ``<home>/config/airflow_local_settings.py`` (see :func:`write_local_settings`).
    """
    root, home = Path(root).resolve(), Path(home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__EXECUTOR": executor,
        # LocalExecutor forks `parallelism` workers up front (32 by default): 4 suit a 2-core machine.
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in STACK_USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / PASSWORDS_FILE),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn or sqlite_metadata_url(home),
        "AIRFLOW__API__HOST": BIND_HOST,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(log_dir(home)),
        # Look for new DAG files every 30 s instead of every 5 min (a dev stack sees new files sooner).
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW_CONN_FS_DEFAULT": FS_DEFAULT_CONN,
        "RETRAINER_PARAMS": str(Path(params_path).resolve() if params_path else root / "params.yaml"),
    }
    env.update(load_or_create_secrets(home))
    env.update(extra or {})
    write_env_file(home / ENV_FILE, env)
    write_local_settings(home, env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    return env


# --------------------------------------------------------------------------------------------------
# Processes and pid files
# --------------------------------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    pid: int
    log: Path
    reused: bool = False


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from field 3 (state) on, or None where /proc is missing."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def _start_time(pid: int) -> str | None:
    stat = _proc_stat(pid)
    return stat[19] if stat else None  # field 22: starttime, in clock ticks since boot


def is_alive(pid: int) -> bool:
    """True if ``pid`` runs (zombies, which nothing reaps in some containers, count as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _proc_stat(pid)
    return not (stat and stat[0] in ("Z", "X"))


def write_pid(path: Path, pid: int) -> None:
    """Write ``pid`` and its start time (to tell a reused pid from ours later)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n{_start_time(pid) or ''}\n")


def read_pid(path: Path) -> tuple[int, str | None] | None:
    try:
        words = path.read_text().split()
        return int(words[0]), (words[1] if len(words) > 1 else None)
    except (OSError, ValueError, IndexError):
        return None


def running_pid(path: Path) -> int | None:
    """The pid in ``path`` if that process still runs and is the one we started, else None."""
    entry = read_pid(path)
    if entry is None:
        return None
    pid, started = entry
    if not is_alive(pid):
        return None
    if started is not None and _start_time(pid) not in (None, started):
        return None  # the pid was reused by another process
    return pid


def start_process(
    name: str, argv: list[str], env: dict[str, str], home: Path, cwd: Path | None = None
) -> Process:
    """Start ``argv`` in its own session, logging to ``<home>/logs/<name>.log``; reuse a live one."""
    pidf, logf = pid_file(home, name), log_file(home, name)
    pid = running_pid(pidf)
    if pid is not None:
        return Process(name, pid, logf, reused=True)
    logf.parent.mkdir(parents=True, exist_ok=True)
    with open(logf, "ab") as log:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        log.write(f"\n=== {stamp} started by retrainer.stack: {shlex.join(argv)}\n".encode())
        log.flush()
        # argv comes from this module (Airflow/MLflow executables of the venv, the compose file's
        # commands) and runs without a shell.
        proc = subprocess.Popen(  # noqa: S603
            argv,
            env={**os.environ, **env},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: `stop` signals the whole group
        )
    write_pid(pidf, proc.pid)
    return Process(name, proc.pid, logf)


def _bin(name: str) -> str:
    """An executable of the running interpreter's environment (the venv), else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise StackError(f"`{name}` not found next to {sys.executable} nor on PATH: run `make setup`")
    return found


def migrate_db(env: dict[str, str], home: Path, out: Out = _say) -> bool:
    """Run ``airflow db migrate`` unless this Airflow version already migrated this home's DB."""
    from importlib.metadata import version

    stamp = home / MIGRATED_STAMP
    wanted = f"{version('apache-airflow')} {env.get('AIRFLOW__DATABASE__SQL_ALCHEMY_CONN', '')}"
    if stamp.exists() and stamp.read_text().strip() == wanted:
        return False
    out("airflow db migrate ...")
    logf = log_file(home, "db-migrate")
    logf.parent.mkdir(parents=True, exist_ok=True)
    with open(logf, "ab") as log:
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [_bin("airflow"), "db", "migrate"],
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    if result.returncode != 0:
        raise StackError(f"`airflow db migrate` failed:\n{tail(logf)}")
    use_wal(env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", ""))
    stamp.write_text(wanted + "\n")
    return True


def port_in_use(port: int, host: str = BIND_HOST) -> bool:
    """True if something accepts connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def _check_port_free(name: str, home: Path, port: int, host: str) -> None:
    """Before starting ``name`` anew, make sure no other server answers on its port (the health
    checks would otherwise talk to that one)."""
    if running_pid(pid_file(home, name)) is None and port_in_use(port, host):
        raise StackError(
            f"port {port} is taken by another process, so {name} cannot start: stop that process or "
            f"pick another port (make run API_PORT=... MLFLOW_PORT=...)"
        )


def start_airflow(env: dict[str, str], home: Path, cwd: Path | None = None) -> list[Process]:
    """Start (or reuse) api-server, scheduler, dag-processor and triggerer with ``env``.

    The scheduler and triggerer also serve task logs on ports 8793 and 8794; a second stack on the
    same machine (a test) should move them with ``AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT`` and
    ``AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT`` in ``airflow_env(..., extra=...)``.
    """
    airflow = _bin("airflow")
    port, host = env.get("AIRFLOW__API__PORT", str(API_PORT)), env.get("AIRFLOW__API__HOST", BIND_HOST)
    _check_port_free("api-server", home, int(port), host)
    argvs = {
        "api-server": [airflow, "api-server", "--port", port, "--host", host],
        "scheduler": [airflow, "scheduler"],
        "dag-processor": [airflow, "dag-processor"],
        "triggerer": [airflow, "triggerer"],
    }
    return [start_process(name, argv, env, home, cwd) for name, argv in argvs.items()]


def mlflow_argv(
    tracking_uri: str, artifact_root: Path, port: int = MLFLOW_PORT, host: str = BIND_HOST
) -> list[str]:
    return [
        _bin("mlflow"),
        "server",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        tracking_uri,
        "--default-artifact-root",
        str(artifact_root),
        "--artifacts-destination",
        str(artifact_root),
    ]


def start_mlflow(
    tracking_uri: str, artifact_root: Path, home: Path, port: int = MLFLOW_PORT, cwd: Path | None = None
) -> Process:
    """Start (or reuse) the MLflow server: the UI onto the store the DAG tasks write to directly."""
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    Path(artifact_root).mkdir(parents=True, exist_ok=True)
    _check_port_free(MLFLOW_COMPONENT, home, port, BIND_HOST)
    # The job runner (7 huey consumers for GenAI jobs) is of no use here and slows the start.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return start_process(MLFLOW_COMPONENT, mlflow_argv(tracking_uri, artifact_root, port), env, home, cwd)


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, pgid) of every live, non-zombie process (empty where /proc is missing)."""
    table: dict[int, tuple[int, int]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return table
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(int(entry.name))
        if stat and stat[0] not in ("Z", "X"):
            table[int(entry.name)] = (int(stat[1]), int(stat[2]))
    return table


def _family(leaders: Iterable[int]) -> tuple[set[int], set[int]]:
    """All live processes of the leaders' groups and their descendants: (pids, process groups).

    Airflow's task supervisor puts each task in a process group of its own, so the tree matters
    as well as the group.
    """
    table = _process_table()
    leaders = set(leaders)
    groups = {table[p][1] for p in leaders if p in table} | leaders
    pids = {p for p, (_, pgid) in table.items() if pgid in groups} | {p for p in leaders if is_alive(p)}
    children: dict[int, list[int]] = {}
    for p, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(p)
    todo = list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in pids:
                pids.add(child)
                todo.append(child)
    groups |= {table[p][1] for p in pids if p in table}
    own = {os.getpid(), os.getpgrp()}
    return pids - own, groups - own


def _signal_all(pids: set[int], groups: set[int], sig: int) -> None:
    for group in groups:
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _survivors(pids: set[int], groups: set[int]) -> set[int]:
    """Which of ``pids``, or of any process in ``groups``, still run."""
    table = _process_table()
    if not table:  # no /proc: ask the kernel about each pid
        return {p for p in pids if is_alive(p)}
    own = {os.getpid()}
    return ({p for p in pids if p in table} | {p for p, (_, g) in table.items() if g in groups}) - own


def _wait_until_gone(pids: set[int], groups: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    left = _survivors(pids, groups)
    while left and time.monotonic() < deadline:
        time.sleep(0.25)
        left = _survivors(pids, groups)
    return left


def stop(home: Path, timeout: float = 30.0, grace: float = 5.0, out: Out = _say) -> list[str]:
    """Stop every process with a pid file under ``<home>/run``; remove the pid files.

    Like systemd's KillMode=mixed: SIGTERM to each main process first, so the scheduler can shut
    its executor down in order; after up to ``timeout`` seconds, SIGTERM to whatever is left of their
    process groups and descendants (Airflow's task supervisor puts each task in a group of its own),
    and SIGKILL to what is still there ``grace`` seconds later. Returns the names that were running.
    """
    leaders: dict[str, int] = {}
    files = sorted(run_dir(home).glob("*.pid")) if run_dir(home).is_dir() else []
    for pidf in files:
        pid = running_pid(pidf)
        if pid is not None:
            leaders[pidf.stem] = pid
    if leaders:
        out("stopping " + ", ".join(f"{n} (pid {p})" for n, p in leaders.items()))
        mains = set(leaders.values())
        family, groups = _family(mains)  # before the mains exit and their children are re-parented
        _signal_all(mains, set(), signal.SIGTERM)
        _wait_until_gone(mains, set(), timeout)
        left = _survivors(family, groups)
        if left:
            _signal_all(left, groups, signal.SIGTERM)
            left = _wait_until_gone(left, groups, grace)
        if left:
            out(f"still running, sending SIGKILL to {sorted(left)}")
            _signal_all(left, groups, signal.SIGKILL)
            _wait_until_gone(left, groups, 10)
    for pidf in files:
        pidf.unlink(missing_ok=True)
    return list(leaders)


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text[-lines:])


# --------------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------------


class HttpError(StackError):
    def __init__(self, method: str, url: str, status: int, body: str):
        super().__init__(f"{method} {url} -> HTTP {status}: {body[:2000]}")
        self.status = status
        self.body = body


def http(
    method: str,
    url: str,
    body: Any = None,
    token: str | None = None,
    timeout: float = 30.0,
    headers: dict[str, str] | None = None,
) -> Any:
    """One JSON request; the decoded JSON (or text) answer. HttpError on a status >= 400."""
    if not url.startswith(("http://", "https://")):
        raise StackError(f"refusing a non-HTTP URL: {url!r}")
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s) only, checked above
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) only, checked above
            raw = resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        raise HttpError(method, url, exc.code, exc.read().decode(errors="replace")) from None
    try:
        return json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return raw


def _reachable(probe: Callable[[], Any]) -> Any:
    """``probe()``, or None if the server is not up yet (refused, reset, timed out or 5xx)."""
    try:
        return probe()
    except HttpError as exc:
        if exc.status >= 500:
            return None
        raise
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None


def wait_for(
    what: str,
    probe: Callable[[], Any],
    timeout: float,
    interval: float = 1.0,
    processes: Iterable[Process] = (),
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail early if one of ``processes`` died."""
    processes = list(processes)
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        for p in processes:
            if not is_alive(p.pid):
                raise StackError(
                    f"{p.name} (pid {p.pid}) exited while waiting for {what}; {p.log}:\n{tail(p.log)}"
                )
        if time.monotonic() > deadline:
            logs = "".join(f"\n--- {p.log}:\n{tail(p.log, 15)}" for p in processes)
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}{logs}")
        time.sleep(interval)


def api_url(port: int = API_PORT) -> str:
    return f"http://localhost:{port}"


def mlflow_url(port: int = MLFLOW_PORT) -> str:
    return f"http://localhost:{port}"


def airflow_health(base_url: str) -> dict | None:
    """``GET /api/v2/monitor/health`` (no login needed), or None while the api-server is not up."""
    return _reachable(lambda: http("GET", f"{base_url}/api/v2/monitor/health", timeout=5))


def _all_healthy(health: dict | None) -> bool:
    if not isinstance(health, dict):
        return False
    parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
    return all((health.get(k) or {}).get("status") == "healthy" for k in parts)


def wait_airflow_healthy(base_url: str, timeout: float = 180.0, processes: Iterable[Process] = ()) -> dict:
    """Wait until the api-server answers and reports DB, scheduler, triggerer and dag-processor healthy."""

    def probe() -> dict | None:
        health = airflow_health(base_url)
        return health if _all_healthy(health) else None

    return wait_for(f"Airflow health at {base_url}/api/v2/monitor/health", probe, timeout, 1.0, processes)


def mlflow_healthy(base_url: str) -> bool:
    answer = _reachable(lambda: http("GET", f"{base_url}/health", timeout=5))
    return isinstance(answer, str) and answer.strip() == "OK"


def wait_mlflow_healthy(base_url: str, timeout: float = 120.0, processes: Iterable[Process] = ()) -> bool:
    return wait_for(
        f"MLflow health at {base_url}/health", lambda: mlflow_healthy(base_url), timeout, 1.0, processes
    )


def api_token(base_url: str, user: str, password: str) -> str:
    """A JWT from SimpleAuthManager's ``POST /auth/token``."""
    answer = http("POST", f"{base_url}/auth/token", {"username": user, "password": password})
    return answer["access_token"]


def ensure_pool(
    base_url: str, token: str, name: str = DVC_POOL, slots: int = 1, description: str = ""
) -> None:
    """Create pool ``name`` with ``slots`` slots, or set its slots if it exists with another count."""
    try:
        pool = http("GET", f"{base_url}/api/v2/pools/{name}", token=token)
    except HttpError as exc:
        if exc.status != 404:
            raise
        http(
            "POST",
            f"{base_url}/api/v2/pools",
            {"name": name, "slots": slots, "description": description},
            token,
        )
        return
    if pool.get("slots") != slots:
        http("PATCH", f"{base_url}/api/v2/pools/{name}?update_mask=slots", {"slots": slots}, token)


# --------------------------------------------------------------------------------------------------
# DAG runs through the REST API
# --------------------------------------------------------------------------------------------------


def import_errors(base_url: str, token: str) -> list[dict]:
    answer = http("GET", f"{base_url}/api/v2/importErrors?limit=100", token=token)
    return list(answer.get("import_errors", []))


def wait_for_dag(
    base_url: str, token: str, dag_id: str = DAG_ID, timeout: float = 300.0, out: Out = _say
) -> dict:
    """Wait until the dag-processor has parsed ``dag_id``; fail at once on an import error in its file."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    announced = False
    while True:
        try:
            return http("GET", f"{base_url}/api/v2/dags/{dag_id}", token=token)
        except HttpError as exc:
            if exc.status != 404:
                raise
        for err in import_errors(base_url, token):
            filename = str(err.get("filename", ""))
            if Path(filename).stem == dag_id:
                raise StackError(f"DAG file {filename} does not import:\n{err.get('stack_trace', '')}")
            if filename not in seen:
                seen.add(filename)
                out(f"warning: import error in {filename}:\n{err.get('stack_trace', '')}")
        if not announced:
            out(f"waiting for the dag-processor to parse DAG '{dag_id}' (up to {timeout:.0f}s) ...")
            announced = True
        if time.monotonic() > deadline:
            raise StackError(
                f"DAG '{dag_id}' did not appear within {timeout:.0f}s; see the dag-processor log"
            )
        time.sleep(2)


def set_paused(base_url: str, token: str, dag_id: str = DAG_ID, paused: bool = False) -> dict:
    return http(
        "PATCH", f"{base_url}/api/v2/dags/{dag_id}?update_mask=is_paused", {"is_paused": paused}, token
    )


def trigger_run(
    base_url: str,
    token: str,
    dag_id: str = DAG_ID,
    conf: dict | None = None,
    note: str | None = None,
    run_id: str | None = None,
) -> dict:
    """``POST /api/v2/dags/{dag_id}/dagRuns``; ``logical_date`` is a required field, sent as null."""
    body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
    if note:
        body["note"] = note
    if run_id:
        body["dag_run_id"] = run_id
    return http("POST", f"{base_url}/api/v2/dags/{dag_id}/dagRuns", body, token)


def get_run(base_url: str, token: str, dag_id: str, run_id: str) -> dict:
    return http(
        "GET", f"{base_url}/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}", token=token
    )


def latest_run(base_url: str, token: str, dag_id: str = DAG_ID) -> dict | None:
    answer = http("GET", f"{base_url}/api/v2/dags/{dag_id}/dagRuns?order_by=-run_after&limit=1", token=token)
    runs = answer.get("dag_runs", [])
    return runs[0] if runs else None


def task_instances(base_url: str, token: str, dag_id: str, run_id: str) -> list[dict]:
    rid = urllib.parse.quote(run_id, safe="")
    answer = http(
        "GET", f"{base_url}/api/v2/dags/{dag_id}/dagRuns/{rid}/taskInstances?limit=1000", token=token
    )
    return list(answer.get("task_instances", []))


def _ti_label(ti: dict) -> str:
    index = ti.get("map_index", -1)
    return ti["task_id"] + (f"[{index}]" if index is not None and index >= 0 else "")


def wait_for_run(
    base_url: str,
    token: str,
    dag_id: str,
    run_id: str,
    timeout: float = 900.0,
    poll: float = 2.0,
    out: Out = _say,
) -> dict:
    """Follow a DAG run until it ends, printing each task's state when it changes; the final run."""
    states: dict[str, str | None] = {}
    deadline = time.monotonic() + timeout
    last_run_state = None
    while True:
        run = get_run(base_url, token, dag_id, run_id)
        if run.get("state") != last_run_state:
            last_run_state = run.get("state")
            out(f"{_clock()}  run {run_id}: {last_run_state}")
        for ti in task_instances(base_url, token, dag_id, run_id):
            label, state = _ti_label(ti), ti.get("state")
            if label not in states or states[label] != state:
                if state is not None or label in states:
                    tries = f" (try {ti.get('try_number')})" if (ti.get("try_number") or 0) > 1 else ""
                    out(f"{_clock()}    {label:<28} {state or 'none'}{tries}")
                states[label] = state
        if run.get("state") in TERMINAL_RUN_STATES:
            return run
        if time.monotonic() > deadline:
            raise StackError(f"run {run_id} of '{dag_id}' did not finish within {timeout:.0f}s")
        time.sleep(poll)


def _clock() -> str:
    return datetime.now().strftime("%H:%M:%S")


def _format_log_entry(entry: Any) -> str:
    if not isinstance(entry, dict):
        return str(entry)
    ts = str(entry.get("timestamp") or "")[11:19]
    level = entry.get("level", "")
    line = f"{ts} {level:<7} {entry.get('event', '')}".rstrip()
    for err in entry.get("error_detail") or []:
        if not isinstance(err, dict):
            continue
        for frame in err.get("frames") or []:
            line += f"\n    {frame.get('filename')}:{frame.get('lineno')} in {frame.get('name')}"
        line += f"\n  {err.get('exc_type')}: {err.get('exc_value')}"
    return line


def task_log_tail(base_url: str, token: str, dag_id: str, run_id: str, ti: dict, lines: int = 60) -> str:
    """The last ``lines`` lines of a task instance's log, as served by the REST API."""
    rid = urllib.parse.quote(run_id, safe="")
    try_number = max(int(ti.get("try_number") or 1), 1)
    url = (
        f"{base_url}/api/v2/dags/{dag_id}/dagRuns/{rid}/taskInstances/{ti['task_id']}/logs/{try_number}"
        f"?full_content=true&map_index={ti.get('map_index', -1)}"
    )
    answer = http("GET", url, token=token)
    content = answer.get("content", []) if isinstance(answer, dict) else [answer]
    text = "\n".join(_format_log_entry(e) for e in content).splitlines()
    return "\n".join(text[-lines:])


def failed_tasks(base_url: str, token: str, dag_id: str, run_id: str) -> list[dict]:
    tis = task_instances(base_url, token, dag_id, run_id)
    return [ti for ti in tis if ti.get("state") == "failed"] or [
        ti for ti in tis if ti.get("state") in FAILED_TASK_STATES
    ]


# --------------------------------------------------------------------------------------------------
# The demo source and the summary
# --------------------------------------------------------------------------------------------------


def source_is_empty(source_url: str, table: str) -> bool:
    """True if the source table is missing or has no rows (a missing SQLite file counts as empty)."""
    if source_url.startswith("sqlite:///") and source_url != "sqlite:///:memory:":
        if not Path(source_url[len("sqlite:///") :]).exists():
            return True
    import sqlalchemy as sa

    engine = sa.create_engine(source_url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(table):
                return True
            return (
                conn.execute(sa.select(sa.literal(1)).select_from(sa.table(table)).limit(1)).first() is None
            )
    finally:
        engine.dispose()


def seed_source(root: Path, env: dict[str, str], days: int = SEED_DAYS, out: Out = _say) -> bool:
    """Seed the demo source with ``retrainer.cli seed --days N`` if it is empty; True if it seeded."""
    from retrainer.config import load_params

    params = load_params(env.get("RETRAINER_PARAMS") or root / "params.yaml")
    if not source_is_empty(params.source_url, params.source.table):
        out(f"source {params.source.table} already has rows: not seeding")
        return False
    if importlib.util.find_spec("retrainer.cli") is None:
        out("NOTE: retrainer.cli is not there yet: skipping `retrainer.cli seed` (the source stays empty)")
        return False
    out(f"seeding the demo source ({days} days ending today, UTC) ...")
    subprocess.run(  # noqa: S603 - fixed argv, no shell
        [sys.executable, "-m", "retrainer.cli", "seed", "--days", str(days)],
        env={**os.environ, **env},
        cwd=root,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return True


def champion_summary(params_path: Path, out: Out = _say) -> dict | None:
    """``retrainer.register.champion_summary(params)``, or None (with a note) if it is not available."""
    try:
        from retrainer.config import load_params
        from retrainer.register import champion_summary as summary
    except ImportError as exc:
        out(f"(no model summary: {exc})")
        return None
    try:
        return summary(load_params(params_path))
    except Exception as exc:  # noqa: BLE001 - the Airflow part of the summary must still print
        out(f"(no model summary: {type(exc).__name__}: {exc})")
        return None


def _duration(run: dict, start_field: str = "start_date") -> float | None:
    """Seconds from ``start_field`` (start_date, or queued_at for the time since the trigger) to end_date."""
    try:
        start = datetime.fromisoformat(run[start_field].replace("Z", "+00:00"))
        end = datetime.fromisoformat(run["end_date"].replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return (end - start).total_seconds()


# --------------------------------------------------------------------------------------------------
# The distributed topology: docker-compose.yaml's services as processes on this machine
# --------------------------------------------------------------------------------------------------

DISTRIBUTED_HOME = ".airflow-distributed"
SECRETS_FILE = "secrets.env"
WORKER_LOG_PORTS = (8793, 8795)
TRIGGER_LOG_PORT = 8794


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
        return Path(explicit or self.root / "params.yaml").resolve()

    @property
    def api(self) -> str:
        return api_url(self.api_port)

    @property
    def mlflow(self) -> str:
        return mlflow_url(self.mlflow_port)

    @property
    def compose_path(self) -> Path:
        return Path(self.compose_file or self.root / "docker-compose.yaml")

    def resolved_variables(self) -> dict[str, str]:
        """The variables the compose file is interpolated with here (Compose's order of precedence:
        the shell's environment over ``.env``; then the native defaults; explicit ``variables`` win)."""
        from retrainer import topology
        from retrainer.config import load_params

        root, home = Path(self.root).resolve(), Path(self.home).resolve()
        params = load_params(self.params_path)
        values = topology.native_defaults(
            root, home, self.api_port, self.mlflow_port, self.params_path, params.dvc_remote_url
        )
        if self.use_dotenv:
            values.update(topology.read_dotenv(root / topology.ENV_FILE))
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

    def services(self) -> dict:
        from retrainer import topology

        return topology.default_services(topology.services(self.compose_path, self.resolved_variables()))

    def password(self) -> str:
        return self.resolved_variables()["AIRFLOW_ADMIN_PASSWORD"]

    def token(self) -> str:
        return api_token(self.api, ADMIN_USER, self.password())

    def client_env(self) -> dict[str, str]:
        """What a client of this topology (the summary, a test) needs to reach MLflow as the tasks do."""
        worker = self.services()["airflow-worker"].environment
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

    def process_envs(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        """name -> (argv, environment) of every native process, in start order."""
        from retrainer import topology

        specs = self.services()
        native = self.native_env()
        plan: dict[str, tuple[list[str], dict[str, str]]] = {}
        for name, spec in specs.items():
            if name in topology.EXTERNAL_SERVICES or name == topology.INIT_SERVICE:
                continue
            if name not in topology.NATIVE_NAMES:
                raise StackError(f"{self.compose_path}: service {name!r} has no native counterpart")
            env = {**spec.environment, **native}
            argv = spec.argv()
            argv[0] = _bin(argv[0])
            if spec.replicas == 1:
                plan[topology.NATIVE_NAMES[name]] = (argv, env)
                continue
            if spec.replicas > len(self.worker_log_ports):
                raise StackError(
                    f"{name} has {spec.replicas} replicas but only {len(self.worker_log_ports)} log server "
                    "ports are configured natively"
                )
            for index in range(1, spec.replicas + 1):
                worker_env = {
                    **env,
                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.worker_log_ports[index - 1]),
                    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "retrainer.topology.worker_hostname",
                    "RETRAINER_WORKER_HOSTNAME": f"127.0.0.{index}",
                }
                plan[f"{topology.NATIVE_NAMES[name]}-{index}"] = (
                    [*argv, "--celery-hostname", f"worker-{index}@%h"],
                    worker_env,
                )
        return plan

    def init_command(self) -> tuple[list[str], dict[str, str]]:
        from retrainer import topology

        spec = topology.services(self.compose_path, self.resolved_variables())[topology.INIT_SERVICE]
        return spec.argv(), {**spec.environment, **self.native_env()}


def postgres_admin_url(variables: dict[str, str], database: str = "postgres") -> str:
    user, password = variables["POSTGRES_USER"], variables["POSTGRES_PASSWORD"]
    host, port = variables["POSTGRES_HOST"], variables["POSTGRES_PORT"]
    return f"postgresql://{urllib.parse.quote(user)}:{urllib.parse.quote(password)}@{host}:{port}/{database}"


def ensure_databases(variables: dict[str, str], out: Out = _say) -> list[str]:
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


def run_init(stack: DistributedStack, out: Out = _say) -> None:
    """The compose file's airflow-init job, run here: migrate, write the login file, create pools."""
    argv, env = stack.init_command()
    argv[0] = _bin(argv[0]) if not os.path.isabs(argv[0]) else argv[0]
    logf = log_file(stack.home, "airflow-init")
    logf.parent.mkdir(parents=True, exist_ok=True)
    out("airflow-init: db migrate, login file, pools ...")
    with open(logf, "ab") as log:
        done = subprocess.run(  # noqa: S603 - the compose file's airflow-init command, no shell of ours
            argv,
            env={**os.environ, **env},
            cwd=stack.root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    if done.returncode != 0:
        raise StackError(f"airflow-init failed (exit {done.returncode}):\n{tail(logf)}")


def _celery_ready(proc: Process) -> bool:
    try:
        return " ready." in proc.log.read_text(errors="replace").split("started by retrainer.stack")[-1]
    except OSError:
        return False


def cmd_up_distributed(stack: DistributedStack, seed: bool = True, out: Out = _say) -> list[Process]:
    t0 = time.monotonic()
    variables = stack.resolved_variables()
    ensure_databases(variables, out)
    check_redis(variables)
    plan = stack.process_envs()
    if seed:
        seed_source(stack.root, plan["scheduler"][1], out=out)
    host = BIND_HOST
    for name, port in (("api-server", stack.api_port), ("mlflow", stack.mlflow_port)):
        _check_port_free(name, stack.home, port, host)
    for index, port in enumerate(stack.worker_log_ports, 1):
        _check_port_free(f"celery-worker-{index}", stack.home, port, host)
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


# --------------------------------------------------------------------------------------------------
# The commands
# --------------------------------------------------------------------------------------------------


@dataclass
class Stack:
    root: Path
    home: Path
    api_port: int = API_PORT
    mlflow_port: int = MLFLOW_PORT

    @property
    def params_path(self) -> Path:
        return Path(os.environ.get("RETRAINER_PARAMS") or self.root / "params.yaml").resolve()

    @property
    def api(self) -> str:
        return api_url(self.api_port)

    @property
    def mlflow(self) -> str:
        return mlflow_url(self.mlflow_port)

    def env(self) -> dict[str, str]:
        return airflow_env(
            self.root, self.home, self.api_port, params_path=self.params_path,
            extra={MLFLOW_UI_ENV: mlflow_url(self.mlflow_port)},
        )

    def password(self, user: str = ADMIN_USER) -> str:
        return ensure_admin_password(self.home, user)

    def token(self) -> str:
        return api_token(self.api, ADMIN_USER, self.password())


def cmd_up(stack: Stack, seed: bool = True, out: Out = _say) -> None:
    from retrainer.config import load_params

    t0 = time.monotonic()
    env = stack.env()
    password = stack.password()
    for user in STACK_USERS:
        stack.password(user)
    params = load_params(stack.params_path)
    migrate_db(env, stack.home, out)
    if seed:
        seed_source(stack.root, env, out=out)
    procs = start_airflow(env, stack.home, cwd=stack.root)
    procs.append(
        start_mlflow(params.tracking_uri, params.artifact_root, stack.home, stack.mlflow_port, stack.root)
    )
    for p in procs:
        out(f"  {p.name:<14} pid {p.pid:<7} {'(already running)' if p.reused else 'started'}  log: {p.log}")
    wait_airflow_healthy(stack.api, processes=procs)
    wait_mlflow_healthy(stack.mlflow, processes=procs)
    ensure_pool(stack.api, stack.token(), DVC_POOL, 1, "DVC work is serialized through this pool")
    out(
        f"stack up in {time.monotonic() - t0:.0f}s: Airflow {stack.api} (user {ADMIN_USER}, password {password}), "
        f"MLflow {stack.mlflow}"
    )


def cmd_trigger(stack: Stack, as_of: str | None = None, dag_timeout: float = 300.0, out: Out = _say) -> str:
    token = stack.token()
    wait_for_dag(stack.api, token, DAG_ID, dag_timeout, out)
    set_paused(stack.api, token, DAG_ID, paused=False)
    for companion in COMPANION_DAGS:
        wait_for_dag(stack.api, token, companion, dag_timeout, out)
        set_paused(stack.api, token, companion, paused=False)
    wait_for_dag(stack.api, token, LANDING_DAG_ID, dag_timeout, out)
    set_paused(stack.api, token, LANDING_DAG_ID, paused=False)
    as_of = as_of or datetime.now(UTC).date().isoformat()
    run = trigger_run(stack.api, token, DAG_ID, {"as_of": as_of}, note="triggered by `make run`")
    out(f"triggered {DAG_ID} run {run['dag_run_id']} (as_of {as_of})")
    return run["dag_run_id"]


def cmd_wait(stack: Stack, run_id: str | None = None, timeout: float = 900.0, out: Out = _say) -> dict:
    token = stack.token()
    if run_id is None:
        latest = latest_run(stack.api, token, DAG_ID)
        if latest is None:
            raise StackError(f"DAG '{DAG_ID}' has no runs to wait for")
        run_id = latest["dag_run_id"]
    run = wait_for_run(stack.api, token, DAG_ID, run_id, timeout, out=out)
    if run.get("state") != "success":
        for ti in failed_tasks(stack.api, token, DAG_ID, run_id):
            if ti.get("state") != "failed":
                continue
            out(f"\n--- log tail of failed task {_ti_label(ti)} (try {ti.get('try_number')}):")
            try:
                out(task_log_tail(stack.api, token, DAG_ID, run_id, ti))
            except StackError as exc:
                out(f"(could not read the log: {exc})")
    return run


def print_summary(stack: Stack, run: dict | None, out: Out = _say) -> None:
    out("\n================ summary ================")
    if run is not None:
        took, since = _duration(run), _duration(run, "queued_at")
        timing = f" in {took:.0f}s" if took is not None else ""
        timing += f" ({since:.0f}s from trigger to end)" if since is not None else ""
        out(f"run            {DAG_ID} / {run.get('dag_run_id')}: {run.get('state')}{timing}")
    with _environ(stack.client_env() if isinstance(stack, DistributedStack) else {}):
        model = champion_summary(stack.params_path, out)
    if model:
        aliases = ", ".join(model.get("aliases") or []) or "none"
        as_of = f", as of {model['as_of']}" if model.get("as_of") else ""
        out(f"model          {model.get('name')} v{model.get('version')} (aliases: {aliases}{as_of})")
        value = model.get("metric_value")
        shown = f"{value:.4f}" if isinstance(value, int | float) else value
        out(f"metric         {model.get('metric_name')} = {shown}  (MLflow run {model.get('run_id')})")
    elif model is None:
        out("model          no champion registered yet")
    if isinstance(stack, DistributedStack):
        # The production topology never prints its secrets: say where they are instead.
        where = f"{stack.root / '.env'} or {stack.home / SECRETS_FILE}"
        out(f"Airflow UI     {stack.api}/  user {ADMIN_USER}, password AIRFLOW_ADMIN_PASSWORD ({where})")
        out(f"MLflow UI      {stack.mlflow}/  user admin, password MLFLOW_ADMIN_PASSWORD")
        out("stop with:     make down-distributed")
        return
    out(f"Airflow UI     {stack.api}/  user {ADMIN_USER}  password {stack.password()}")
    others = ", ".join(f"{u} ({r}) {stack.password(u)}" for u, r in STACK_USERS.items() if u != ADMIN_USER)
    out(f"               other logins: {others}")
    out(f"               (passwords kept in {stack.home / PASSWORDS_FILE})")
    out(f"control room   {stack.api}/plugin/retrainer  (the Retrainer entry of the navigation)")
    out(f"MLflow UI      {stack.mlflow}/")
    landing = _landing_dir(stack.params_path)
    if landing:
        out(f"new data       drop CSV/Parquet files into {landing}/ (DAG {LANDING_DAG_ID} waits for them)")
    out("stop with:     make stop")


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in os.environ for the block, then restore what was there."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _landing_dir(params_path: Path) -> Path | None:
    try:
        from retrainer.config import load_params
        from retrainer.landing import ensure_folders

        params = load_params(params_path)
        ensure_folders(params)
        return params.landing_dir
    except Exception:  # noqa: BLE001 - the summary must print whatever the params say
        return None


def cmd_status(stack: Stack | DistributedStack, out: Out = _say) -> bool:
    up = True
    distributed = isinstance(stack, DistributedStack)
    names = list(stack.process_envs()) if distributed else [*AIRFLOW_COMPONENTS, MLFLOW_COMPONENT]
    for name in names:
        pid = running_pid(pid_file(stack.home, name))
        up &= pid is not None
        out(f"  {name:<16} {'running, pid ' + str(pid) if pid else 'not running'}")
    health = airflow_health(stack.api)
    if isinstance(health, dict):
        parts = ", ".join(f"{k} {(v or {}).get('status')}" for k, v in health.items())
        out(f"Airflow {stack.api}: {parts}")
    else:
        out(f"Airflow {stack.api}: not answering")
        up = False
    ml = mlflow_healthy(stack.mlflow)
    out(f"MLflow {stack.mlflow}: {'OK' if ml else 'not answering'}")
    if not distributed and (stack.home / PASSWORDS_FILE).exists():
        out(f"login: {ADMIN_USER} / {stack.password()}")
    return up and ml


MONITOR_DAG_ID = "drift_monitor"
DEMO_DRIFT_FEATURES = "monthly_charges,num_support_calls"


def _cli(root: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run(  # noqa: S603 - our own interpreter and CLI, arguments from this module
        [sys.executable, "-m", "retrainer.cli", *args], env={**os.environ, **env}, cwd=root, check=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    )


def cmd_drift_demo(
    stack: Stack,
    features: str = DEMO_DRIFT_FEATURES,
    magnitude: float = 1.5,
    timeout: float = 900.0,
    out: Out = _say,
) -> bool:
    """Inject drift into the days after the champion's as-of date and follow what the suite does.

    Seeds those days into the demo source with abrupt drift of ``features``, ingests and validates
    them (``retrainer ingest`` / ``validate``), runs ``drift_monitor`` for each day in turn until it
    decides to retrain (drift must persist for ``drift.persistence.required`` checks), then follows
    the drift-triggered ``training`` run and prints the report, the run and the tagged model version.
    """
    from retrainer.config import load_params

    params = load_params(stack.params_path)
    model = champion_summary(stack.params_path, out)
    if not model or not model.get("as_of"):
        raise StackError("no champion yet: run `make run` first, then `make drift-demo`")
    env, token = stack.env(), stack.token()
    first = date.fromisoformat(model["as_of"]) + timedelta(days=1)
    days = [first + timedelta(days=i) for i in range(max(1, params.drift.persistence.required))]
    out(f"champion {model['name']} v{model['version']} (as of {model['as_of']}); injecting abrupt drift of "
        f"{features} (magnitude {magnitude}) into {days[0]}..{days[-1]} of the demo source")
    _cli(stack.root, env, "seed", "--start", days[0].isoformat(), "--end", days[-1].isoformat(),
         "--drift-start", days[0].isoformat(), "--drift-kind", "abrupt", "--drift-features", features,
         "--drift-magnitude", str(magnitude))
    ingested = stack.home / "drift-demo-ingest.json"
    out("ingesting and validating those days (as the training DAG would) ...")
    _cli(stack.root, env, "ingest", "--as-of", days[-1].isoformat(), "--out", str(ingested))
    _cli(stack.root, env, "validate", "--ingest", str(ingested), "--out", str(stack.home / "drift-demo-validation.json"))

    for dag_id in (MONITOR_DAG_ID, DAG_ID):
        wait_for_dag(stack.api, token, dag_id, 300.0, out)
        set_paused(stack.api, token, dag_id, paused=False)
    triggered = None
    for day in days:
        run_id = f"drift_demo__{day.isoformat()}__{datetime.now(UTC).strftime('%H%M%S')}"
        out(f"\n{MONITOR_DAG_ID} for {day}:")
        trigger_run(stack.api, token, MONITOR_DAG_ID, {"as_of": day.isoformat()}, note="make drift-demo", run_id=run_id)
        run = wait_for_run(stack.api, token, MONITOR_DAG_ID, run_id, timeout, out=out)
        summary_file = params.drift_reports_dir / day.isoformat() / "summary.json"
        if run.get("state") != "success" or not summary_file.exists():
            raise StackError(f"{MONITOR_DAG_ID} run {run_id} ended {run.get('state')}; see its task logs in the UI")
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
        out(f"  {summary['summary_line']}")
        out(f"  {summary['decision']['note']}")
        if summary["decision"]["retrain"]:
            triggered = summary
            break
        if summary["decision"]["action"] == "already_triggered":
            # An earlier demo already started the retrain for this day: follow that run.
            triggered = {**summary, "trigger_run_id": f"drift__{day.isoformat()}"}
            break
    if triggered is None:
        out("\nno retrain was decided (see the decisions above); nothing triggered")
        return False

    training_run = triggered["trigger_run_id"]
    out(f"\nfollowing the drift-triggered {DAG_ID} run {training_run} ...")
    run = wait_for_run(stack.api, token, DAG_ID, training_run, timeout, out=out)
    version = _version_of_run(params, training_run)
    experiment = _experiment_id(params, params.drift.experiment)
    out("\n================ drift demo ================")
    out(f"report         {params.path(triggered['report_html'])}  (JSON: {params.path(triggered['report_json'])})")
    out(f"drift check    {stack.api}/dags/{MONITOR_DAG_ID}  (MLflow: {stack.mlflow}/#/experiments/{experiment}/runs/"
        f"{triggered.get('mlflow_run_id', '')})")
    out(f"training run   {DAG_ID} / {training_run}: {run.get('state')}  ({stack.api}/dags/{DAG_ID}/runs/{training_run})")
    if version:
        tags = ", ".join(f"{k}={v}" for k, v in sorted(version["tags"].items()) if k in ("airflow.reason", "airflow.trigger_report"))
        out(f"model version  {version['name']} v{version['version']} aliases {version['aliases'] or '-'}: {tags}")
        out(f"               {stack.mlflow}/#/models/{version['name']}/versions/{version['version']}")
    else:
        out("model version  none registered by that run (see its task logs)")
    return run.get("state") == "success" and bool(version)


def _version_of_run(params: Any, airflow_run_id: str) -> dict | None:
    from retrainer.tracking import mlflow_client

    client = mlflow_client(params)
    found = client.search_model_versions(
        f"name = '{params.model.registered_name}' and tags.`airflow.run_id` = '{airflow_run_id}'"
    )
    if not found:
        return None
    version = max(found, key=lambda v: int(v.version))
    return {"name": version.name, "version": str(version.version), "aliases": sorted(version.aliases), "tags": dict(version.tags)}


def _experiment_id(params: Any, name: str) -> str:
    from retrainer.tracking import mlflow_client

    experiment = mlflow_client(params).get_experiment_by_name(name)
    return experiment.experiment_id if experiment else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m retrainer.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["run", "up", "trigger", "wait", "status", "down", "drift-demo"])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="project root (default: cwd)")
    parser.add_argument("--home", type=Path, default=None, help="AIRFLOW_HOME (default: <root>/.airflow)")
    parser.add_argument("--api-port", type=int, default=int(os.environ.get("API_PORT", API_PORT)))
    parser.add_argument("--mlflow-port", type=int, default=int(os.environ.get("MLFLOW_PORT", MLFLOW_PORT)))
    parser.add_argument(
        "--as-of", default=None, help="as-of date for the triggered run (default: today, UTC)"
    )
    parser.add_argument("--run-id", default=None, help="run to wait for (default: the latest)")
    parser.add_argument("--no-seed", action="store_true", help="do not seed the demo source")
    parser.add_argument(
        "--dag-timeout", type=float, default=300.0, help="seconds to wait for the DAG to parse"
    )
    parser.add_argument("--run-timeout", type=float, default=900.0, help="seconds to wait for the run")
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="the production topology of docker-compose.yaml on this machine's Postgres and Redis "
        f"(CeleryExecutor, two workers, MLflow server with basic auth; home <root>/{DISTRIBUTED_HOME})",
    )
    parser.add_argument(
        "--worker-log-ports",
        default=os.environ.get("WORKER_LOG_PORTS", ",".join(map(str, WORKER_LOG_PORTS))),
        help="log server ports of the Celery workers, comma-separated (--distributed)",
    )
    parser.add_argument(
        "--trigger-log-port", type=int, default=int(os.environ.get("TRIGGER_LOG_PORT", TRIGGER_LOG_PORT)),
        help="log server port of the triggerer (--distributed)",
    )
    args = parser.parse_args(argv)

    root = args.root.resolve()
    stack: Stack | DistributedStack
    if args.distributed:
        home = (args.home or root / DISTRIBUTED_HOME).resolve()
        ports = tuple(int(p) for p in args.worker_log_ports.split(",") if p.strip())
        stack = DistributedStack(
            root, home, args.api_port, args.mlflow_port, worker_log_ports=ports,
            trigger_log_port=args.trigger_log_port,
        )
        up: Callable[..., Any] = cmd_up_distributed
    else:
        stack = Stack(root, (args.home or default_home(root)).resolve(), args.api_port, args.mlflow_port)
        up = cmd_up
    try:
        if args.command == "down":
            stopped = stop(stack.home)
            _say("stopped " + ", ".join(stopped) if stopped else "nothing was running")
            return 0
        if args.command == "status":
            return 0 if cmd_status(stack) else 1
        if args.command == "up":
            up(stack, seed=not args.no_seed)
            return 0
        if args.command == "trigger":
            cmd_trigger(stack, args.as_of, args.dag_timeout)
            return 0
        if args.command == "drift-demo":
            return 0 if cmd_drift_demo(stack, timeout=args.run_timeout) else 1
        if args.command == "wait":
            run = cmd_wait(stack, args.run_id, args.run_timeout)
            print_summary(stack, run)
            return 0 if run.get("state") == "success" else 1
        # run
        t0 = time.monotonic()
        up(stack, seed=not args.no_seed)
        run_id = cmd_trigger(stack, args.as_of, args.dag_timeout)
        run = cmd_wait(stack, run_id, args.run_timeout)
        print_summary(stack, run)
        _say(f"{'make run-distributed' if args.distributed else 'make run'} took {time.monotonic() - t0:.0f}s")
        return 0 if run.get("state") == "success" else 1
    except (StackError, subprocess.CalledProcessError, ValueError) as exc:  # ValueError: ConfigError
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the stack keeps running (stop with: make stop)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
