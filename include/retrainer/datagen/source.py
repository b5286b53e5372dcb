"""The demo's SQL source: generated days written into a table through SQLAlchemy Core."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from retrainer.datagen.generator import day_range, generate_day
from retrainer.datagen.schema import COLUMNS, ENTITY_ID, EVENT_TIME, SCHEMA
from retrainer.datagen.specs import DriftSpec, IncidentSpec
from retrainer.errors import SourceError
from retrainer.sql_source import masked_url


def source_table(table: str, metadata: sa.MetaData | None = None) -> sa.Table:
    """The SQLAlchemy Table of the source events with typed columns and an event_time index."""
    metadata = metadata if metadata is not None else sa.MetaData()
    columns: list[sa.Column[Any]] = []
    for name, dtype in SCHEMA.items():
        if name == ENTITY_ID:
            type_: sa.types.TypeEngine[Any] = sa.String(16)
        elif dtype == "string":
            type_ = sa.String(32)
        elif dtype.startswith("datetime"):
            type_ = sa.DateTime()
        elif dtype == "int64":
            type_ = sa.Integer()
        else:
            type_ = sa.Float()
        columns.append(sa.Column(name, type_, nullable=True))
    return sa.Table(table, metadata, *columns, sa.Index(f"ix_{table}_{EVENT_TIME}", EVENT_TIME))


def _sql_values(frame: pd.DataFrame, name: str) -> list[Any]:
    """One column as DB-API-friendly Python values (None for missing)."""
    n = len(frame)
    if name not in frame.columns:
        return [None] * n
    series = frame[name]
    dtype = SCHEMA[name]
    if dtype.startswith("datetime"):
        values = series.to_numpy().astype("datetime64[us]").astype(object)  # NaT -> None
        return values.tolist()
    if dtype == "string":
        return series.astype(object).where(series.notna(), None).tolist()
    if series.dtype == object:
        # wrong_type: a typed SQL column cannot hold "n/a"; unparseable cells become NULL.
        series = pd.to_numeric(series, errors="coerce")
    if dtype == "int64":
        if pd.api.types.is_integer_dtype(series.dtype):
            return series.tolist()
        return [None if math.isnan(v) else int(v) for v in series.to_numpy(dtype=float)]
    return series.astype(object).where(series.notna(), None).tolist()


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    columns = [_sql_values(frame, name) for name in COLUMNS]
    return [dict(zip(COLUMNS, row, strict=True)) for row in zip(*columns, strict=True)]


def _with_available_driver(url: sa.URL) -> sa.URL:
    # A bare postgresql:// names one default driver (psycopg 3 in SQLAlchemy 2.1, psycopg2 before);
    # use the other one when only that is installed, e.g. next to Airflow's psycopg2.
    if url.drivername != "postgresql":
        return url
    default = url.get_dialect().driver
    installed = [d for d in ("psycopg", "psycopg2") if importlib.util.find_spec(d) is not None]
    if installed and default not in installed:
        return url.set(drivername=f"postgresql+{installed[0]}")
    return url


def _error_text(exc: BaseException, url: str) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    try:
        password = make_url(url).password
    except ArgumentError:
        password = None
    if password:
        first = first.replace(str(password), "***")
    return first


def seed_source(
    url: str,
    table: str,
    start: date,
    end: date,
    rows_per_day: int,
    seed: int,
    drift: DriftSpec | None = None,
    incidents: Sequence[IncidentSpec] = (),
    chunk_rows: int = 50_000,
) -> int:
    """Write days ``start`` .. ``end`` (inclusive) into ``table`` at ``url``; return rows written.

    Creates the table (typed columns, index on event_time) if missing. Idempotent: in one
    transaction it deletes the rows with event_time in [start, end + 1 day), plus exact
    (customer_id, event_time) matches of generated rows that incidents pushed outside that window,
    then inserts the new rows in chunks of ``chunk_rows`` via executemany.

    SQL tables have fixed, typed columns, so two incidents look different here than in a frame:
    ``missing_column`` writes NULL into that column, and ``wrong_type`` writes NULL into the cells
    that do not parse as numbers (the file-based landing path exercises the real type error).
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    days = list(day_range(start, end))
    shown = masked_url(url)
    engine = _engine(url, shown)
    events = source_table(table)
    window = (
        datetime.combine(days[0], datetime.min.time()),
        datetime.combine(days[-1] + timedelta(days=1), datetime.min.time()),
    )
    try:
        try:
            connection = engine.connect()
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot connect to {shown}: {_error_text(exc, url)}") from exc
        try:
            with connection.begin():
                events.metadata.create_all(connection, checkfirst=True)
                day_records = (_records(generate_day(day, rows_per_day, seed, drift, incidents)) for day in days)
                return _replace_window(connection, events, window, day_records, chunk_rows)
        except SQLAlchemyError as exc:
            raise SourceError(f"seeding {table!r} at {shown} failed: {_error_text(exc, url)}") from exc
        finally:
            connection.close()
    finally:
        engine.dispose()


def _engine(url: str, shown: str) -> sa.Engine:
    """An engine for ``url`` (a SQLite file's folder is created); SourceError naming ``shown`` if not."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise SourceError(f"invalid database URL {shown}: {_error_text(exc, url)}") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        # Seeding creates the database; a fresh checkout has no data/ folder yet.
        folder = Path(parsed.database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SourceError(f"cannot create the folder of {shown}: {exc.strerror or exc}") from exc
    try:
        return sa.create_engine(_with_available_driver(parsed))
    except ImportError as exc:
        raise SourceError(f"cannot create an engine for {shown}: database driver missing ({exc})") from exc
    except SQLAlchemyError as exc:
        raise SourceError(f"cannot create an engine for {shown}: {_error_text(exc, url)}") from exc


def _replace_window(
    connection: sa.Connection,
    events: sa.Table,
    window: tuple[datetime, datetime],
    day_records: Iterator[list[dict[str, Any]]],
    chunk_rows: int,
) -> int:
    """Delete the rows of ``window`` and insert each day's records in chunks; return rows written.

    Rows that incidents pushed outside the window are matched exactly (customer_id, event_time) and
    deleted first, so a rerun replaces them too.
    """
    window_start, window_end = window
    connection.execute(
        sa.delete(events).where(events.c[EVENT_TIME] >= window_start, events.c[EVENT_TIME] < window_end)
    )
    stray_delete = sa.delete(events).where(
        events.c[ENTITY_ID] == sa.bindparam("stray_id"),
        events.c[EVENT_TIME] == sa.bindparam("stray_time"),
    )
    written = 0
    buffer: list[dict[str, Any]] = []
    for records in day_records:
        strays = [
            {"stray_id": r[ENTITY_ID], "stray_time": r[EVENT_TIME]}
            for r in records
            if r[EVENT_TIME] is not None
            and r[ENTITY_ID] is not None
            and not window_start <= r[EVENT_TIME] < window_end
        ]
        if strays:
            connection.execute(stray_delete, strays)
        buffer.extend(records)
        while len(buffer) >= chunk_rows:
            connection.execute(events.insert(), buffer[:chunk_rows])
            written += chunk_rows
            del buffer[:chunk_rows]
    if buffer:
        connection.execute(events.insert(), buffer)
        written += len(buffer)
    return written
