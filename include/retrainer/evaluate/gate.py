"""The gate on numbers alone (no MLflow, no files): one function per rule, composed by ``apply_gate``.

The rules, in the order they are judged and reported (each returns its check: ``check``, ``passed``,
``detail``; the details are the decision's reasons):

1. ``absolute_floor``: the challenger's primary metric clears ``absolute_floor``;
2. ``beats_champion``: the lower end of the paired bootstrap interval of its improvement lies above
   ``min_improvement``;
3. ``slices``: no slice with enough rows and both classes drops the metric by more than
   ``slices.tolerance`` (``judge_slices``, then ``slices_check``);
4. ``guards``: no guard metric worsens by more than its tolerance (``metric_guards``) and predicting does
   not cost more than ``max_latency_ratio`` times the champion's (``latency_guard``), then ``guards_check``.

Without champion scores only the floor is judged (and the challenger's slice values are reported).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retrainer.config import EvaluationConfig
from retrainer.metrics import (
    METRIC_DIRECTIONS,
    Comparison,
    all_metrics,
    improvement,
    metric_value,
    paired_bootstrap,
)

if TYPE_CHECKING:
    import numpy as np

# A rule's verdict: {"check": its name, "passed": bool, "detail": the reason in words}.
Check = dict[str, Any]
# A guard's row of the decision and, when it fails, the failure in words.
Guard = tuple[dict[str, Any], str | None]


@dataclass
class GateOutcome:
    passed: bool
    checks: list[Check]
    reasons: list[str]
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    comparison: Comparison | None
    slices: list[dict[str, Any]]
    guards: list[dict[str, Any]]


@dataclass(frozen=True)
class Slice:
    """The rows of the holdout where categorical ``feature`` has ``value``."""

    feature: str
    value: str
    mask: np.ndarray


def apply_gate(
    cfg: EvaluationConfig,
    seed: int,
    y: np.ndarray,
    challenger_scores: np.ndarray,
    champion_scores: np.ndarray | None = None,
    segments: dict[str, np.ndarray] | None = None,
    latency_ms: dict[str, float] | None = None,
    threshold: float = 0.5,
    task: str = "binary",
    classes: list | None = None,
) -> GateOutcome:
    """Judge challenger scores against champion scores on the same labelled rows.

    ``segments`` maps a categorical feature to its value on each row (the slices); ``latency_ms`` holds
    ``challenger`` and ``champion`` predict times in ms per 1,000 rows. Without champion scores only the
    floor is judged (and the challenger's slice values are reported). ``task`` says what the scores are
    (``retrainer.metrics``): for multiclass, probability matrices whose columns are ``classes``.
    """
    import numpy as np

    y = np.asarray(y, dtype=np.float64)
    new_metrics = all_metrics(y, challenger_scores, threshold, task, classes)
    slices = slices_of(segments)
    floor = absolute_floor(cfg, new_metrics)
    if champion_scores is None:
        reported = unjudged_slices(cfg, y, challenger_scores, slices, threshold, task)
        return GateOutcome(floor["passed"], [floor], [floor["detail"]], new_metrics, None, None, reported, [])

    old_metrics = all_metrics(y, champion_scores, threshold, task, classes)
    comparison, by_slice = paired_bootstrap(
        cfg.primary_metric,
        y,
        challenger_scores,
        champion_scores,
        resamples=cfg.bootstrap.resamples,
        confidence=cfg.bootstrap.confidence,
        seed=seed,
        subsets={key: s.mask for key, s in slices.items()},
        threshold=threshold,
        task=task,
    )
    judged = judge_slices(cfg, y, slices, by_slice, task)
    guards = [*metric_guards(cfg, new_metrics, old_metrics), *latency_guard(cfg, latency_ms)]
    checks = [
        check
        for check in (
            floor,
            beats_champion(cfg, comparison),
            slices_check(cfg, judged),
            guards_check(guards),
        )
        if check is not None
    ]
    return GateOutcome(
        passed=all(c["passed"] for c in checks),
        checks=checks,
        reasons=[c["detail"] for c in checks],
        challenger_metrics=new_metrics,
        champion_metrics=old_metrics,
        comparison=comparison,
        slices=judged,
        guards=[row for row, _ in guards],
    )


# --------------------------------------------------------------------------------------------------
# The rules
# --------------------------------------------------------------------------------------------------


def absolute_floor(cfg: EvaluationConfig, metrics: dict[str, float]) -> Check:
    """The challenger's primary metric clears the absolute floor (from above or below, by its direction)."""
    metric = cfg.primary_metric
    value = metrics[metric]
    higher = METRIC_DIRECTIONS[metric]
    clears = bool(value >= cfg.absolute_floor) if higher else bool(value <= cfg.absolute_floor)
    bound = "floor" if higher else "ceiling (lower is better)"
    detail = f"{metric}={value:.4f} {'clears' if clears else 'misses'} the absolute {bound} {cfg.absolute_floor:g}"
    return {"check": "absolute_floor", "passed": clears, "detail": detail}


def beats_champion(cfg: EvaluationConfig, comparison: Comparison) -> Check:
    """The lower end of the improvement's paired bootstrap interval lies above ``min_improvement``."""
    beats = bool(comparison.ci_low > cfg.min_improvement)
    pct = round(cfg.bootstrap.confidence * 100)
    detail = (
        f"improvement {comparison.improvement:+.4f}, {pct}% paired-bootstrap interval "
        f"[{comparison.ci_low:+.4f}, {comparison.ci_high:+.4f}] over {comparison.resamples} resamples: "
        + (
            f"lies above min_improvement {cfg.min_improvement:+g}"
            if beats
            else f"does not lie above min_improvement {cfg.min_improvement:+g} (not better beyond noise)"
        )
    )
    return {"check": "beats_champion", "passed": beats, "detail": detail}


def slices_of(segments: dict[str, np.ndarray] | None) -> dict[str, Slice]:
    """One slice per value of each segment feature, keyed ``feature=value``."""
    import numpy as np

    slices: dict[str, Slice] = {}
    for feature, values in (segments or {}).items():
        values = np.asarray(values).astype(str)
        for level in np.unique(values).tolist():
            slices[f"{feature}={level}"] = Slice(feature, level, values == level)
    return slices


def unjudged_slices(
    cfg: EvaluationConfig, y: np.ndarray, scores: np.ndarray, slices: dict[str, Slice], threshold: float,
    task: str = "binary",
) -> list[dict[str, Any]]:
    """The challenger's metric per slice, reported only: there is no champion to compare with."""
    return [
        {
            "feature": s.feature,
            "value": s.value,
            "rows": int(s.mask.sum()),
            "challenger": _safe_metric(cfg.primary_metric, y[s.mask], scores[s.mask], threshold, task),
            "champion": None,
            "change": None,
            "ci_low": None,
            "ci_high": None,
            "tolerance": cfg.slices.tolerance,
            "judged": False,
            "passed": None,
            "note": "no champion to compare with",
        }
        for s in slices.values()
    ]


def judge_slices(
    cfg: EvaluationConfig, y: np.ndarray, slices: dict[str, Slice], by_slice: dict[str, Comparison],
    task: str = "binary",
) -> list[dict[str, Any]]:
    """Each slice's change with its interval; judged (passed or not) when it has enough rows and, for
    classification, more than one class."""
    import numpy as np

    rows = []
    for key, s in slices.items():
        c = by_slice[key]
        varied = task == "regression" or len(np.unique(y[s.mask])) > 1
        judged = c.rows >= cfg.slices.min_rows and varied and not math.isnan(c.improvement)
        rows.append(
            {
                "feature": s.feature,
                "value": s.value,
                "rows": c.rows,
                "challenger": c.challenger,
                "champion": c.champion,
                "change": c.improvement,
                "ci_low": c.ci_low,
                "ci_high": c.ci_high,
                "tolerance": cfg.slices.tolerance,
                "judged": judged,
                "passed": (c.improvement >= -cfg.slices.tolerance) if judged else None,
                "note": "" if judged else f"not judged: {c.rows} rows (< min_rows {cfg.slices.min_rows}) or one class",
            }
        )
    return rows


def slices_check(cfg: EvaluationConfig, slices: list[dict[str, Any]]) -> Check | None:
    """No judged slice drops the primary metric by more than the tolerance (None without slices)."""
    if not slices:
        return None
    metric, tolerance = cfg.primary_metric, cfg.slices.tolerance
    failures = [f"{s['feature']}={s['value']} {s['change']:+.4f}" for s in slices if s["passed"] is False]
    judged = sum(1 for s in slices if s["judged"])
    detail = (
        f"{judged} slices judged, none drops {metric} by more than {tolerance:g}"
        if not failures
        else f"{metric} drops by more than {tolerance:g} on: {', '.join(failures)}"
    )
    return {"check": "slices", "passed": not failures, "detail": detail}


def metric_guards(cfg: EvaluationConfig, new: dict[str, float], old: dict[str, float]) -> list[Guard]:
    """Each guard metric (calibration, log loss...) worsens by no more than its tolerance."""
    guards: list[Guard] = []
    for name, tolerance in cfg.guards.metrics.items():
        change = float(improvement(name, new[name], old[name]))
        ok = bool(change >= -tolerance)
        row = {"guard": name, "challenger": new[name], "champion": old[name], "change": change,
               "tolerance": tolerance, "passed": ok}
        guards.append((row, None if ok else f"{name} worsens by {abs(change):.4f} (> {tolerance:g})"))
    return guards


def latency_guard(cfg: EvaluationConfig, latency_ms: dict[str, float] | None) -> list[Guard]:
    """Predicting costs at most ``max_latency_ratio`` x the champion's + ``latency_slack_ms`` (ms per 1k
    rows); no guard when it is off or nothing was measured."""
    ratio, slack = cfg.guards.max_latency_ratio, cfg.guards.latency_slack_ms
    if ratio is None or not latency_ms:
        return []
    new_ms, old_ms = latency_ms["challenger"], latency_ms["champion"]
    limit = ratio * old_ms + slack
    ok = bool(new_ms <= limit)
    row = {
        "guard": "predict_latency",
        "challenger": new_ms,
        "champion": old_ms,
        "ratio": new_ms / old_ms if old_ms > 0 else float("inf"),
        "max_ratio": ratio,
        "slack_ms": slack,
        "passed": ok,
    }
    problem = f"predict takes {new_ms:.2f} ms per 1k rows, over {limit:.2f} ({ratio:g} x champion's {old_ms:.2f} + {slack:g})"
    return [(row, None if ok else problem)]


def guards_check(guards: list[Guard]) -> Check | None:
    """Every guard holds (None without guards)."""
    if not guards:
        return None
    failures = [problem for _, problem in guards if problem]
    detail = (
        f"guards hold ({', '.join(row['guard'] for row, _ in guards)})"
        if not failures
        else "guard regression: " + "; ".join(failures)
    )
    return {"check": "guards", "passed": not failures, "detail": detail}


def _safe_metric(metric: str, y: np.ndarray, scores: np.ndarray, threshold: float, task: str) -> float | None:
    if len(y) == 0:
        return None
    value = metric_value(metric, y, scores, threshold, task)
    return None if math.isnan(value) else value
