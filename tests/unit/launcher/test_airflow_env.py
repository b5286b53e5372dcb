"""retrainer_launcher.airflow_env: the local stack's Airflow environment, and the SQLite hook behind it: a
SAVEPOINT-started transaction waits for the write lock instead of failing with "database is locked" when
another process wrote meanwhile."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from retrainer_launcher import airflow_env, credentials


def test_airflow_env_points_everything_at_the_project(tmp_path: Path) -> None:
    root, home = tmp_path / "proj", tmp_path / "proj" / ".airflow"
    root.mkdir()
    env = airflow_env.airflow_env(root, home, port=8123)

    assert env["AIRFLOW_HOME"] == str(home.resolve())
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(root.resolve() / "dags")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(root.resolve() / "plugins")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "True"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "retrainer_airflow.executor.PreloadingLocalExecutor"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://localhost:8123/execution/"
    assert env["AIRFLOW__API__PORT"] == "8123"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{home.resolve() / 'airflow.db'}?timeout=60"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin,viewer:viewer,op:op"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == str(
        home.resolve() / credentials.PASSWORDS_FILE
    )
    assert env["RETRAINER_PARAMS"] == str(root.resolve() / "params.yaml")
    assert json.loads(env["AIRFLOW_CONN_FS_DEFAULT"]) == {"conn_type": "fs", "extra": {"path": "/"}}
    assert all(isinstance(v, str) for v in env.values())


def test_airflow_env_options_and_extra(tmp_path: Path) -> None:
    env = airflow_env.airflow_env(
        tmp_path,
        tmp_path / "h",
        executor="CeleryExecutor",
        sql_alchemy_conn="postgresql+psycopg2://u:p@localhost/db",
        extra={"AIRFLOW__CORE__PARALLELISM": "2", "X": "y"},
        params_path=tmp_path / "other.yaml",
    )
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg2://u:p@localhost/db"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "2"
    assert env["X"] == "y"
    assert env["RETRAINER_PARAMS"] == str((tmp_path / "other.yaml").resolve())


SCRIPT = r"""
import sys, threading, time
import sqlalchemy as sa
from sqlalchemy.orm import Session
if sys.argv[2] == "hook":
    from retrainer_launcher.airflow_env import install
    install()
url = f"sqlite:///{sys.argv[1]}?timeout=10"
engine = sa.create_engine(url)
with engine.begin() as conn:
    conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
other = sa.create_engine(url)

def write_elsewhere():
    with other.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")

with Session(engine) as session:
    session.commit()
    try:
        with session.begin_nested():
            session.execute(sa.text("SELECT count(*) FROM t")).scalar()
            writer = threading.Thread(target=write_elsewhere)
            writer.start()
            writer.join(0.5)  # with the hook it waits for our lock, without it commits now
            session.execute(sa.text("INSERT INTO t VALUES (2)"))
        session.commit()
    except sa.exc.OperationalError as exc:
        print("ERROR", exc.orig)
        sys.exit(0)
    writer.join()
print("OK", other.connect().exec_driver_sql("SELECT count(*) FROM t").scalar())
"""


def _run(tmp_path: Path, mode: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / f"{mode}.db"), mode],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def test_without_the_hook_the_nested_writer_fails_with_it_it_waits(tmp_path):
    assert _run(tmp_path, "plain") == "ERROR database is locked"
    assert _run(tmp_path, "hook") == "OK 2"


def test_the_stack_installs_the_hook_for_sqlite_only(tmp_path):
    env = airflow_env.airflow_env(tmp_path, tmp_path / "home")
    settings = tmp_path / "home" / "config" / "airflow_local_settings.py"
    assert "install()" in settings.read_text()
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("?timeout=60")
    airflow_env.airflow_env(tmp_path, tmp_path / "home", sql_alchemy_conn="postgresql://u@localhost/db")
    assert not settings.exists()
    # The file as the launcher wrote it before it left the library goes too.
    settings.write_text("# Written by retrainer.stack for a SQLite metadata DB: see retrainer/airflow_sqlite.py.\n"
                        "from retrainer.airflow_sqlite import install\n\ninstall()\n")
    airflow_env.airflow_env(tmp_path, tmp_path / "home", sql_alchemy_conn="postgresql://u@localhost/db")
    assert not settings.exists()
