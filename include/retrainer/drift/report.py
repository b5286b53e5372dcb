"""Evidently's own ``DataDriftPreset`` report: plain (the baseline), or showing the full-data answers."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrainer.drift.columns import CATEGORICAL, NUMERIC, ColumnDrift, ColumnSpec, DriftTable, Kind
from retrainer.storage import write_with

if TYPE_CHECKING:
    import pandas as pd


def _stat_test(method: str, kind: Kind):
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    return get_registered_stattest(method, ColumnType(kind))


def _data_definition(specs: Sequence[ColumnSpec]):
    from evidently import DataDefinition

    return DataDefinition(
        numerical_columns=[s.name for s in specs if s.kind == NUMERIC],
        categorical_columns=[s.name for s in specs if s.kind == CATEGORICAL],
    )


def _report_frame(frame: Any, specs: Sequence[ColumnSpec]) -> pd.DataFrame:
    import pyarrow as pa

    names = [s.name for s in specs]
    if isinstance(frame, pa.Table):
        return frame.select(names).to_pandas()
    return frame[names]


def _preset(specs: Sequence[ColumnSpec], drift_share: float, methods: Mapping[str, str] | None = None):
    from evidently.presets import DataDriftPreset

    per_method = {s.name: s.method for s in specs if s.method}
    per_method.update(methods or {})
    per_threshold = {s.name: float(s.threshold) for s in specs if s.threshold is not None}
    return DataDriftPreset(
        columns=[s.name for s in specs],
        drift_share=drift_share,
        per_column_method=per_method or None,
        per_column_threshold=per_threshold or None,
    )


def run_evidently(
    reference: Any,
    current: Any,
    specs: Sequence[ColumnSpec],
    drift_share: float,
    metadata: dict[str, Any] | None = None,
    methods: Mapping[str, str] | None = None,
):
    """``Report([DataDriftPreset])`` on the given frames, with tests; returns Evidently's snapshot."""
    from evidently import Dataset, Report

    definition = _data_definition(specs)
    report = Report(
        [_preset(specs, drift_share, methods)],
        include_tests=True,
        metadata={k: str(v) for k, v in (metadata or {}).items()},
    )
    return report.run(
        current_data=Dataset.from_pandas(_report_frame(current, specs), data_definition=definition),
        reference_data=Dataset.from_pandas(_report_frame(reference, specs), data_definition=definition),
    )


def snapshot_table(snapshot: Any, specs: Sequence[ColumnSpec], drift_share: float, reference_rows: int = -1,
                   current_rows: int = -1, computed_by: str = "evidently") -> DriftTable:
    """Per-column method, threshold, score and decision as an Evidently snapshot reports them."""
    described = snapshot.dict()
    kinds = {s.name: s.kind for s in specs}
    decisions = {}
    for test in described["tests"]:
        name = str(test.get("name", ""))
        prefix = "Value Drift for column "
        if name.startswith(prefix):
            status = getattr(test["status"], "value", test["status"])
            decisions[name[len(prefix):]] = str(status) == "FAIL"
    columns = []
    for metric in described["metrics"]:
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        name = config["column"]
        if name not in decisions:
            raise ValueError(f"the Evidently snapshot has no drift test for column {name!r}")
        columns.append(
            ColumnDrift(
                column=name,
                kind=kinds[name],
                method=str(config.get("method")),
                method_label=str(config.get("method")),
                threshold=float(config.get("threshold")),
                score=float(metric["value"]),
                drifted=decisions[name],
                computed_by=computed_by,
                reference_rows=reference_rows,
                current_rows=current_rows,
            )
        )
    return DriftTable(columns, drift_share)


def evidently_drift(reference: Any, current: Any, specs: Sequence[ColumnSpec], drift_share: float) -> DriftTable:
    """Plain Evidently on all the rows it is given: the baseline the fast path must agree with."""
    snapshot = run_evidently(reference, current, specs, drift_share)
    return snapshot_table(snapshot, specs, drift_share, len(reference), len(current))


# The full-data answers that drift_report's stat tests hand to Evidently, keyed by column.
_FULL_DATA_ANSWERS: ContextVar[dict[str, ColumnDrift] | None] = ContextVar("retrainer_full_data_answers", default=None)
FULL_DATA_SUFFIX = "__full_data"


def _answer(reference: pd.Series, current: pd.Series, feature_type: Any, threshold: float) -> tuple[float, bool]:
    answers = _FULL_DATA_ANSWERS.get()
    if answers is None or reference.name not in answers:
        raise RuntimeError(f"no full-data drift answer for column {reference.name!r}")
    answer = answers[reference.name]
    return answer.score, answer.drifted


def _full_data_test_name(method: str, kind: Kind) -> str:
    """Register (once) a stat test that reports ``method``'s full-data answer inside an Evidently report."""
    from evidently.legacy.calculations.stattests.registry import (
        StatTest,
        _registered_stat_tests,
        register_stattest,
    )
    from evidently.legacy.core import ColumnType

    name = f"{method}{FULL_DATA_SUFFIX}"
    if name not in _registered_stat_tests:
        original = _stat_test(method, kind)
        register_stattest(
            StatTest(
                name=name,
                display_name=f"{original.display_name}, on all rows",
                allowed_feature_types=[ColumnType.Numerical, ColumnType.Categorical],
                default_threshold=original.default_threshold,
            ),
            _answer,
        )
    return name


@contextmanager
def _answers(table: DriftTable) -> Iterator[None]:
    token = _FULL_DATA_ANSWERS.set(table.by_column())
    try:
        yield
    finally:
        _FULL_DATA_ANSWERS.reset(token)


def drift_report(
    reference_sample: Any,
    current_sample: Any,
    table: DriftTable,
    specs: Sequence[ColumnSpec],
    metadata: dict[str, Any] | None = None,
):
    """Evidently's DataDriftPreset report whose drift scores and decisions are ``table``'s.

    The samples feed the report's distribution plots; every score, threshold, per-column test and
    the drifted share come from ``table`` (computed on all rows), so the report and the decision
    never disagree.
    """
    answers = table.by_column()
    missing = [s.name for s in specs if s.name not in answers]
    if missing:
        raise ValueError(f"drift_report: no answers for columns {missing}")
    methods = {s.name: _full_data_test_name(answers[s.name].method, s.kind) for s in specs}
    thresholds = [ColumnSpec(s.name, s.kind, None, answers[s.name].threshold) for s in specs]
    with _answers(table):
        return run_evidently(reference_sample, current_sample, thresholds, table.drift_share, metadata, methods)


def save_report(snapshot: Any, html_path: Path, json_path: Path) -> None:
    """The snapshot as HTML and JSON, each written atomically."""
    write_with(html_path, lambda tmp: snapshot.save_html(str(tmp)))
    write_with(json_path, lambda tmp: tmp.write_text(json.dumps(snapshot.dict(), indent=1, default=str)))
