"""The retrain decision: a pure function of the check history, today's outcome and the ``drift`` params.

A drift signal (drifted share, a critical column, performance) must persist (``required`` of the last
``checks`` checks) and no drift-triggered retrain may have happened within ``cooldown_days``. Nothing
here reads the clock or a file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from retrainer.config import DriftConfig

Action = Literal["retrain", "no_drift", "unconfirmed", "cooldown", "already_triggered", "inconclusive"]


@dataclass(frozen=True)
class CheckOutcome:
    """What today's check found: the input of :func:`decide`."""

    as_of: str
    drifted_share: float
    drifted_columns: dict[str, float]
    critical_drifted: list[str] = field(default_factory=list)
    performance_degraded: bool | None = None  # None: not judged (too few labels)
    performance_note: str = ""
    prediction_drifted: bool | None = None  # None: no batch-scoring outputs
    inconclusive: str | None = None  # why no judgement was possible, if so


@dataclass(frozen=True)
class RetrainDecision:
    action: Action
    retrain: bool
    signal: bool
    reasons: list[str]  # what signalled drift today
    note: str  # why this action
    drift_seen: int  # checks with a drift signal among those considered for persistence
    checks_considered: int
    last_trigger: str | None = None
    cooldown_until: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def drift_signals(outcome: CheckOutcome, policy: DriftConfig) -> list[str]:
    """Why today's check signals drift (empty: it does not)."""
    reasons = []
    if outcome.inconclusive:
        return reasons
    if outcome.drifted_share >= policy.drift_share:
        reasons.append(f"drifted share {outcome.drifted_share:.2f} >= drift_share {policy.drift_share}")
    if outcome.critical_drifted:
        reasons.append(f"critical columns drifted: {', '.join(outcome.critical_drifted)}")
    if outcome.performance_degraded:
        reasons.append(f"performance below its floor: {outcome.performance_note}")
    if outcome.prediction_drifted and policy.prediction_drift_is_critical:
        reasons.append("prediction drift (drift.prediction_drift_is_critical)")
    return reasons


def decide(
    checks: Sequence[Mapping[str, Any]],
    triggers: Sequence[Mapping[str, Any]],
    today: CheckOutcome,
    policy: DriftConfig,
) -> RetrainDecision:
    """Retrain or not, from the history of checks and triggers, today's outcome and the policy.

    ``checks`` are earlier check records (``as_of``, ``signal``, ``inconclusive``); a record for
    today's date is ignored (a rerun replaces it). ``triggers`` are earlier drift-triggered retrains
    (``as_of``). Retrain when today signals drift, drift was seen in at least
    ``persistence.required`` of the last ``persistence.checks`` conclusive checks (today included),
    and no drift-triggered retrain happened fewer than ``cooldown_days`` days from today.
    """
    day = date.fromisoformat(today.as_of)
    reasons = drift_signals(today, policy)
    signal = bool(reasons)
    if today.inconclusive:
        return RetrainDecision("inconclusive", False, False, [], today.inconclusive, 0, 0)

    earlier = sorted(
        (c for c in checks if c["as_of"] < today.as_of and not c.get("inconclusive")), key=lambda c: c["as_of"]
    )
    window = earlier[len(earlier) - (policy.persistence.checks - 1):] if policy.persistence.checks > 1 else []
    seen = sum(bool(c.get("signal")) for c in window) + int(signal)
    considered = len(window) + 1
    required = policy.persistence.required

    trigger_days = sorted(date.fromisoformat(t["as_of"]) for t in triggers)
    last = max((t for t in trigger_days if t <= day), default=None)
    base = dict(drift_seen=seen, checks_considered=considered, last_trigger=last.isoformat() if last else None)

    if not signal:
        return RetrainDecision("no_drift", False, False, [], "no drift signal", **base)
    if seen < required:
        note = f"drift seen in {seen} of the last {considered} checks; {required} of {policy.persistence.checks} needed"
        return RetrainDecision("unconfirmed", False, True, reasons, note, **base)
    if day in trigger_days:
        note = f"a drift-triggered retrain was already started for {today.as_of}"
        return RetrainDecision("already_triggered", False, True, reasons, note, **base)
    blocking = [t for t in trigger_days if abs((day - t).days) < policy.cooldown_days]
    if blocking:
        nearest = max(blocking)
        until = (nearest + timedelta(days=policy.cooldown_days)).isoformat()
        note = (
            f"drift confirmed ({seen} of {considered} checks) but a drift-triggered retrain ran for "
            f"{nearest.isoformat()}: cooldown of {policy.cooldown_days} days lasts until {until}"
        )
        return RetrainDecision("cooldown", False, True, reasons, note, cooldown_until=until, **base)
    note = f"drift confirmed in {seen} of the last {considered} checks, no retrain within {policy.cooldown_days} days"
    return RetrainDecision("retrain", True, True, reasons, note, **base)
