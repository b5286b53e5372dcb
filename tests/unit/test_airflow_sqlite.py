"""The SQLite hook behind the local stack: a SAVEPOINT-started transaction waits for the write lock
instead of failing with "database is locked" when another process wrote meanwhile."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from retrainer import stack

# Reader-then-writer in a nested transaction (what `airflow backfill create` does per run), while
# another connection commits a write in between.
SCRIPT = r"""
import sys, threading, time
import sqlalchemy as sa
from sqlalchemy.orm import Session
if sys.argv[2] == "hook":
    from retrainer.airflow_sqlite import install
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
    env = stack.airflow_env(tmp_path, tmp_path / "home")
    settings = tmp_path / "home" / "config" / "airflow_local_settings.py"
    assert "install()" in settings.read_text()
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("?timeout=60")
    stack.airflow_env(tmp_path, tmp_path / "home", sql_alchemy_conn="postgresql://u@localhost/db")
    assert not settings.exists()
