"""The environment of the local stack's Airflow processes, and its SQLite metadata DB.

:func:`airflow_env` is every variable the api-server, scheduler, dag-processor and triggerer run
with (written to ``<home>/retrainer.env`` too, for the Airflow CLI). The metadata DB is SQLite, made
safe for several writing processes: a lock wait of a minute (:func:`sqlite_metadata_url`), write-ahead
logging (:func:`use_wal`, after ``airflow db migrate``) and :func:`install`, which every Airflow
process runs through ``<home>/config/airflow_local_settings.py``.

Why :func:`install`: Python's sqlite3 starts a transaction lazily, right before the first
INSERT/UPDATE/DELETE, so a transaction normally takes SQLite's write lock with its first statement and
waits for it (the busy timeout). A transaction that SQLAlchemy starts with a SAVEPOINT
(``session.begin_nested()``, which ``airflow backfill create`` uses for every run it creates) is
different: it begins as a reader, and when it then writes, SQLite refuses at once with "database is
locked" if another process wrote in between (a stale WAL snapshot, or a lock upgrade that could
deadlock); the busy timeout does not apply. On a busy scheduler that happens often. :func:`install`
opens such transactions with ``BEGIN IMMEDIATE`` instead, so they take the write lock first and wait
for it like any other. (Airflow imports airflow_local_settings before it creates its database engine.)
"""

from __future__ import annotations

from pathlib import Path

from retrainer_launcher.common import API_PORT, BIND_HOST, Out, StackError, params_location, say
from retrainer_launcher.credentials import ENV_FILE, PASSWORDS_FILE, STACK_USERS, load_or_create_secrets
from retrainer_launcher.envfile import write_env_file
from retrainer_launcher.processes import log_dir, log_file, run_logged, tail, venv_bin

MIGRATED_STAMP = ".db-migrated"

# LocalExecutor that imports pandas, scikit-learn, MLflow, GX, Evidently and DVC once in the scheduler
# before forking its workers, so task processes (forked from them) never import them again; see
# retrainer_airflow/preload.py. bench/bench_overhead.py measures it against the plain "LocalExecutor".
LOCAL_EXECUTOR = "retrainer_airflow.executor.PreloadingLocalExecutor"
FS_DEFAULT_CONN = '{"conn_type": "fs", "extra": {"path": "/"}}'

SQLITE_BUSY_TIMEOUT = 60

LOCAL_SETTINGS = """\
# Written by retrainer_launcher for a SQLite metadata DB: see retrainer_launcher/airflow_env.py.
from retrainer_launcher.airflow_env import install

install()
"""


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


def write_local_settings(home: Path, sql_alchemy_conn: str) -> None:
    """``<home>/config/airflow_local_settings.py`` (imported by every Airflow process) for SQLite:
    transactions that start with a SAVEPOINT take the write lock first (no "database is locked")."""
    path = Path(home) / "config" / "airflow_local_settings.py"
    if sql_alchemy_conn.startswith("sqlite"):
        if not path.exists() or path.read_text() != LOCAL_SETTINGS:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(LOCAL_SETTINGS)
    elif path.exists() and path.read_text().startswith("# Written by retrainer"):
        path.unlink()  # ours (also as retrainer.stack wrote it), for a home that no longer uses SQLite


_installed = False


def install() -> None:
    """Register the SQLAlchemy hook (once per process); it only acts on pysqlite connections."""
    global _installed
    if _installed:
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "before_cursor_execute")
    def _savepoint_takes_the_write_lock(conn, cursor, statement, parameters, context, executemany):
        if conn.dialect.name != "sqlite" or conn.dialect.driver != "pysqlite":
            return
        if not statement.lstrip()[:9].upper() == "SAVEPOINT":
            return
        dbapi_connection = conn.connection.driver_connection
        if not dbapi_connection.in_transaction:
            cursor.execute("BEGIN IMMEDIATE")

    _installed = True


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
        # The deployment: a models/ folder (one DAG set per model file) or one params file (bare ids).
        "RETRAINER_PARAMS": str(Path(params_path).resolve() if params_path else params_location(root)),
    }
    env.update(load_or_create_secrets(home))
    env.update(extra or {})
    write_env_file(home / ENV_FILE, env)
    write_local_settings(home, env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    return env


def migrate_db(env: dict[str, str], home: Path, out: Out = say) -> bool:
    """Run ``airflow db migrate`` unless this Airflow version already migrated this home's DB."""
    from importlib.metadata import version

    stamp = home / MIGRATED_STAMP
    wanted = f"{version('apache-airflow')} {env.get('AIRFLOW__DATABASE__SQL_ALCHEMY_CONN', '')}"
    if stamp.exists() and stamp.read_text().strip() == wanted:
        return False
    out("airflow db migrate ...")
    logf = log_file(home, "db-migrate")
    if run_logged([venv_bin("airflow"), "db", "migrate"], env, logf) != 0:
        raise StackError(f"`airflow db migrate` failed:\n{tail(logf)}")
    use_wal(env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", ""))
    stamp.write_text(wanted + "\n")
    return True
