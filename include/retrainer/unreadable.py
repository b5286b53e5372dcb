"""Source rows that cannot be read as their declared types: found, reported and quarantined, never lost.

Two ways a day's rows escape the typed read of ``retrainer.ingest``:

* a value of the wrong type in a typed column (text such as ``1,5`` in a REAL column of SQLite, which
  stores any value in any column): the typed read fails for the whole day;
* an event time stored in another form than the rest (text ``10/26/2026 05:00`` in a SQLite DATETIME
  column): no day's interval query ever selects the row, because the comparison is on the text.

Either way the day becomes a quarantined batch: its rows are read again with every column as text
(``CAST(... AS VARCHAR)``), kept as they came in ``quarantine/dt=<day>/part.parquet``, with a report in
the raw gate's format (``reports/validation/dt=<day>/validation.json``) naming each unreadable column,
its declared type, how many rows and example values. The control room lists it with a replay button.
Rows whose event time cannot be placed on any day at all (NULL, or text that is no date) are counted
and reported by every ingest that looks at the table.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrainer.config import Params
from retrainer.run_context import day_interval

if TYPE_CHECKING:
    import pyarrow as pa

READABLE_CHECK = "retrainer_source_values_readable"
MAX_EXAMPLES = 5
# How the event time of every correctly stored row begins, in any dialect's text form of a timestamp.
ISO_PREFIX = "____-__-__%"


@dataclass(frozen=True)
class UnreadableColumn:
    column: str
    declared_type: str
    rows: int
    examples: list[str]

    def describe(self) -> str:
        return f"column {self.column!r} ({self.declared_type}): {self.rows} rows, e.g. {self.examples}"


def _text_columns(source: Any) -> list:
    import sqlalchemy as sa

    return [sa.cast(c, sa.String).label(c.name) for c in source.columns]


def _text_table(result: Any, names: list[str]) -> pa.Table:
    import pyarrow as pa

    rows = result.fetchall()
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return pa.table({n: pa.array([None if v is None else str(v) for v in values], pa.string())
                     for n, values in zip(names, columns, strict=True)})


def read_interval_as_text(url: str, table: str, event_time: str, start: datetime, end: datetime) -> tuple[pa.Table, dict]:
    """The rows of [start, end) with every column as text, and each column's declared type name."""
    import sqlalchemy as sa

    from retrainer.sql_source import source_table

    with source_table(url, table, "read (as text)") as (conn, source):
        query = sa.select(*_text_columns(source)).where(source.c[event_time] >= start, source.c[event_time] < end)
        text = _text_table(conn.execute(query), [c.name for c in source.columns])
        declared = {c.name: _declared(c) for c in source.columns}
    return text, declared


def misplaced_rows(url: str, table: str, event_time: str) -> pa.Table:
    """Every row whose event time is NULL or not stored as ISO text, all columns as text, plus the day
    its event time parses to (``__day__``, None when it parses to no date)."""
    import pandas as pd
    import pyarrow as pa
    import sqlalchemy as sa

    from retrainer.sql_source import source_table

    with source_table(url, table, "check event times of") as (conn, source):
        column = source.c[event_time]
        query = sa.select(*_text_columns(source)).where(
            sa.or_(column.is_(None), sa.cast(column, sa.String).not_like(ISO_PREFIX))
        )
        text = _text_table(conn.execute(query), [c.name for c in source.columns])
    values = pd.Series(text.column(event_time).to_pylist(), dtype=object)
    parsed = pd.to_datetime(values, format="mixed", errors="coerce")
    days = [None if pd.isna(t) else t.date().isoformat() for t in parsed]
    return text.append_column("__day__", pa.array(days, pa.string()))


def rows_of_day(misplaced: pa.Table, day: date) -> pa.Table:
    import pyarrow.compute as pc

    return misplaced.filter(pc.equal(misplaced.column("__day__"), day.isoformat())).drop_columns(["__day__"])


def unplaced(misplaced: pa.Table, event_time: str) -> dict:
    """Rows whose event time places them on no day: their count and example values."""
    import pyarrow.compute as pc

    rows = misplaced.filter(pc.is_null(misplaced.column("__day__")))
    examples = _distinct(rows.column(event_time).to_pylist()) if rows.num_rows else []
    return {"rows": rows.num_rows, "examples": examples}


def _declared(column: Any) -> str:
    try:
        return column.type.python_type.__name__
    except NotImplementedError:
        return "unknown"


def _distinct(values: list) -> list[str]:
    out: list[str] = []
    for value in values:
        shown = "NULL" if value is None else str(value)
        if shown not in out:
            out.append(shown)
        if len(out) == MAX_EXAMPLES:
            break
    return out


def unreadable_columns(text: pa.Table, declared: dict[str, str]) -> list[UnreadableColumn]:
    """The columns of ``text`` holding values that do not parse as the column's declared type."""
    import pandas as pd

    problems = []
    for name, kind in declared.items():
        if kind in ("str", "unknown") or name not in text.column_names:
            continue
        values = pd.Series(text.column(name).to_pylist(), dtype=object).dropna()
        if kind in ("int", "float", "Decimal"):
            bad = values[pd.to_numeric(values, errors="coerce").isna()]
        elif kind in ("datetime", "date"):
            bad = values[pd.to_datetime(values, format="ISO8601", errors="coerce").isna()]
        elif kind == "bool":
            bad = values[~values.str.lower().isin(["0", "1", "true", "false"])]
        else:
            continue
        if len(bad):
            problems.append(UnreadableColumn(name, kind, int(len(bad)), _distinct(bad.tolist())))
    return problems


def quarantine_unreadable_day(params: Params, day: date, misplaced_today: pa.Table | None) -> dict:
    """Quarantine ``day`` as a text batch with a report; returns {rows, reason, quarantined_to, problems}.

    ``misplaced_today``: the rows whose event time is stored in another form but parses to ``day``.
    Raises LookupError when the day's rows all read as their types and none is misplaced.
    """
    import pyarrow as pa

    ds = params.dataset
    start, end = day_interval(day)
    text, declared = read_interval_as_text(params.source_url, params.source.table, ds.event_time, start, end)
    problems = unreadable_columns(text, declared)
    if misplaced_today is not None and misplaced_today.num_rows:
        examples = _distinct(misplaced_today.column(ds.event_time).to_pylist())
        problems.append(UnreadableColumn(ds.event_time, f"{declared.get(ds.event_time, 'datetime')} (stored in another form)",
                                         misplaced_today.num_rows, examples))
        text = pa.concat_tables([text, misplaced_today.select(text.column_names)])
    if not problems:
        raise LookupError(f"{day.isoformat()}: every source row reads as its declared type")
    reason = (
        f"source rows of {day.isoformat()} in table {params.source.table!r} cannot be read as their declared "
        f"types ({text.num_rows} rows kept as text):\n" + "\n".join(f"  - {p.describe()}" for p in problems)
    )
    report_dir = params.reports_dir / "validation" / f"dt={day.isoformat()}"
    _write_report(report_dir, day, params, problems, text.num_rows)
    target = _quarantine_text(params, day, text, report_dir, reason)
    return {"rows": text.num_rows, "reason": f"{reason}\n  quarantined to: {target}", "quarantined_to": str(target),
            "problems": [asdict(p) for p in problems]}


def _quarantine_text(params: Params, day: date, text: pa.Table, report_dir: Path, reason: str) -> Path:
    import pyarrow.parquet as pq

    from retrainer.quarantine import quarantine

    staging = params.data_dir / "quarantine"
    staging.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".dt={day.isoformat()}.", suffix=".parquet.tmp", dir=staging)
    os.close(fd)
    staged = Path(name)
    try:
        pq.write_table(text, staged, compression="zstd")
        return quarantine(params, day, [report_dir], reason, batch=staged, kind="unreadable")
    finally:
        staged.unlink(missing_ok=True)


def _write_report(report_dir: Path, day: date, params: Params, problems: list[UnreadableColumn], rows: int) -> None:
    from retrainer.validate.results import FailedExpectation, ValidationOutcome, write_report

    failed = [
        FailedExpectation(
            expectation_type=READABLE_CHECK,
            column=p.column,
            kwargs={"column": p.column, "declared_type": p.declared_type},
            severity="critical",
            unexpected_examples=p.examples,
            unexpected_count=p.rows,
        )
        for p in problems
    ]
    outcome = ValidationOutcome(
        success=False,
        partition=f"source table {params.source.table!r} dt={day.isoformat()} ({rows} rows)",
        suite_name="source types (structural)",
        evaluated=len(problems),
        failed=failed,
        report_json=str(report_dir / "validation.json"),
        data_docs_index=None,
        run_id=f"source-read__dt={day.isoformat()}",
    )
    start, end = day_interval(day)
    write_report(outcome, {}, {"interval_start": start, "interval_end": end})
