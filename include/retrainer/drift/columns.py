"""What a drift check compares and what it answers: column specs, per-column results, the table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

Kind = Literal["num", "cat"]
NUMERIC: Kind = "num"
CATEGORICAL: Kind = "cat"


class DriftInputError(ValueError):
    """A column cannot be compared (missing, empty after dropping nulls, or of the wrong type)."""


@dataclass(frozen=True)
class ColumnSpec:
    """A column to check: its kind and optional per-column method and threshold overrides."""

    name: str
    kind: Kind
    method: str | None = None
    threshold: float | None = None


def column_specs(
    numeric: Sequence[str],
    categorical: Sequence[str],
    methods: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> list[ColumnSpec]:
    methods, thresholds = dict(methods or {}), dict(thresholds or {})
    return [
        ColumnSpec(name, kind, methods.get(name), thresholds.get(name))
        for kind, names in ((NUMERIC, numeric), (CATEGORICAL, categorical))
        for name in names
    ]


@dataclass(frozen=True)
class ColumnDrift:
    """One column's answer: the method and threshold in force, the score and the decision."""

    column: str
    kind: Kind
    method: str  # Evidently's stat test name, e.g. "wasserstein"
    method_label: str  # its display name, e.g. "Wasserstein distance (normed)"
    threshold: float
    score: float
    drifted: bool
    computed_by: str  # "exact" (this module) or "evidently" (Evidently's stat test on all rows)
    reference_rows: int
    current_rows: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> ColumnDrift:
        return cls(**payload)


@dataclass(frozen=True)
class DriftTable:
    """Every column's answer, plus the dataset-level share Evidently reports."""

    columns: list[ColumnDrift]
    drift_share: float

    @property
    def drifted(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.drifted]

    @property
    def drifted_share(self) -> float:
        return len(self.drifted) / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.columns) and self.drifted_share >= self.drift_share

    def by_column(self) -> dict[str, ColumnDrift]:
        return {c.column: c for c in self.columns}

    def to_dict(self) -> dict:
        return {
            "columns": [c.to_dict() for c in self.columns],
            "drift_share": self.drift_share,
            "drifted_share": self.drifted_share,
            "dataset_drift": self.dataset_drift,
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> DriftTable:
        return cls([ColumnDrift.from_dict(c) for c in payload["columns"]], payload["drift_share"])


def summary_line(table: DriftTable, decision: str = "") -> str:
    """One log line: drifted share, the drifted columns with their scores, and the decision."""
    drifted = ", ".join(f"{c.column}={c.score:.3f}" for c in sorted(table.drifted, key=lambda c: -c.score)) or "none"
    line = f"drift: {len(table.drifted)}/{len(table.columns)} columns drifted (share {table.drifted_share:.2f}); drifted: {drifted}"
    return f"{line}; decision: {decision}" if decision else line
