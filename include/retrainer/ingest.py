"""Ingest: one day of rows from the SQL source into a DVC-tracked Parquet partition.

The query uses bound parameters only. The partition is written atomically and deterministically
(rows sorted, same bytes for the same rows), so a rerun of the same day leaves the file and its
DVC hash unchanged.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrainer.config import Params
from retrainer.errors import SourceError
from retrainer.quarantine import quarantine_record
from retrainer.run_context import day_interval, window_days, window_length
from retrainer.sql_source import masked_url, source_table
from retrainer.storage import is_landing_partition, md5_file, partition_file, with_pandas_metadata

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


@dataclass(frozen=True)
class PartitionIngest:
    day: str
    status: str  # written | unchanged | empty | existing | unvalidated | landing | quarantined | unreadable
    rows: int
    path: str | None
    md5: str | None
    reason: str | None = None  # quarantined / unreadable: why the day is left out

    def to_dict(self) -> dict:
        return asdict(self)


class UnreadableValues(SourceError):
    """A value of the day's rows cannot be read as its column's declared type (retrainer.unreadable).

    Raised by ``ingest_day`` once the day is quarantined as text: ``found`` holds rows, reason and
    quarantined_to; ``ingest_window`` records the day as ``unreadable`` instead of failing.
    """

    def __init__(self, message: str, found: dict | None = None) -> None:
        super().__init__(message)
        self.found = found or {}


# Rows fetched per round trip: the Python objects of one batch are all that exist at a time (the day
# itself accumulates as Arrow columns, a fraction of the size of the same rows as Python tuples).
SOURCE_BATCH_ROWS = 20_000


def _arrow_type(column: Any) -> pa.DataType | None:
    """The Arrow type for a reflected SQL column, or None to infer it from the values."""
    import pyarrow as pa

    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return None
    # datetime is inferred: Arrow keeps a timezone when the driver gives aware values.
    return {int: pa.int64(), float: pa.float64(), str: pa.string(), bool: pa.bool_()}.get(python_type)


def _batch_table(rows: list, names: list[str], types: list, where: str) -> pa.Table:
    import pyarrow as pa

    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    arrays = []
    for name, values, type_ in zip(names, columns, types, strict=True):
        try:
            arrays.append(pa.array(values, type=type_, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise UnreadableValues(f"{where}: column {name!r} holds a value of the wrong type ({exc})") from None
    return pa.Table.from_arrays(arrays, names=names)


def read_source_interval(url: str, table: str, event_time: str, start: datetime, end: datetime) -> pa.Table:
    """Rows whose ``event_time`` lies in [start, end), read with bound parameters, as an Arrow table.

    Rows are streamed in batches of SOURCE_BATCH_ROWS (a server-side cursor where the driver has one)
    and turned into Arrow columns batch by batch, so a day never exists as one Python object per cell.
    """
    import pyarrow as pa
    import sqlalchemy as sa

    where = f"source {masked_url(url)}: table {table!r}"
    with source_table(url, table) as (conn, source):
        if event_time not in source.c:
            raise SourceError(f"{where} has no column {event_time!r}")
        names = [c.name for c in source.columns]
        types = [_arrow_type(c) for c in source.columns]
        query = sa.select(source).where(source.c[event_time] >= start, source.c[event_time] < end)
        result = conn.execution_options(yield_per=SOURCE_BATCH_ROWS).execute(query)
        try:
            batches = [_batch_table(rows, names, types, where) for rows in result.partitions()]
        except ValueError as exc:  # the driver's own parsing, e.g. SQLite DATETIME text it cannot read
            raise UnreadableValues(f"{where}: a value cannot be read as its column's type ({exc})") from None
    if not batches:
        return _batch_table([], names, types, where)
    # A column that is NULL throughout one batch is typed null there: permissive promotion unifies it.
    return pa.concat_tables(batches, promote_options="permissive")


def normalise(frame: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Stable row order and types, so the same rows always give the same Parquet bytes."""
    import pandas as pd

    ds = params.dataset
    # A shallow copy: replacing a column in it leaves the caller's frame alone without copying every
    # column; the sort then makes the one full copy (ignore_index: no second copy for a fresh index).
    frame = frame.copy(deep=False)
    if ds.event_time in frame:
        frame[ds.event_time] = pd.to_datetime(frame[ds.event_time]).astype("datetime64[ns]")
    sort_by = [c for c in (ds.event_time, ds.entity_id) if c in frame]
    return frame.sort_values(sort_by, kind="mergesort", ignore_index=True)


def normalise_table(table: pa.Table, params: Params) -> pa.Table:
    """``normalise`` for an Arrow table: nanosecond timestamps (UTC, naive), stable time/entity order."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ds = params.dataset
    for index, field in enumerate(table.schema):
        column = table.column(index)
        if pa.types.is_timestamp(field.type):
            # A zoned timestamp casts to its UTC wall time.
            table = table.set_column(index, field.name, pc.cast(column, pa.timestamp("ns")))
        elif field.name == ds.event_time:
            # Text timestamps (e.g. a SQLite TEXT column): parsed exactly as pandas would.
            import pandas as pd

            parsed = pd.to_datetime(column.to_pandas()).astype("datetime64[ns]")
            table = table.set_column(index, field.name, pa.array(parsed, type=pa.timestamp("ns")))
        elif len(column) and column.null_count == len(column):
            # A column that is NULL in every row has no type in a pandas frame either.
            table = table.set_column(index, field.name, pa.nulls(len(column)))
        elif pa.types.is_integer(field.type) and column.null_count:
            # As a pandas frame holds it (no NULL in a numpy integer): one partition format for every path.
            table = table.set_column(index, field.name, pc.cast(column, pa.float64()))
    sort_by = [(c, "ascending") for c in (ds.event_time, ds.entity_id) if c in table.column_names]
    # Arrow's sort is stable and puts nulls last, like the mergesort of ``normalise``.
    table = table.sort_by(sort_by) if sort_by and table.num_rows else table
    # A partition from the SQL source and one from landing files (pandas frames) are then the same
    # bytes for the same rows.
    return with_pandas_metadata(table)


def write_partition(frame: pd.DataFrame | pa.Table, target: Path) -> str:
    """Write ``frame`` to ``target`` atomically unless identical bytes are already there; return the status."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, staged_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    staged = Path(staged_name)
    try:
        pq.write_table(table, staged, compression="zstd")
        if target.exists() and md5_file(target) == md5_file(staged):
            # Leave the file (and the mtime DVC looks at) alone: the rerun changed nothing.
            return "unchanged"
        os.replace(staged, target)
        return "written"
    finally:
        staged.unlink(missing_ok=True)


def ingest_day(params: Params, day: date, *, track: bool = True, misplaced: pa.Table | None = None) -> PartitionIngest:
    """Materialise the partition of ``day`` from the source; version it with DVC when rows exist.

    Every source row of the day is accounted for: when a value cannot be read as its column's type, or
    rows whose event time is stored in another form parse to this day (``misplaced``: the result of
    ``retrainer.unreadable.misplaced_rows``, looked up here when not given), the day's rows become a
    quarantined text batch with a report, and UnreadableValues is raised naming the columns.
    """
    from retrainer import unreadable

    start, end = day_interval(day)
    ds = params.dataset
    if misplaced is None:
        misplaced = unreadable.misplaced_rows(params.source_url, params.source.table, ds.event_time)
    misplaced_today = unreadable.rows_of_day(misplaced, day)
    cause = None
    try:
        table = read_source_interval(params.source_url, params.source.table, ds.event_time, start, end)
    except UnreadableValues as exc:
        cause = exc
    if cause is not None or misplaced_today.num_rows:
        try:
            found = unreadable.quarantine_unreadable_day(params, day, misplaced_today)
        except LookupError:
            raise cause from None  # the typed read failed, yet every value reads as its type: say what failed
        raise UnreadableValues(f"{cause}\n{found['reason']}" if cause else found["reason"], found)
    rows = table.num_rows
    if not rows:
        return PartitionIngest(day.isoformat(), "empty", 0, None, None)
    target = partition_file(params.data_dir, day)
    table = normalise_table(table, params)  # the unsorted table is released here: one day in memory at a time
    status = write_partition(table, target)
    del table
    md5 = md5_file(target)
    if track:
        from retrainer import versioning

        versioning.ensure_repo(params.root, params.dvc.remote_name, params.dvc_remote_url)
        md5 = versioning.track(params.root, target, remote_name=params.dvc.remote_name).md5
    return PartitionIngest(day.isoformat(), status, rows, str(target), md5)


def landing_day(params: Params, day: date, *, track: bool = True) -> PartitionIngest:
    """The partition of ``day`` that landing files made: it is used as it is, never re-read from SQL."""
    import pyarrow.parquet as pq

    target = partition_file(params.data_dir, day)
    rows = pq.ParquetFile(target).metadata.num_rows
    md5 = md5_file(target)
    if track:
        from retrainer import versioning

        versioning.ensure_repo(params.root, params.dvc.remote_name, params.dvc_remote_url)
        md5 = versioning.track(params.root, target, remote_name=params.dvc.remote_name).md5
    return PartitionIngest(day.isoformat(), "landing", rows, str(target), md5)


def _passed_gate(params: Params, day: date) -> bool:
    """Whether the raw gate's report of ``day`` says it passed (the partition was judged and kept)."""
    import json

    report = params.reports_dir / "validation" / f"dt={day.isoformat()}" / "validation.json"
    try:
        return json.loads(report.read_text(encoding="utf-8")).get("success") is True
    except (OSError, ValueError):
        return False


def ingest_window(params: Params, as_of: date, *, window: int | None = None, track: bool = True) -> dict:
    """Ingest ``as_of`` and any day of the training window that has no partition yet.

    Days already materialised are left alone (their bytes are what earlier models learned from), and
    listed for validation (``unvalidated``) when no gate report says they passed;
    the as-of day is always re-read, so a rerun after a source fix picks up corrected rows, unless
    landing files made it (``source.json`` beside the partition): then the landing partition is
    the day's data and the SQL source is not read for it. A quarantined day other than the as-of day
    is not read again (it stays out of the window until a run as of it replays it); a day whose rows
    cannot be read is quarantined as text (``unreadable``). Rows whose event time places them on no
    day are counted (``unplaced_rows``). Returns a small JSON-safe summary for XCom.
    """
    from retrainer import unreadable

    days = window_days(as_of, window_length(params, as_of, window))
    misplaced = None
    results: list[PartitionIngest] = []
    for day in days:
        existing = partition_file(params.data_dir, day)
        if day != as_of and existing.exists():
            # A partition no gate ever passed (a run stopped between ingest and validate) is judged now.
            status = "existing" if _passed_gate(params, day) else "unvalidated"
            results.append(PartitionIngest(day.isoformat(), status, -1, str(existing), None))
            continue
        record = quarantine_record(params, day) if day != as_of else None
        if record is not None:
            results.append(PartitionIngest(day.isoformat(), "quarantined", -1, None, None, record["reason"]))
            continue
        if existing.exists() and is_landing_partition(params.data_dir, day):
            results.append(landing_day(params, day, track=track))
            continue
        if misplaced is None:  # one scan of the table for the whole window
            misplaced = unreadable.misplaced_rows(params.source_url, params.source.table, params.dataset.event_time)
        try:
            results.append(ingest_day(params, day, track=track, misplaced=misplaced))
        except UnreadableValues as exc:
            found = exc.found
            results.append(PartitionIngest(day.isoformat(), "unreadable", found["rows"], None, None, str(exc)))
    as_of_result = results[-1]
    return {
        "as_of": as_of.isoformat(),
        "as_of_rows": as_of_result.rows,
        "as_of_status": as_of_result.status,
        "new_partitions": [r.to_dict() for r in results if r.status in ("written", "unchanged", "landing", "unvalidated")],
        "empty_days": [r.day for r in results if r.status == "empty"],
        "skipped_days": [{"day": r.day, "status": r.status, "reason": r.reason}
                         for r in results if r.status in ("quarantined", "unreadable")],
        "unplaced_rows": unreadable.unplaced(misplaced, params.dataset.event_time) if misplaced is not None else None,
    }
