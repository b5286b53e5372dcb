"""The decision of an evaluation: every number, interval and reason, as JSON and as a table.

``retrainer.evaluate.challenger`` makes it, the register step acts on it, the control room shows its
table (``rows``), and its figures (``retrainer.plots``) are drawn from it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass
class Decision:
    as_of: str
    primary_metric: str
    higher_is_better: bool
    absolute_floor: float
    min_improvement: float
    challenger_run_id: str
    challenger_metrics: dict[str, float]
    champion_version: str | None
    champion_run_id: str | None
    champion_metrics: dict[str, float] | None
    improvement: float | None
    passed: bool  # the gate's verdict on the numbers
    promote: bool  # passed, and allowed to replace this champion (not itself, not older, not demoted)
    reasons: list[str] = field(default_factory=list)
    improvement_ci: list[float] | None = None
    confidence: float | None = None
    bootstrap: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    slices: list[dict[str, Any]] = field(default_factory=list)
    guards: list[dict[str, Any]] = field(default_factory=list)
    champion_as_of: str | None = None
    historical: bool = False
    challenger_run_key: str | None = None
    holdout_rows: int | None = None
    plots: list[str] = field(default_factory=list)
    task: str = "binary"
    classes: list[str] | None = None  # multiclass: the class order of the probability columns

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict) -> Decision:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in payload.items() if k in known})

    @classmethod
    def load(cls, path: str | Path) -> Decision:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    @property
    def verdict(self) -> str:
        if self.promote:
            return "PASSED: may replace the champion"
        if self.passed:
            return "PASSED, but not promotable (see reasons)"
        return "FAILED: champion unchanged"

    def table(self) -> str:
        """The decision as a small fixed-width table for the task log (and the MLflow run)."""
        rows = self.rows()
        header = rows[0]
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]
        lines.insert(1, "-+-".join("-" * w for w in widths))
        lines.append(f"decision: {self.verdict}")
        lines += [f"  - {r}" for r in self.reasons]
        return "\n".join(lines)

    def rows(self) -> list[tuple[str, ...]]:
        """The decision table's header and rows (check, challenger, champion, change, CI, rule, result)."""
        metric = self.primary_metric
        pct = f"{round((self.confidence or 0.95) * 100)}% CI"
        champ = f"champion v{self.champion_version}" if self.champion_version else "champion"
        header = ("check", "challenger", champ, "change", pct, "rule", "result")
        rows: list[tuple[str, ...]] = [header]
        new = self.challenger_metrics.get(metric)
        rows.append(
            (
                f"{metric} {'floor' if self.higher_is_better else 'ceiling'}", _num(new), "", "", "",
                f"{'>=' if self.higher_is_better else '<='} {self.absolute_floor:g}", _verdict(self._check("absolute_floor")),
            )
        )
        if self.champion_metrics is not None:
            ci = self.improvement_ci
            rows.append(
                (
                    f"{metric} vs champion",
                    _num(new),
                    _num(self.champion_metrics.get(metric)),
                    _signed(self.improvement),
                    "" if not ci else f"[{_signed(ci[0])}, {_signed(ci[1])}]",
                    f"CI low > {self.min_improvement:+g}",
                    _verdict(self._check("beats_champion")),
                )
            )
        for s in self.slices:
            if not s.get("judged"):
                continue
            rows.append(
                (
                    f"slice {s['feature']}={s['value']} (n={s['rows']})",
                    _num(s["challenger"]),
                    _num(s["champion"]),
                    _signed(s["change"]),
                    f"[{_signed(s['ci_low'])}, {_signed(s['ci_high'])}]",
                    f"change >= -{s['tolerance']:g}",
                    _verdict(s["passed"]),
                )
            )
        for g in self.guards:
            if g["guard"] == "predict_latency":
                rows.append(
                    (
                        "predict cpu ms / 1k rows",
                        _num(g["challenger"], 2),
                        _num(g["champion"], 2),
                        f"x{g['ratio']:.2f}",
                        "",
                        f"<= x{g['max_ratio']:g} + {g['slack_ms']:g} ms",
                        _verdict(g["passed"]),
                    )
                )
            else:
                rows.append(
                    (
                        f"guard {g['guard']}",
                        _num(g["challenger"]),
                        _num(g["champion"]),
                        _signed(g["change"]),
                        "",
                        f"change >= -{g['tolerance']:g}",
                        _verdict(g["passed"]),
                    )
                )
        for check in self.checks:
            label = _ELIGIBILITY_LABELS.get(check["check"])
            if label and not check["passed"]:
                rows.append((label, "", "", "", "", "", "no"))
        return rows

    def _check(self, name: str) -> bool | None:
        return next((c["passed"] for c in self.checks if c["check"] == name), None)


_ELIGIBILITY_LABELS = {
    "newer_than_champion": "data as new as the champion's",
    "not_demoted": "not demoted by a rollback",
    "not_the_champion": "not the champion already",
}


def _num(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _signed(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.4f}"


def _verdict(passed: bool | None) -> str:
    return "-" if passed is None else ("pass" if passed else "FAIL")
