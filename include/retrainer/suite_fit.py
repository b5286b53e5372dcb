"""Fit a profiled suite to its sample: every day of the sample must pass the suite made from it.

``retrainer.suite_init.profile_suite`` writes down what a (sub-)sample showed, widened a little. A
day of the same sample can still fall outside: a value beyond the profiled rows' range, a day with
more missing values than the sample's average, a category only that day has. Before the suite is
written, :func:`fit_suite` runs the gate (``retrainer.validate.validate_frame``, the same code every
run uses) on each day of the sample and, for each critical expectation a day fails:

* loosens it to what that day holds (a range, a ``mostly`` null tolerance, a category set, value
  lengths, row counts), noting which day and what it saw; or, where there is nothing to loosen
  (uniqueness, types, the event time's interval), or loosening does not make the day pass,
* downgrades it to a warning, noting why.

Loosening only ever widens, so a day that passed before still passes; the day is checked again after
each change. The changes are returned and recorded in the suite's ``meta.fitted``. All days are checked
together first, the way a training run's gate checks a window (``retrainer.validate.window``).
"""

from __future__ import annotations

import json
import math
import tempfile
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from retrainer.validate import FailedExpectation

# How far a loosened null tolerance goes below the worst day's non-null share (float noise, one row).
MOSTLY_SLACK = 0.001


def fit_suite(suite: dict, frame: pd.DataFrame, event_time: str | None) -> list[dict]:
    """Check ``suite`` against each day of ``frame`` (by ``event_time``; the whole frame when None) and
    change it in place until every day passes; returns the changes ({day, type, column, action, note}).

    All days are checked at once as the training run's gate checks a window (``validate_partitions``:
    the same verdicts, far fewer GX runs); each day that fails is then fitted alone, in day order.
    """
    from retrainer.run_context import day_interval
    from retrainer.validate import PartitionToValidate, validate_partitions

    changes: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="suite-fit-") as scratch:
        work = Path(scratch)
        batches, parts = {}, []
        for n, (day, batch) in enumerate(sample_days(frame, event_time)):
            path = work / f"day{n}" / "part.parquet"
            path.parent.mkdir()
            batch.to_parquet(path, index=False)
            batches[day.isoformat()] = batch
            parts.append(PartitionToValidate(path, work / f"day{n}" / "report", *day_interval(day), day.isoformat()))
        checked = validate_partitions(parts, _suite_file(work, suite), work / "window", build_docs=False)
        failing = [part.label for part, outcome in checked if _critical(outcome)]
        for n, label in enumerate(failing):
            changes += _fit_day(suite, date.fromisoformat(label), batches[label], work / f"fit{n}")
    if changes:
        suite.setdefault("meta", {})["fitted"] = changes
    return changes


def changed_expectations(changes: list[dict], action: str) -> list[str]:
    """The expectations ``fit_suite`` changed by ``action`` (loosened, downgraded), each named once with
    the days of the sample that made it change, in the order they were first changed."""
    days: dict[str, list[str]] = {}
    for change in changes:
        if change["action"] == action:
            days.setdefault(f"{change['type']}({change['column']})", []).append(change["day"])
    return [f"{name} for {', '.join(on)}" if len(on) <= 3 else f"{name} for {len(on)} days ({on[0]}..{on[-1]})"
            for name, on in days.items()]


def _suite_file(work: Path, suite: dict) -> Path:
    path = work / "suite.json"
    path.write_text(json.dumps(suite, allow_nan=False), encoding="utf-8")
    return path


def _critical(outcome) -> list[FailedExpectation]:
    """The critical failures a suite can change (the gate's structural rules are not the suite's)."""
    return [f for f in outcome.critical() if not f.expectation_type.startswith("retrainer_")]


def _fit_day(suite: dict, day: date, batch: pd.DataFrame, work: Path) -> list[dict]:
    """Loosen what ``batch`` fails (checked with the suite as it is now), check again, downgrade what still fails."""
    from retrainer.run_context import day_interval
    from retrainer.validate import validate_frame

    changes = []
    for attempt in range(2):
        start, end = day_interval(day)
        outcome = validate_frame(batch, _suite_file(work.parent, suite), work / str(attempt), partition_label=f"dt={day}",
                                 interval_start=start, interval_end=end, build_docs=False)
        failed = _critical(outcome)
        if not failed:
            break
        for failure in failed:
            expectation = _find(suite, failure)
            if expectation is not None:
                change = _loosen(expectation, failure, batch) if attempt == 0 else None
                changes.append(_record(day, expectation, change or _downgrade(expectation, failure)))
    return changes


def sample_days(frame: pd.DataFrame, event_time: str | None) -> list[tuple[date, pd.DataFrame]]:
    """The sample's per-day batches (event times as naive UTC, as ingest writes them); without an event
    time the whole sample is one batch (its day then matters to no expectation)."""
    from retrainer.suite_init import as_naive_timestamps

    if event_time is None:
        return [(date(1970, 1, 1), frame)]
    frame = frame.assign(**{event_time: as_naive_timestamps(frame[event_time], event_time)})
    keys = frame[event_time].dt.date
    # Rows without an event time belong to no day: no partition holds them, so no gate sees them.
    return [(day, part.reset_index(drop=True)) for day, part in frame[keys.notna()].groupby(keys.dropna(), sort=True)]


def _find(suite: dict, failure: FailedExpectation) -> dict | None:
    for expectation in suite["expectations"]:
        if (
            expectation["type"] == failure.expectation_type
            and expectation["kwargs"].get("column") == failure.column
            and expectation["meta"].get("severity") == "critical"
        ):
            return expectation
    return None


def _record(day: date, expectation: dict, action: str) -> dict:
    return {"day": day.isoformat(), "type": expectation["type"], "column": expectation["kwargs"].get("column"),
            "action": action.split(":", 1)[0], "note": action}


def _downgrade(expectation: dict, failure: FailedExpectation) -> str:
    expectation["meta"]["severity"] = "warning"
    why = f"downgraded: a day of the sample fails it ({failure.describe()})"
    expectation["meta"]["notes"] = f"{expectation['meta'].get('notes', '')}; {why}".lstrip("; ")
    return why


def _loosen(expectation: dict, failure: FailedExpectation, batch: pd.DataFrame) -> str | None:
    """Widen ``expectation`` to what ``batch`` holds; a note of what changed, or None when it cannot."""
    kind, kwargs = expectation["type"], expectation["kwargs"]
    column = kwargs.get("column")
    values = batch[column].dropna() if column in batch.columns else None
    change: str | None = None
    if kind == "expect_column_values_to_be_between" and values is not None and len(values):
        change = _widen_range(kwargs, values)
    elif kind == "expect_column_values_to_not_be_null" and values is not None:
        share = len(values) / max(len(batch), 1)
        mostly = math.floor((min(kwargs.get("mostly", 1.0), share) - MOSTLY_SLACK) * 1000) / 1000
        if mostly > 0:
            kwargs["mostly"] = mostly
            change = f"loosened: mostly {mostly} (a day of the sample is {share:.1%} non-null)"
    elif kind == "expect_column_values_to_be_in_set" and values is not None:
        from retrainer.suite_init import plain_scalar

        seen = sorted({plain_scalar(v) for v in values.unique()} - set(kwargs["value_set"]), key=str)
        if seen:
            kwargs["value_set"] = sorted([*kwargs["value_set"], *seen], key=str)
            change = f"loosened: added {seen[:10]} seen on a day of the sample"
    elif kind == "expect_column_value_lengths_to_be_between" and values is not None and len(values):
        lengths = values.astype(str).str.len()
        kwargs["min_value"] = min(kwargs["min_value"], int(lengths.min()))
        kwargs["max_value"] = max(kwargs["max_value"], int(lengths.max()))
        change = f"loosened: lengths {kwargs['min_value']}..{kwargs['max_value']}"
    elif kind == "expect_table_row_count_to_be_between":
        kwargs["min_value"] = min(kwargs["min_value"], len(batch))
        kwargs["max_value"] = max(kwargs["max_value"], len(batch))
        change = f"loosened: rows {kwargs['min_value']}..{kwargs['max_value']}"
    if change is not None:
        expectation["meta"]["notes"] = f"{expectation['meta'].get('notes', '')}; {change}".lstrip("; ")
    return change


def _widen_range(kwargs: dict[str, Any], values: pd.Series) -> str | None:
    """A numeric range widened to the day's min and max; None for a range of suite parameters."""
    import pandas as pd

    if isinstance(kwargs.get("min_value"), dict) or isinstance(kwargs.get("max_value"), dict):
        return None  # the run's interval: nothing of the sample's to widen it to
    if not pd.api.types.is_numeric_dtype(values.dtype):
        return None
    low, high = float(values.min()), float(values.max())
    if kwargs.get("min_value") is not None and low < kwargs["min_value"]:
        kwargs["min_value"] = math.floor(low) if float(low).is_integer() else low
    if kwargs.get("max_value") is not None and high > kwargs["max_value"]:
        kwargs["max_value"] = math.ceil(high) if float(high).is_integer() else high
    return f"loosened: range {kwargs.get('min_value')}..{kwargs.get('max_value')} to hold a day of the sample"
