"""Benchmark data sets with known drifted columns, for ``bench/bench_drift.py`` and the drift tests.

Benchmark-only data, so it lives under ``bench/`` rather than in the library; the tests import it
as ``bench.drift_cases`` (the repository root is on their path).

Each case is a (reference, current) pair of 20 columns: the 14 churn features of the generator
(``retrainer.datagen``), with its own drift injection, plus 6 synthetic columns whose shifts are
chosen relative to Evidently's 0.1 threshold (clearly below, clearly above, and close to it).

``expected`` names the columns whose drift is certain by construction (scores far from the
threshold at any size used here); ``near`` names columns built to land close to the threshold,
where only agreement with Evidently on the same data can be asserted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from retrainer.datagen import CATEGORICAL_FEATURES, NUMERIC_FEATURES, DriftSpec, generate_range

SYNTHETIC_NUMERIC = ("syn_normal_a", "syn_normal_b", "syn_counts", "syn_lognormal", "syn_flag")
SYNTHETIC_CATEGORICAL = ("syn_segment",)
NUMERIC = (*NUMERIC_FEATURES, *SYNTHETIC_NUMERIC)
CATEGORICAL = (*CATEGORICAL_FEATURES, *SYNTHETIC_CATEGORICAL)
CASES = ("no_drift", "abrupt", "gradual", "near_threshold")
_SEGMENTS = ("s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8")
_SEGMENT_P = (0.22, 0.18, 0.15, 0.12, 0.11, 0.09, 0.08, 0.05)

# Per case: generator drift, then the synthetic columns' shifts in the current data:
# normal_a/normal_b mean shift (in std units; the normed Wasserstein of a pure shift equals it),
# counts Poisson rate, lognormal sigma, flag probability, and the share of segment mass moved to s8.
_CASE = {
    "no_drift": (None, (0.0, 0.0, 3.0, 0.50, 0.30, 0.0)),
    "abrupt": (("abrupt", ("monthly_charges", "region"), 1.0), (0.02, 0.30, 3.6, 0.50, 0.30, 0.20)),
    "gradual": (("gradual", ("num_support_calls", "contract_type"), 1.5), (0.06, 0.15, 3.0, 0.60, 0.31, 0.0)),
    "near_threshold": (None, (0.097, 0.103, 3.0, 0.50, 0.30, 0.079)),
}
_EXPECTED = {
    "no_drift": set(),
    "abrupt": {"monthly_charges", "total_charges", "region", "syn_normal_b", "syn_counts", "syn_segment"},
    "gradual": {"num_support_calls", "syn_normal_b", "syn_lognormal"},
    "near_threshold": set(),
}
_NEAR = {
    "no_drift": set(),
    "abrupt": set(),
    "gradual": {"tenure_months", "total_charges"},  # contract drift moves tenure a little
    "near_threshold": {"syn_normal_a", "syn_normal_b", "syn_segment"},
}


@dataclass(frozen=True)
class DriftCase:
    name: str
    reference: object  # pandas DataFrame
    current: object
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    expected: frozenset[str]  # drift certain by construction
    near: frozenset[str]  # close to the threshold by construction: assert agreement only

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.numeric, *self.categorical)


def _synthetic(n: int, seed: int, shifts: tuple[float, ...]):
    import numpy as np
    import pandas as pd

    normal_a, normal_b, rate, sigma, flag_p, segment_move = shifts
    rng = np.random.default_rng(seed)
    segment_p = np.array(_SEGMENT_P) * (1 - segment_move)
    segment_p[-1] += segment_move
    return pd.DataFrame(
        {
            "syn_normal_a": rng.normal(normal_a, 1.0, n),
            "syn_normal_b": rng.normal(normal_b, 1.0, n),
            "syn_counts": rng.poisson(rate, n).astype("int64"),
            "syn_lognormal": np.round(rng.lognormal(0.0, sigma, n), 3),
            "syn_flag": (rng.random(n) < flag_p).astype("int64"),
            "syn_segment": pd.array(rng.choice(np.array(_SEGMENTS, dtype=object), n, p=segment_p), dtype="string"),
        }
    )


def drift_case(name: str, rows: int, seed: int = 7, days: int = 4) -> DriftCase:
    """Reference and current frames of ``rows`` rows each (``days`` generated days per side)."""
    import pandas as pd

    if name not in _CASE:
        raise ValueError(f"unknown drift case {name!r}; known: {list(CASES)}")
    generator_drift, shifts = _CASE[name]
    per_day = max(1, rows // days)
    ref_start = date(2026, 1, 1)
    cur_start = ref_start + timedelta(days=60)
    drift = None
    if generator_drift is not None:
        kind, features, magnitude = generator_drift
        # Gradual: the current days sit inside the ramp, part of the way to the full effect.
        start = cur_start if kind == "abrupt" else cur_start - timedelta(days=3)
        drift = DriftSpec(start=start, kind=kind, features=features, magnitude=magnitude, ramp_days=14)
    features = [*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]

    def side(start: date, synthetic_shifts: tuple[float, ...], offset: int) -> pd.DataFrame:
        frame = generate_range(start, start + timedelta(days=days - 1), per_day, seed, drift)[features]
        frame = frame.head(rows).reset_index(drop=True)
        return pd.concat([frame, _synthetic(len(frame), seed * 1000 + offset, synthetic_shifts)], axis=1)

    reference = side(ref_start, _CASE["no_drift"][1], 1)
    current = side(cur_start, shifts, 2)
    return DriftCase(
        name=name,
        reference=reference,
        current=current,
        numeric=NUMERIC,
        categorical=CATEGORICAL,
        expected=frozenset(_EXPECTED[name]),
        near=frozenset(_NEAR[name]),
    )


# --------------------------------------------------------------------------- a month of daily checks


@dataclass(frozen=True)
class SimulatedCheck:
    as_of: str
    drifted_share: float
    drifted: dict[str, float]
    signal: bool
    action: str
    reference_end: str  # last day of the reference in force (the champion's last training day)
    max_score: float  # the largest column score relative to its threshold (score / threshold)


def simulate_daily_checks(
    policy,
    first_check: date,
    days: int,
    *,
    rows_per_day: int = 2000,
    seed: int = 42,
    drift: DriftSpec | None = None,
    train_days: int = 25,
    holdout_days: int = 3,
) -> list[SimulatedCheck]:
    """Daily drift checks with the library's statistics and decision, on generated data (no stores).

    The first champion was trained as of the day before ``first_check`` on ``train_days`` days ending
    ``holdout_days`` before that (the training DAG's split). A decision to retrain makes a new champion
    trained as of the check day, whose training days become the reference for later checks.
    """
    import pandas as pd

    from retrainer.datagen import generate_day
    from retrainer.drift import ReferenceProfile, column_specs, drift_table
    from retrainer.monitor import CheckOutcome, decide

    specs = column_specs(NUMERIC_FEATURES, CATEGORICAL_FEATURES, policy.methods, policy.thresholds)
    cache: dict[date, pd.DataFrame] = {}

    def frame(start: date, end: date) -> pd.DataFrame:
        for offset in range((end - start).days + 1):
            d = start + timedelta(days=offset)
            if d not in cache:
                cache[d] = generate_day(d, rows_per_day, seed, drift)
        return pd.concat([cache[start + timedelta(days=i)] for i in range((end - start).days + 1)], ignore_index=True)

    def reference_for(as_of: date) -> tuple[ReferenceProfile, date]:
        end = as_of - timedelta(days=holdout_days)
        return ReferenceProfile.from_frame(frame(end - timedelta(days=train_days - 1), end), specs), end

    reference, reference_end = reference_for(first_check - timedelta(days=1))
    checks: list[dict] = []
    triggers: list[dict] = []
    results = []
    for offset in range(days):
        as_of = first_check + timedelta(days=offset)
        current = frame(as_of - timedelta(days=policy.window_days - 1), as_of)
        table = drift_table(reference, current, specs, policy.drift_share)
        outcome = CheckOutcome(
            as_of=as_of.isoformat(),
            drifted_share=table.drifted_share,
            drifted_columns={c.column: c.score for c in table.drifted},
            critical_drifted=sorted(c.column for c in table.drifted if c.column in policy.critical_columns),
        )
        decision = decide(checks, triggers, outcome, policy)
        checks.append({"as_of": outcome.as_of, "signal": decision.signal})
        results.append(SimulatedCheck(outcome.as_of, outcome.drifted_share, outcome.drifted_columns,
                                      decision.signal, decision.action, reference_end.isoformat(),
                                      max(c.score / c.threshold for c in table.columns)))
        if decision.retrain:
            triggers.append({"as_of": outcome.as_of})
            reference, reference_end = reference_for(as_of)
    return results
