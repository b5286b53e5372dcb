"""Make Airflow's SQLite metadata DB safe for concurrent writers (scheduler, api-server, CLI).

Python's sqlite3 starts a transaction lazily, right before the first INSERT/UPDATE/DELETE, so a
transaction normally takes SQLite's write lock with its first statement and waits for it (the busy
timeout). A transaction that SQLAlchemy starts with a SAVEPOINT (``session.begin_nested()``, which
``airflow backfill create`` uses for every run it creates) is different: it begins as a reader,
and when it then writes, SQLite refuses at once with "database is locked" if another process wrote
in between (a stale WAL snapshot, or a lock upgrade that could deadlock); the busy timeout does not
apply. On a busy scheduler that happens often. :func:`install` opens such transactions with
``BEGIN IMMEDIATE`` instead, so they take the write lock first and wait for it like any other.

Installed in every Airflow process through ``$AIRFLOW_HOME/config/airflow_local_settings.py``,
which :mod:`retrainer.stack` writes for a SQLite metadata DB (Airflow imports that file before it
creates its database engine).
"""

from __future__ import annotations

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
