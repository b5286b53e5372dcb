"""Clean, correlated churn data for one day, with drift applied; days concatenated into ranges.

Everything is vectorised numpy and seeded: one day's rows depend only on
``(seed, day, rows, drift, incidents)``, never on which range the day was generated in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from retrainer.datagen.incidents import apply_incident
from retrainer.datagen.schema import (
    CATEGORICAL_FEATURES,
    CATEGORIES,
    COLUMNS,
    DRIFT_TARGET_CATEGORY,
    ENTITY_ID,
    EVENT_TIME,
    INT_FEATURES,
    LABEL,
    MISSING_RATES,
    NUMERIC_FEATURES,
    NUMERIC_RANGES,
    SCHEMA,
)
from retrainer.datagen.specs import DriftSpec, IncidentSpec, as_date, drift_factor

_US_PER_DAY = 86_400 * 10**6

# Label model: logit = sum(coef * term). _CONCEPT_DELTA is added (times magnitude and ramp) under
# concept drift: support calls and contract stop mattering as much, price and inactivity matter more.
_COEF: dict[str, float] = {
    "intercept": -1.1,
    "month_to_month": 1.1,
    "two_year": -0.9,
    "log_tenure": -0.5,
    "charges": 0.016,
    "support_calls": 0.28,
    "satisfaction": -0.30,
    "late_payments": 0.35,
    "inactivity": 0.018,
    "electronic_check": 0.35,
    "products": -0.15,
    "session": -0.006,
}
_CONCEPT_DELTA: dict[str, float] = {
    "month_to_month": -0.9,
    "two_year": 0.7,
    "charges": 0.03,
    "support_calls": -0.3,
    "satisfaction": 0.2,
    "inactivity": 0.03,
    "intercept": 0.3,  # keeps the base rate near 27%: the relationship changes, not the prior
}
# Churn not explained by any observed feature; keeps the learnable AUC near 0.8 rather than 0.95.
_LABEL_NOISE_SD = 1.1


def _clip_round(values: np.ndarray, column: str, decimals: int | None) -> np.ndarray:
    lo, hi = NUMERIC_RANGES[column]
    out = np.clip(values, lo, hi if hi is not None else np.inf)
    if column in INT_FEATURES:
        return np.floor(out + 0.5).astype(np.int64)
    return np.round(out, decimals) if decimals is not None else out


def _draw_categorical(u: np.ndarray, probs: np.ndarray, categories: tuple[str, ...]) -> np.ndarray:
    """Map uniforms to category codes; probs is (k,) or per-row (n, k)."""
    cum = np.cumsum(probs, axis=-1)
    cum = cum / cum[..., -1:]
    if cum.ndim == 1:
        return np.minimum(np.searchsorted(cum, u, side="right"), len(categories) - 1)
    return np.minimum((u[:, None] >= cum).sum(axis=1), len(categories) - 1)


def _mix_toward(probs: np.ndarray, column: str, weight: float) -> np.ndarray:
    if weight <= 0:
        return probs
    target = np.zeros(probs.shape[-1])
    target[CATEGORIES[column].index(DRIFT_TARGET_CATEGORY[column])] = 1.0
    return (1.0 - weight) * probs + weight * target


@lru_cache(maxsize=1)
def reference_std() -> dict[str, float]:
    """Standard deviation of each numeric feature in clean data (the unit of numeric drift)."""
    frame = _clean_frame(np.random.default_rng([0, 1]), 200_000, date(2000, 1, 1), None)
    return {c: float(np.nanstd(frame[c])) for c in NUMERIC_FEATURES}


# Independent streams of the samplers whose draw counts depend on their parameters (gamma and
# Poisson reject): drifting one feature must not reshuffle the draws of the others.
_STREAMS = (
    "tenure", "products", "charges", "calls", "satisfaction", "late", "session", "inactivity", "usage",
    "total", "label", "missing", "dither",
)


def _clean_frame(rng: np.random.Generator, n: int, day: date, drift: DriftSpec | None) -> dict[str, Any]:
    """Columns of one day as numpy arrays, before missing values and incidents.

    The same (seed, day) gives the same underlying draws with or without drift, so a drifted
    feature and what derives from it change while every other column stays identical.
    """
    factor = drift_factor(drift, day)
    drifted = set(drift.features) if drift is not None and factor > 0 else set()
    strength = drift.magnitude * factor if drift is not None else 0.0
    cat_weight = min(1.0, 0.3 * abs(strength))

    ids = rng.choice(100_000_000, size=n, replace=False)
    offsets_us = rng.integers(0, _US_PER_DAY, size=n)

    # Unobserved traits: dissatisfaction drives support calls, low satisfaction and churn;
    # engagement drives usage and logins.
    unhappy = rng.standard_normal(n)
    engaged = rng.standard_normal(n)
    codes = _categorical_codes(rng, n, {c: cat_weight if c in drifted else 0.0 for c in CATEGORICAL_FEATURES})
    streams = dict(zip(_STREAMS, rng.spawn(len(_STREAMS)), strict=True))

    raw = _raw_numeric(streams, n, codes, unhappy, engaged)
    cols = _drifted_numeric(streams, n, raw, drifted, strength)
    cols[LABEL] = _labels(streams["label"], n, cols, codes, _label_coefficients(drift, factor, strength))
    missing_u = {c: streams["missing"].random(n) for c in MISSING_RATES}
    for name, rate in MISSING_RATES.items():
        cols[name] = np.where(missing_u[name] < rate, np.nan, cols[name])

    cols["_ids"] = ids
    cols["_offsets_us"] = offsets_us
    cols["_codes"] = codes
    return cols


def _categorical_codes(rng: np.random.Generator, n: int, weights: dict[str, float]) -> dict[str, np.ndarray]:
    """Category codes of the four categorical features; ``weights`` moves mass toward the drift target."""
    contract_p = _mix_toward(np.array([0.52, 0.25, 0.23]), "contract_type", weights["contract_type"])
    contract = _draw_categorical(rng.random(n), contract_p, CATEGORIES["contract_type"])
    tier_p = _mix_toward(np.array([0.40, 0.38, 0.22]), "plan_tier", weights["plan_tier"])
    tier = _draw_categorical(rng.random(n), tier_p, CATEGORIES["plan_tier"])
    # Rows: month-to-month, one-year, two-year. Month-to-month customers pay by e-check more often.
    payment_by_contract = np.array(
        [[0.25, 0.20, 0.42, 0.13], [0.33, 0.30, 0.20, 0.17], [0.37, 0.35, 0.12, 0.16]]
    )
    payment_p = _mix_toward(payment_by_contract[contract], "payment_method", weights["payment_method"])
    payment = _draw_categorical(rng.random(n), payment_p, CATEGORIES["payment_method"])
    region_p = _mix_toward(np.array([0.22, 0.20, 0.19, 0.21, 0.18]), "region", weights["region"])
    region = _draw_categorical(rng.random(n), region_p, CATEGORIES["region"])
    return {"contract_type": contract, "payment_method": payment, "region": region, "plan_tier": tier}


def _raw_numeric(
    streams: dict[str, np.random.Generator],
    n: int,
    codes: dict[str, np.ndarray],
    unhappy: np.ndarray,
    engaged: np.ndarray,
) -> dict[str, tuple[np.ndarray, int | None]]:
    """The numeric features before drift and clipping (total charges derive later), with their decimals."""
    contract, tier = codes["contract_type"], codes["plan_tier"]
    mtm = (contract == 0).astype(float)
    two_year = (contract == 2).astype(float)
    echeck = (codes["payment_method"] == 2).astype(float)
    basic = (tier == 0).astype(float)

    # Longer contracts go with longer tenure.
    tenure_shape = np.array([1.1, 2.0, 3.0])[contract]
    tenure_mean = np.array([16.0, 38.0, 58.0])[contract]
    tenure = streams["tenure"].gamma(tenure_shape, tenure_mean / tenure_shape)
    products = 1.0 + streams["products"].poisson(0.4 + 0.5 * tier + 0.01 * np.clip(tenure, 0, 120))
    charges = (
        40.0 + 30.0 * tier + 7.0 * (np.clip(products, 1, 6) - 1.0) + streams["charges"].normal(0.0, 10.0, size=n)
    )
    calls = streams["calls"].poisson(np.exp(0.2 + 0.45 * unhappy + 0.25 * basic - 0.004 * np.clip(tenure, 0, 120)))
    satisfaction = (
        6.6 - 1.1 * unhappy - 0.18 * calls + 0.3 * two_year + streams["satisfaction"].normal(0.0, 1.0, size=n)
    )
    late = streams["late"].poisson(np.exp(-1.0 + 0.7 * echeck + 0.3 * unhappy + 0.3 * mtm))
    session = streams["session"].gamma(2.0, 25.0 * np.exp(0.35 * engaged - 0.15 * unhappy))
    inactivity = streams["inactivity"].exponential(np.exp(2.0 - 0.6 * engaged + 0.2 * unhappy))
    usage = streams["usage"].gamma(1.5, (8.0 + 10.0 * tier) * np.exp(0.3 * engaged))
    return {
        "tenure_months": (tenure, None),
        "monthly_charges": (charges, 2),
        "num_support_calls": (calls.astype(float), None),
        "avg_session_minutes": (session, 1),
        "days_since_last_login": (inactivity, None),
        "num_products": (products, None),
        "satisfaction_score": (satisfaction, 1),
        "late_payments_12m": (late.astype(float), None),
        "data_usage_gb": (usage, 2),
    }


def _drifted_numeric(
    streams: dict[str, np.random.Generator],
    n: int,
    raw: dict[str, tuple[np.ndarray, int | None]],
    drifted: set[str],
    strength: float,
) -> dict[str, Any]:
    """The numeric columns with the drift's shift applied, clipped to their ranges; then total charges."""
    charge_noise = streams["total"].normal(0.0, 0.08, size=n)
    dither = streams["dither"].random(n)
    std = reference_std() if drifted & set(NUMERIC_FEATURES) else {}
    cols: dict[str, Any] = {}
    for name, (values, decimals) in raw.items():
        if name in drifted:
            # Clip first so the shift is measured against the clean distribution's scale.
            values = _clip_round(values, name, decimals).astype(float)
            values = values + strength * std[name]
            if name in INT_FEATURES:
                # Round at random so a shift of 1.3 counts moves the mean by 1.3, not by 1.
                values = np.floor(values + dither)
        cols[name] = _clip_round(values, name, decimals)

    # Derived after drift, so e.g. higher monthly charges also raise total charges.
    total = cols["tenure_months"] * cols["monthly_charges"] * np.exp(charge_noise)
    if "total_charges" in drifted:
        total = total + strength * std["total_charges"]
    cols["total_charges"] = _clip_round(total, "total_charges", 2)
    return cols


def _label_coefficients(drift: DriftSpec | None, factor: float, strength: float) -> dict[str, float]:
    coef = dict(_COEF)
    if drift is not None and drift.concept and factor > 0:
        for key, delta in _CONCEPT_DELTA.items():
            coef[key] += delta * strength
    return coef


def _labels(
    stream: np.random.Generator, n: int, cols: dict[str, Any], codes: dict[str, np.ndarray], coef: dict[str, float]
) -> np.ndarray:
    """``churned`` drawn from the logistic label model of the features plus unobserved noise."""
    label_noise = stream.normal(0.0, _LABEL_NOISE_SD, size=n)
    label_u = stream.random(n)
    contract = codes["contract_type"]
    logit = (
        coef["intercept"]
        + coef["month_to_month"] * (contract == 0).astype(float)
        + coef["two_year"] * (contract == 2).astype(float)
        + coef["log_tenure"] * np.log1p(cols["tenure_months"])
        + coef["charges"] * (cols["monthly_charges"] - 70.0)
        + coef["support_calls"] * cols["num_support_calls"]
        + coef["satisfaction"] * (cols["satisfaction_score"] - 6.0)
        + coef["late_payments"] * cols["late_payments_12m"]
        + coef["inactivity"] * np.minimum(cols["days_since_last_login"], 90)
        + coef["electronic_check"] * (codes["payment_method"] == 2).astype(float)
        + coef["products"] * (cols["num_products"] - 1)
        + coef["session"] * (cols["avg_session_minutes"] - 60.0)
        + label_noise
    )
    return (label_u < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)


def _to_frame(cols: dict[str, Any], day: date) -> pd.DataFrame:
    order = np.argsort(cols["_offsets_us"], kind="stable")
    midnight = np.datetime64(day, "ns")
    event_time = midnight + (cols["_offsets_us"][order] * 1000).astype("timedelta64[ns]")
    ids = np.strings.add("C", np.strings.zfill(cols["_ids"][order].astype("U8"), 8))
    data: dict[str, Any] = {
        ENTITY_ID: pd.array(ids.astype(object), dtype="string"),
        EVENT_TIME: event_time,
    }
    for name in NUMERIC_FEATURES:
        data[name] = cols[name][order]
    for name in CATEGORICAL_FEATURES:
        values = np.array(CATEGORIES[name], dtype=object)[cols["_codes"][name][order]]
        data[name] = pd.array(values, dtype="string")
    data[LABEL] = cols[LABEL][order]
    frame = pd.DataFrame(data, columns=list(COLUMNS))
    return frame.astype(SCHEMA, copy=False)


def empty_frame() -> pd.DataFrame:
    """A frame with zero rows and the clean schema."""
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in SCHEMA.items()}, columns=list(COLUMNS))


def generate_day(
    day: date,
    rows: int,
    seed: int,
    drift: DriftSpec | None = None,
    incidents: Sequence[IncidentSpec] = (),
) -> pd.DataFrame:
    """One day of events: ``rows`` rows with event_time in [day 00:00, day+1 00:00), sorted by time.

    Only incidents whose ``day`` is this day apply, in the order given. The result depends only
    on the arguments; the RNG is ``default_rng([seed, day.toordinal()])``.
    """
    day = as_date(day, "day")
    if isinstance(rows, bool) or not isinstance(rows, int | np.integer) or rows < 0:
        raise ValueError(f"rows must be a non-negative integer, got {rows!r}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    rows = int(rows)
    if rows > 100_000_000:
        raise ValueError(f"rows must be at most 100,000,000 (customer ids have 8 digits), got {rows}")
    rng = np.random.default_rng([seed, day.toordinal()])
    frame = _to_frame(_clean_frame(rng, rows, day, drift), day) if rows else empty_frame()
    todays = [inc for inc in incidents if inc.day == day]
    for number, incident in enumerate(todays):
        # A stream per incident, so adding an incident never changes the clean rows or another incident.
        inc_rng = np.random.default_rng([seed, day.toordinal(), 1 + number])
        frame = apply_incident(frame, incident, inc_rng)
    return frame.reset_index(drop=True)


def day_range(start: date, end: date) -> Iterator[date]:
    start, end = as_date(start, "start"), as_date(end, "end")
    if end < start:
        raise ValueError(f"end ({end}) is before start ({start})")
    for offset in range((end - start).days + 1):
        yield start + timedelta(days=offset)


def generate_range(
    start: date,
    end: date,
    rows_per_day: int,
    seed: int,
    drift: DriftSpec | None = None,
    incidents: Sequence[IncidentSpec] = (),
) -> pd.DataFrame:
    """Days ``start`` .. ``end`` (inclusive) concatenated; each day equals ``generate_day`` of it."""
    frames = [generate_day(d, rows_per_day, seed, drift, incidents) for d in day_range(start, end)]
    # An incident that drops a column makes that day's frame narrower; concat fills it with NaN.
    return pd.concat(frames, ignore_index=True) if frames else empty_frame()
