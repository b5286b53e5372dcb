"""Bootstrap a validation suite for a new data set from a reference sample.

``profile_suite`` looks at a frame and writes down what it saw, widened a little, as a GX suite in
the format ``retrainer.validate`` runs (``meta.severity`` on every expectation, the run's interval
as suite parameters). It is a starting point for a person to review, not a verdict: the notes on
each expectation say what was observed, so the reviewer can tighten or loosen it.

What goes in:

* structure (critical): the exact column set; per column a dtype family check (numbers and
  timestamps; text columns are covered by their set or length check); not-null, with a ``mostly``
  allowance where the reference had missing values; rows per partition not zero and not runaway.
* values (critical): numeric ranges widened by ``margin`` x range (integers stay integers, a column
  that was never negative stays >= 0); category sets for low-cardinality text; value lengths for
  other text; a unique entity id; event time inside the run's ``[interval_start, interval_end)``.
* distribution (warning): column means, the share of non-null values where nulls occur, and the
  usual number of rows per partition. Warnings are reported, they do not stop a run.

Pandas is imported inside the functions, like everywhere in the library.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrainer.gates import FINITE_CHECK
from retrainer.storage import write_bytes_atomic

if TYPE_CHECKING:
    import pandas as pd

INT_TYPES = ["int64", "int32", "Int64", "Int32"]
FLOAT_TYPES = ["float64", "float32", "Float64"]
DATETIME_TYPES = ["datetime64[ns]", "datetime64[us]", "datetime64[ms]"]
BOOL_TYPES = ["bool", "boolean"]
# Allowed null rate = observed rate x NULL_FACTOR + NULL_FLOOR: 2% observed -> 5% allowed.
NULL_FACTOR, NULL_FLOOR = 2.0, 0.01
# The warning band on the non-null share is tighter: 2% observed -> warn above 3.5%.
NULL_WARN_FACTOR, NULL_WARN_FLOOR = 1.5, 0.005
# Rows per partition: critical outside [smallest / 10 (at least 1), 10 x largest], warning outside
# [smallest / 2, 2 x largest], from the per-day counts of the sample.
ROWS_CRITICAL_FACTOR, ROWS_WARN_FACTOR = 10, 2


def profile_suite(
    frame: pd.DataFrame,
    *,
    name: str,
    entity_id: str | None = None,
    event_time: str | None = None,
    label: str | None = None,
    margin: float = 0.1,
    max_categories: int = 50,
    sample_rows: int = 100_000,
    seed: int = 0,
) -> dict:
    """Profile ``frame`` and return a suite dict (GX 1.x JSON plus ``meta.severity``).

    Rows per partition and the entity id's uniqueness are judged on the whole frame (per
    ``event_time`` day when given, else the frame is one partition); everything else on a seeded
    random sample of at most ``sample_rows`` rows.
    """
    import pandas as pd

    _check_arguments(frame, name, entity_id, event_time, label, margin, max_categories, sample_rows)
    frame = frame.copy()
    if event_time is not None:
        frame[event_time] = as_naive_timestamps(frame[event_time], event_time)
    sample = frame.sample(n=sample_rows, random_state=seed) if len(frame) > sample_rows else frame
    profiled = len(sample)

    expectations: list[dict] = [
        _exp(
            "expect_table_columns_to_match_set",
            {"column_set": [str(c) for c in frame.columns], "exact_match": True},
            "critical",
            "the reference's columns: none missing, none extra",
        )
    ]
    expectations += _row_count_expectations(frame, event_time)
    notes: list[str] = []
    roles = {entity_id: "entity id", event_time: "event time", label: "label"}
    for column in frame.columns:
        role = roles.get(column) if column is not None else None
        expectations += _column_expectations(
            str(column), sample[column], role, margin, max_categories, profiled, notes
        )
        if role == "entity id":
            expectations += _entity_uniqueness(frame, column, event_time, notes)

    reference = {"rows": len(frame), "profiled_rows": profiled, "margin": margin, "seed": seed}
    finite = [str(c) for c in frame.columns if pd.api.types.is_float_dtype(frame[c].dtype)]
    return {
        "name": name,
        "expectations": expectations,
        "suite_parameters": {},
        "meta": {
            "great_expectations_version": _gx_version(),
            "generated_by": "retrainer suite init",
            "reference": reference,
            "roles": {"entity_id": entity_id, "event_time": event_time, "label": label},
            "pandas_version": pd.__version__,
            # Applied by the gate to every batch whatever this suite says; written here so a reader sees it.
            "structural_rules": [
                {"type": FINITE_CHECK, "severity": "critical", "columns": finite,
                 "notes": "inf/-inf in any numeric column stops the batch (NaN is a missing value)"}
            ],
        },
        "notes": [
            "Generated from a reference sample: review every expectation before relying on it.",
            "meta.severity: critical failures stop the run and quarantine the partition; warnings are "
            "reported only.",
            f"Ranges are the observed min..max widened by {margin:g} x (max - min); category sets list "
            "the values seen; not-null allowances are twice the observed null rate plus one point.",
            f"Structural rule {FINITE_CHECK} (always applied by the gate): no inf/-inf in numeric columns.",
            *notes,
        ],
    }


def write_suite(suite: dict, path: Path, overwrite: bool = False) -> Path:
    """Write ``suite`` as JSON to ``path`` atomically; refuse to replace an existing file unless asked."""
    path = Path(path)
    if not isinstance(suite, dict) or not suite.get("name") or not suite.get("expectations"):
        raise ValueError(f"{path}: refusing to write a suite without a name and expectations")
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path}: a suite already exists here; review and edit it, or pass overwrite=True "
            "(--force on the command line) to replace it"
        )
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, not a suite file")
    text = json.dumps(suite, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))
    return path


def read_reference_file(path: Path, event_time: str | None = None) -> pd.DataFrame:
    """A reference sample from a CSV or Parquet file (or a folder of Parquet files)."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv") or path.name.lower().endswith((".csv.gz", ".tsv.gz")):
            sep = "\t" if ".tsv" in path.name.lower() else ","
            frame = pd.read_csv(path, sep=sep)
        elif suffix in (".parquet", ".pq") or path.is_dir():
            frame = pd.read_parquet(path)
        else:
            raise ValueError(f"{path}: cannot read {suffix or 'a file without suffix'!r}; use CSV or Parquet")
    except (ValueError, OSError):
        raise
    except Exception as exc:  # parser errors of pandas/pyarrow
        raise ValueError(f"{path}: cannot read the reference sample: {type(exc).__name__}: {exc}") from exc
    if event_time is not None and event_time in frame.columns:
        frame[event_time] = as_naive_timestamps(frame[event_time], f"{path}: {event_time}")
    return frame


def read_reference_table(
    url: str, table: str, *, limit: int, order_by: str | None = None
) -> pd.DataFrame:
    """Up to ``limit`` rows of ``table`` (newest first when ``order_by`` names a column of it).

    The query is built with SQLAlchemy (``select(table).limit(n)``): the table name is reflected,
    never pasted into SQL, and the limit is a bound parameter.
    """
    import pandas as pd
    import sqlalchemy as sa

    from retrainer.sql_source import masked_url, source_table

    if limit < 1:
        raise ValueError(f"the sample size must be at least 1, got {limit}")
    with source_table(url, table) as (conn, source):
        query = sa.select(source)
        if order_by is not None and order_by in source.c:
            query = query.order_by(source.c[order_by].desc())
        frame = pd.read_sql(query.limit(limit), conn)
    if frame.empty:
        raise ValueError(f"source {masked_url(url)}: table {table!r} has no rows to profile")
    return frame


def drop_cut_day(frame: pd.DataFrame, url: str, table: str, event_time: str) -> pd.DataFrame:
    """A sample of the newest N rows without its oldest day when the limit cut that day short (the source
    has more rows of it than the sample): a partial day would set row counts and shares no real day has.
    Kept when it is the only day of the sample."""
    import sqlalchemy as sa

    from retrainer.run_context import day_interval
    from retrainer.sql_source import source_table

    days = as_naive_timestamps(frame[event_time], event_time).dt.normalize()
    if days.nunique() < 2:
        return frame
    oldest = days.min()
    start, end = day_interval(oldest.date())
    with source_table(url, table, "count rows of") as (conn, source):
        column = source.c[event_time]
        in_source = conn.execute(sa.select(sa.func.count()).where(column >= start, column < end)).scalar_one()
    return frame[days != oldest].reset_index(drop=True) if in_source > int((days == oldest).sum()) else frame


# --- profiling ---------------------------------------------------------------------------------


def _check_arguments(frame, name, entity_id, event_time, label, margin, max_categories, sample_rows) -> None:
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"profile_suite expects a pandas DataFrame, got {type(frame).__name__}")
    if frame.empty:
        raise ValueError("cannot profile an empty reference sample: it has no rows")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("the suite needs a non-empty name")
    duplicated = sorted({str(c) for c in frame.columns if list(frame.columns).count(c) > 1})
    if duplicated:
        raise ValueError(f"the reference sample has repeated column names: {duplicated}")
    for role, column in (("entity_id", entity_id), ("event_time", event_time), ("label", label)):
        if column is not None and column not in frame.columns:
            raise ValueError(f"{role} column {column!r} is not in the reference sample ({list(frame.columns)})")
    if not (isinstance(margin, int | float) and math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
    if max_categories < 1:
        raise ValueError(f"max_categories must be >= 1, got {max_categories}")
    if sample_rows < 1:
        raise ValueError(f"sample_rows must be >= 1, got {sample_rows}")


def as_naive_timestamps(series: pd.Series, where: str) -> pd.Series:
    """Timestamps as naive UTC, the form ingest writes and the gate's interval uses."""
    import pandas as pd

    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        try:
            series = pd.to_datetime(series, format="mixed")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where}: event time values are not timestamps: {exc}") from None
    if getattr(series.dt, "tz", None) is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    return series


def _row_count_expectations(frame: pd.DataFrame, event_time: str | None) -> list[dict]:
    if event_time is not None and frame[event_time].notna().any():
        counts = frame.groupby(frame[event_time].dt.normalize()).size()
        smallest, largest, partitions = int(counts.min()), int(counts.max()), len(counts)
    else:
        smallest = largest = len(frame)
        partitions = 1
    seen = f"observed {smallest:,}..{largest:,} rows per partition in {partitions} partition(s)"
    return [
        _exp(
            "expect_table_row_count_to_be_between",
            {"min_value": max(1, smallest // ROWS_CRITICAL_FACTOR), "max_value": largest * ROWS_CRITICAL_FACTOR},
            "critical",
            f"an empty or runaway partition means ingestion broke; {seen}",
        ),
        _exp(
            "expect_table_row_count_to_be_between",
            {"min_value": max(1, smallest // ROWS_WARN_FACTOR), "max_value": largest * ROWS_WARN_FACTOR},
            "warning",
            f"unusual volume; {seen}",
        ),
    ]


def _entity_uniqueness(frame: pd.DataFrame, column: str, event_time: str | None, notes: list[str]) -> list[dict]:
    """Uniqueness of the entity id within a partition (an event-time day), judged on the whole frame."""
    import pandas as pd

    keys = pd.DataFrame({"id": frame[column]})
    if event_time is not None:
        keys["day"] = frame[event_time].dt.normalize()
    if keys.dropna().duplicated().any():
        notes.append(f"{column}: the entity id repeats within a partition of the reference; no uniqueness check.")
        return []
    return [_exp("expect_column_values_to_be_unique", {"column": column}, "critical", "one row per entity per partition")]


def _column_expectations(
    column: str,
    series: pd.Series,
    role: str | None,
    margin: float,
    max_categories: int,
    profiled: int,
    notes: list[str],
) -> list[dict]:
    import pandas as pd

    out: list[dict] = []
    dtype = series.dtype
    null_rate = float(series.isna().mean())
    values = series.dropna()
    where = f"{profiled:,} profiled rows"

    # Types: only dtypes whose check is one dtype comparison (GX type-checks text values one by one).
    type_list = _type_family(dtype)
    if type_list is FLOAT_TYPES and not values.empty and bool((values % 1 == 0).all()):
        # Whole numbers with missing values: an INTEGER source column is read as floats only on days with a NULL.
        type_list = INT_TYPES + FLOAT_TYPES
    if type_list is not None:
        out.append(
            _exp(
                "expect_column_values_to_be_in_type_list",
                {"column": column, "type_list": type_list},
                "critical",
                f"observed dtype {dtype}",
            )
        )

    if values.empty:
        notes.append(f"{column}: entirely null in the reference; only its presence is checked.")
        return out
    out += _label_null_expectations(column, null_rate, where) if role == "label" else _null_expectations(
        column, null_rate, role, where
    )

    if pd.api.types.is_datetime64_any_dtype(dtype):
        return out + _interval_expectations(column, role)
    if pd.api.types.is_bool_dtype(dtype):
        return out  # the dtype check already limits the values to True and False
    if pd.api.types.is_numeric_dtype(dtype):
        return out + _number_expectations(column, values, dtype, role, margin, max_categories, where, notes)
    return out + _text_expectations(column, values, role, margin, max_categories, where)


def _interval_expectations(column: str, role: str | None) -> list[dict]:
    """The event time falls in the run's data interval; other timestamps get only their type check."""
    if role != "event time":
        return []
    return [
        _exp(
            "expect_column_values_to_be_between",
            {
                "column": column,
                "min_value": {"$PARAMETER": "interval_start"},
                "max_value": {"$PARAMETER": "interval_end"},
                "strict_max": True,
            },
            "critical",
            "rows must fall in the run's data interval [start, end)",
        )
    ]


def _number_expectations(
    column: str,
    values: pd.Series,
    dtype,
    role: str | None,
    margin: float,
    max_categories: int,
    where: str,
    notes: list[str],
) -> list[dict]:
    """A label's class set, or a range and mean; nothing for a numeric entity id."""
    if role == "entity id":
        notes.append(f"{column}: a numeric entity id gets no range or mean check (new ids grow).")
        return []
    if role == "label" and values.nunique() <= max_categories:
        classes = sorted(plain_scalar(v) for v in values.unique())
        label_set = _exp(
            "expect_column_values_to_be_in_set",
            {"column": column, "value_set": classes},
            "critical",
            f"the label classes seen in {where}",
        )
        return [label_set, *_numeric_expectations(column, values, dtype, margin, where, role, with_range=False)]
    return _numeric_expectations(column, values, dtype, margin, where, role, with_range=True)


def _text_expectations(
    column: str, values: pd.Series, role: str | None, margin: float, max_categories: int, where: str
) -> list[dict]:
    """Object, string or category columns: a set when few distinct values repeat, else lengths."""
    text = values.astype(str)
    distinct = text.unique()
    if role != "entity id" and len(distinct) <= min(max_categories, max(1, len(text) // 2)):
        return [
            _exp(
                "expect_column_values_to_be_in_set",
                {"column": column, "value_set": sorted(str(v) for v in distinct)},
                "critical",
                f"{len(distinct)} categories seen in {where}; an unseen category breaks encoders",
            )
        ]
    lengths = text.str.len()
    lo, hi = int(lengths.min()), int(lengths.max())
    spread = math.ceil(margin * (hi - lo))
    return [
        _exp(
            "expect_column_value_lengths_to_be_between",
            {"column": column, "min_value": max(0, lo - spread), "max_value": hi + spread},
            "critical",
            f"{len(distinct):,} distinct values of length {lo}..{hi} in {where}",
        )
    ]


def _label_null_expectations(column: str, null_rate: float, where: str) -> list[dict]:
    """A missing label is an unlabelled row (not yet known, or the event was cancelled): prepare drops it
    before training, so it is reported as a warning with its share, never a critical failure."""
    why = "unlabelled rows are dropped before training: reported, never a failure"
    if null_rate == 0:
        return [_exp("expect_column_values_to_not_be_null", {"column": column}, "warning",
                     f"no unlabelled rows in {where}; {why}")]
    warn_at = min(1.0, null_rate * NULL_WARN_FACTOR + NULL_WARN_FLOOR)
    return [
        _exp(
            "expect_column_proportion_of_non_null_values_to_be_between",
            {"column": column, "min_value": _floor(1.0 - warn_at, 3), "max_value": 1.0},
            "warning",
            f"observed {null_rate:.2%} unlabelled rows in {where}; warns above {warn_at:.1%}; {why}",
        )
    ]


def _null_expectations(column: str, null_rate: float, role: str | None, where: str) -> list[dict]:
    if null_rate == 0:
        note = f"no nulls in {where}" + (f" ({role})" if role else "")
        return [_exp("expect_column_values_to_not_be_null", {"column": column}, "critical", note)]
    out = []
    allowed = min(1.0, null_rate * NULL_FACTOR + NULL_FLOOR)
    warn_at = min(1.0, null_rate * NULL_WARN_FACTOR + NULL_WARN_FLOOR)
    seen = f"observed {null_rate:.2%} null in {where}"
    if allowed < 1.0:
        out.append(
            _exp(
                "expect_column_values_to_not_be_null",
                {"column": column, "mostly": _floor(1.0 - allowed, 3)},
                "critical",
                f"{seen}; more than {allowed:.1%} means the feed is broken",
            )
        )
    if warn_at < allowed:
        out.append(
            _exp(
                "expect_column_proportion_of_non_null_values_to_be_between",
                {"column": column, "min_value": _floor(1.0 - warn_at, 3), "max_value": 1.0},
                "warning",
                f"{seen}; above {warn_at:.1%} the feed is degrading",
            )
        )
    return out


def _numeric_expectations(
    column: str, values: pd.Series, dtype, margin: float, where: str, role: str | None, *, with_range: bool
) -> list[dict]:
    import pandas as pd

    lo, hi = float(values.min()), float(values.max())
    span = hi - lo
    out = []
    if with_range:
        widen = margin * (span if span > 0 else max(abs(lo), 1.0))
        low, high = lo - widen, hi + widen
        if lo >= 0 > low:
            low = 0.0  # never negative in the reference: a negative value is an error, not drift
        if pd.api.types.is_integer_dtype(dtype):
            low, high = math.floor(low), math.ceil(high)
        else:
            low, high = _floor(low, 6), _ceil(high, 6)
        out.append(
            _exp(
                "expect_column_values_to_be_between",
                {"column": column, "min_value": low, "max_value": high},
                "critical",
                f"observed {plain_scalar(values.min())}..{plain_scalar(values.max())} in {where}, widened by {margin:g} x range",
            )
        )
    mean = float(values.mean())
    if margin * span > 0:
        what = "the label's base rate moved" if role == "label" else "a change upstream?"
        # The band cannot leave the observed range's side of zero: a mean below 0 of values >= 0 is impossible.
        mean_low = mean - margin * span
        if lo >= 0 > mean_low:
            mean_low = 0.0
        out.append(
            _exp(
                "expect_column_mean_to_be_between",
                {
                    "column": column,
                    "min_value": _floor(mean_low, 6),
                    "max_value": _ceil(mean + margin * span, 6),
                },
                "warning",
                f"observed mean {mean:.6g} in {where}; off by more than {margin:g} x range: {what}",
            )
        )
    return out


def _type_family(dtype) -> list[str] | None:
    import pandas as pd

    if pd.api.types.is_bool_dtype(dtype):
        return BOOL_TYPES
    if pd.api.types.is_integer_dtype(dtype):
        return INT_TYPES
    if pd.api.types.is_float_dtype(dtype):
        return FLOAT_TYPES
    if pd.api.types.is_datetime64_dtype(dtype):
        return DATETIME_TYPES
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return [str(dtype)]
    return None


def _exp(kind: str, kwargs: dict, severity: str, note: str) -> dict:
    return {"type": kind, "kwargs": kwargs, "meta": {"severity": severity, "notes": note}}


def plain_scalar(value: Any) -> Any:
    """A JSON-ready Python scalar."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _floor(value: float, digits: int) -> float:
    """Round down to ``digits`` decimals, ignoring float noise (1.386 - 1.0 stays 0.386)."""
    scale = 10**digits
    return math.floor(round(value * scale, 6)) / scale


def _ceil(value: float, digits: int) -> float:
    scale = 10**digits
    return math.ceil(round(value * scale, 6)) / scale


def _gx_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("great_expectations")
    except PackageNotFoundError:
        return None
