"""What a validation found: the failed expectations with their evidence, the outcome, the report file."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrainer.storage import write_bytes_atomic
from retrainer.validate.suite import SEVERITIES

if TYPE_CHECKING:
    import pandas as pd


MAX_EXAMPLES = 5


@dataclass(frozen=True)
class FailedExpectation:
    expectation_type: str
    column: str | None
    kwargs: dict  # JSON-safe; suite parameters appear with the values used in this run
    severity: str  # "critical" | "warning"
    unexpected_examples: list  # up to MAX_EXAMPLES distinct bad values (for aggregates: the observed value)
    unexpected_count: int | None
    observed_value: Any = None  # JSON-safe; aggregates, dtypes, observed column lists
    error: str | None = None  # set when GX could not evaluate the expectation (e.g. a missing column)

    def describe(self) -> str:
        target = f" on {self.column}" if self.column else ""
        shown = {k: v for k, v in self.kwargs.items() if k != "column"}
        line = f"[{self.severity}] {self.expectation_type}{target} {_short_json(shown)}"
        if self.error:
            return f"{line}: could not be evaluated: {self.error}"
        if self.unexpected_count is not None:
            line += f": {self.unexpected_count} unexpected"
        elif self.observed_value is not None:
            line += f": observed {_short_json(self.observed_value)}"
        if self.unexpected_examples:
            line += f", e.g. {_short_json(self.unexpected_examples)}"
        return line


_SEVERITY_ORDER = {"critical": 0, "warning": 1}


@dataclass(frozen=True)
class ValidationOutcome:
    success: bool  # False iff any CRITICAL expectation failed
    partition: str
    suite_name: str
    evaluated: int
    failed: list[FailedExpectation]
    report_json: str
    data_docs_index: str | None
    run_id: str

    def critical(self) -> list[FailedExpectation]:
        return [f for f in self.failed if f.severity == "critical"]

    def warnings(self) -> list[FailedExpectation]:
        return [f for f in self.failed if f.severity == "warning"]

    def message(self) -> str:
        verdict = "passed" if self.success else "FAILED"
        head = (
            f"Validation of {self.partition} against suite '{self.suite_name}' {verdict}: "
            f"{len(self.critical())} critical and {len(self.warnings())} warning failures "
            f"out of {self.evaluated} expectations (run {self.run_id})."
        )
        # Critical failures first: they are why a partition is quarantined, and a short reason
        # (quarantine.short_reason) keeps only the first few lines.
        ordered = sorted(self.failed, key=lambda f: _SEVERITY_ORDER.get(f.severity, len(_SEVERITY_ORDER)))
        lines = [head, *(f"  - {f.describe()}" for f in ordered)]
        lines.append(f"Report: {self.report_json}")
        if self.data_docs_index:
            lines.append(f"Data Docs: {self.data_docs_index}")
        return "\n".join(lines)


def failed_expectation(result, detail, df) -> FailedExpectation:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    column = kwargs.get("column")
    severity = (config.meta or {}).get("severity", "critical")
    base = {
        "expectation_type": config.type,
        "column": column,
        "kwargs": json_safe(kwargs),
        "severity": severity if severity in SEVERITIES else "critical",
    }
    if column is not None and column not in df.columns:
        return FailedExpectation(
            **base, unexpected_examples=[], unexpected_count=None, error=f"column {column!r} is missing"
        )
    error = _exception_message(detail) or _exception_message(result)
    if error:
        return FailedExpectation(**base, unexpected_examples=[], unexpected_count=None, error=error)

    info = detail.result or {}
    observed = json_safe(info.get("observed_value"))
    if config.type == "expect_column_values_to_be_in_type_list":
        examples, count = _type_offenders(df[column], kwargs.get("type_list") or [])
        return FailedExpectation(
            **base,
            unexpected_examples=examples,
            unexpected_count=count,
            observed_value=str(df[column].dtype),
        )
    if "partial_unexpected_counts" in info or "partial_unexpected_list" in info:
        values = [c["value"] for c in info.get("partial_unexpected_counts") or []]
        values = values or list(info.get("partial_unexpected_list") or [])
        count = info.get("unexpected_count")
        return FailedExpectation(
            **base,
            unexpected_examples=_distinct(values),
            unexpected_count=int(count) if count is not None else None,
            observed_value=observed,
        )
    mismatched = (info.get("details") or {}).get("mismatched")
    if isinstance(mismatched, dict):  # expect_table_columns_to_match_set
        examples = [f"missing: {c}" for c in mismatched.get("missing") or []]
        examples += [f"unexpected: {c}" for c in mismatched.get("unexpected") or []]
        return FailedExpectation(
            **base,
            unexpected_examples=examples[:MAX_EXAMPLES],
            unexpected_count=len(examples),
            observed_value=observed,
        )
    # Aggregate expectations (row count, mean, proportion): the observed value is the evidence.
    return FailedExpectation(
        **base,
        unexpected_examples=[] if observed is None else [observed],
        unexpected_count=None,
        observed_value=observed,
    )


def _exception_message(result) -> str | None:
    info = getattr(result, "exception_info", None) or {}
    # GX 1.x puts either one {raised_exception, exception_message} record here, or one per metric.
    records = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for record in records:
        if record.get("raised_exception") or record.get("exception_message"):
            message = str(record.get("exception_message") or "error").strip()
            return message.splitlines()[0][:300] if message else "error"
    return None


def _type_offenders(series: pd.Series, type_list: list) -> tuple[list, int | None]:
    """Values that do not parse as the expected kind: the strings in a numeric column, say.

    GX's own SUMMARY for this expectation lists every value of an object column, good ones too.
    """
    import pandas as pd

    is_text = isinstance(series.dtype, pd.StringDtype)
    if series.dtype != object and not is_text:
        return [], None  # the dtype itself is wrong (e.g. float where int is expected)
    values = series.dropna()
    if is_text:
        values = values.astype(object)
    names = " ".join(str(t).lower() for t in type_list)
    if "int" in names or "float" in names:
        bad = values[pd.to_numeric(values, errors="coerce").isna()]
    elif "datetime" in names:
        bad = values[pd.to_datetime(values, errors="coerce", format="mixed").isna()]
    else:
        bad = values[~values.map(lambda v: isinstance(v, str))]
    # A text column is wrong as a whole (its dtype says so); the values that do not even parse are the evidence.
    return _distinct(bad.tolist()), None if is_text else int(len(bad))


def _distinct(values: list) -> list:
    seen, out = set(), []
    for value in values:
        safe = json_safe(value)
        key = json.dumps(safe, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(safe)
        if len(out) == MAX_EXAMPLES:
            break
    return out


def json_safe(value: Any) -> Any:
    """Plain JSON types: NaN becomes None, timestamps ISO strings, numpy scalars Python numbers."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if isinstance(value, datetime | date):
        return None if value != value else value.isoformat()  # NaT is a datetime unequal to itself
    if hasattr(value, "isoformat"):  # pandas Timestamp, numpy datetime64 via pandas
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        try:
            return json_safe(value.item())
        except (TypeError, ValueError):
            pass
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _short_json(value: Any, limit: int = 200) -> str:
    # Values as they are (ensure_ascii off): "nÃ¶rth" must read as the mojibake it is, not as \u00c3\u00b6.
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def write_report(outcome: ValidationOutcome, gx_result: dict, params: dict) -> None:
    """``validation.json``: the outcome, the suite parameters used and GX's own result, atomically."""
    report = {
        "success": outcome.success,
        "partition": outcome.partition,
        "suite_name": outcome.suite_name,
        "run_id": outcome.run_id,
        "evaluated": outcome.evaluated,
        "critical_failures": len(outcome.critical()),
        "warning_failures": len(outcome.warnings()),
        "failed": [asdict(f) for f in outcome.failed],
        "suite_parameters": json_safe(params),
        "data_docs_index": outcome.data_docs_index,
        "gx_result": gx_result,
    }
    text = json.dumps(report, indent=2, default=str) + "\n"
    write_bytes_atomic(Path(outcome.report_json), text.encode())
