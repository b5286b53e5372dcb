"""A seeded generator of a customer-churn data set with an event-time column.

It feeds the demo, the tests and the benchmarks. Everything is vectorised numpy (a million rows take
one to two seconds), and everything is deterministic: one day's rows depend only on
``(seed, day, rows, drift, incidents)``, never on which range the day was generated in.

Rows per day are exactly ``rows`` (there is no day-of-week variation), so row counts are easy to
predict in tests and benchmarks.

Three layers:

* clean data: plausible, correlated features and a ``churned`` label drawn from a logistic model
  of those features plus unobserved noise, so a gradient-boosting model reaches ROC AUC of
  roughly 0.8 on a holdout. Values stay inside ``NUMERIC_RANGES`` and ``CATEGORIES``.
* drift (``DriftSpec``): covariate shift of chosen features from a start day, abrupt or ramped,
  optionally with concept drift (a changed label model).
* incidents (``IncidentSpec``): one-day data-quality breakages such as nulls, out-of-range values,
  unseen categories, duplicate keys, a dropped column or a wrongly typed column.

``seed_source`` writes generated days into a SQL table through SQLAlchemy Core.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from retrainer.errors import SourceError

# --- schema -----------------------------------------------------------------------------------

ENTITY_ID = "customer_id"
EVENT_TIME = "event_time"
LABEL = "churned"

INT_FEATURES = (
    "tenure_months",
    "num_support_calls",
    "days_since_last_login",
    "num_products",
    "late_payments_12m",
)
NUMERIC_FEATURES = (
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "num_support_calls",
    "avg_session_minutes",
    "days_since_last_login",
    "num_products",
    "satisfaction_score",
    "late_payments_12m",
    "data_usage_gb",
)
CATEGORICAL_FEATURES = ("contract_type", "payment_method", "region", "plan_tier")

CATEGORIES: dict[str, tuple[str, ...]] = {
    "contract_type": ("month-to-month", "one-year", "two-year"),
    "payment_method": ("credit_card", "bank_transfer", "electronic_check", "mailed_check"),
    "region": ("north", "south", "east", "west", "central"),
    "plan_tier": ("basic", "standard", "premium"),
}

# Inclusive bounds of clean data; None means unbounded. total_charges is only bounded below.
NUMERIC_RANGES: dict[str, tuple[float, float | None]] = {
    "tenure_months": (0, 120),
    "monthly_charges": (15.0, 150.0),
    "total_charges": (0.0, None),
    "num_support_calls": (0, 20),
    "avg_session_minutes": (0.0, 240.0),
    "days_since_last_login": (0, 365),
    "num_products": (1, 6),
    "satisfaction_score": (1.0, 10.0),
    "late_payments_12m": (0, 12),
    "data_usage_gb": (0.0, 500.0),
    LABEL: (0, 1),
}

# Fraction of missing values in clean data (missing completely at random).
MISSING_RATES: dict[str, float] = {"total_charges": 0.02, "satisfaction_score": 0.05}

# Column -> pandas dtype of a clean frame, in column order.
SCHEMA: dict[str, str] = {
    ENTITY_ID: "string",
    EVENT_TIME: "datetime64[ns]",
    **{c: ("int64" if c in INT_FEATURES else "float64") for c in NUMERIC_FEATURES},
    **dict.fromkeys(CATEGORICAL_FEATURES, "string"),
    LABEL: "int64",
}
COLUMNS: tuple[str, ...] = tuple(SCHEMA)

# Categorical drift moves probability mass toward this category.
DRIFT_TARGET_CATEGORY: dict[str, str] = {
    "contract_type": "month-to-month",
    "payment_method": "electronic_check",
    "region": "central",
    "plan_tier": "premium",
}

# Values an "unseen_category" incident writes.
UNSEEN_CATEGORY: dict[str, str] = {
    "contract_type": "lifetime",
    "payment_method": "bitcoin",
    "region": "mars",
    "plan_tier": "platinum",
}

_NS_PER_DAY = 86_400 * 10**9
_US_PER_DAY = 86_400 * 10**6


# --- specs ------------------------------------------------------------------------------------


def _as_date(value: date, what: str) -> date:
    # datetime is a subclass of date but never compares equal to one, which would silently
    # make a drift or an incident never fire.
    if isinstance(value, datetime):
        return value.date()
    if not isinstance(value, date):
        raise TypeError(f"{what} must be a datetime.date, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class DriftSpec:
    """Drift of some features from ``start`` on.

    Numeric features shift their mean by ``magnitude`` reference standard deviations (then are
    clipped to their range). Categorical features move ``min(1, 0.3*|magnitude|)`` of the
    probability mass toward ``DRIFT_TARGET_CATEGORY``. ``gradual`` ramps linearly: the start day
    gets 1/ramp_days of the effect, day ``start + ramp_days - 1`` and later the full effect.
    ``concept=True`` also changes the label model's coefficients, ramped the same way.
    """

    start: date
    kind: Literal["abrupt", "gradual"] = "abrupt"
    features: tuple[str, ...] = ("monthly_charges", "num_support_calls")
    magnitude: float = 1.0
    ramp_days: int = 14
    concept: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _as_date(self.start, "DriftSpec.start"))
        object.__setattr__(self, "features", tuple(self.features))
        if self.kind not in ("abrupt", "gradual"):
            raise ValueError(f"DriftSpec.kind must be 'abrupt' or 'gradual', got {self.kind!r}")
        unknown = [f for f in self.features if f not in NUMERIC_FEATURES and f not in CATEGORICAL_FEATURES]
        if unknown:
            raise ValueError(f"DriftSpec.features: not features of the data set: {unknown}")
        if not math.isfinite(self.magnitude):
            raise ValueError(f"DriftSpec.magnitude must be finite, got {self.magnitude}")
        if self.ramp_days < 1:
            raise ValueError(f"DriftSpec.ramp_days must be >= 1, got {self.ramp_days}")


IncidentKind = Literal[
    "nulls",
    "out_of_range",
    "unseen_category",
    "duplicate_keys",
    "missing_column",
    "wrong_type",
    "future_timestamps",
    "outside_interval",
    "empty",
]

INCIDENT_DEFAULT_COLUMN: dict[str, str | None] = {
    "nulls": "monthly_charges",
    "out_of_range": "tenure_months",
    "unseen_category": "region",
    "duplicate_keys": ENTITY_ID,
    "missing_column": "tenure_months",
    # Telco's TotalCharges is the classic numeric column that arrives as text.
    "wrong_type": "total_charges",
    "future_timestamps": EVENT_TIME,
    "outside_interval": EVENT_TIME,
    "empty": None,
}

_INCIDENT_ALLOWED_COLUMNS: dict[str, tuple[str, ...]] = {
    "nulls": COLUMNS,
    "out_of_range": (*NUMERIC_FEATURES, LABEL),
    "unseen_category": CATEGORICAL_FEATURES,
    "duplicate_keys": COLUMNS,
    "missing_column": COLUMNS,
    "wrong_type": (*NUMERIC_FEATURES, LABEL),
    "future_timestamps": (EVENT_TIME,),
    "outside_interval": (EVENT_TIME,),
    "empty": (),
}


@dataclass(frozen=True)
class IncidentSpec:
    """A one-day data-quality incident; ``column=None`` picks ``INCIDENT_DEFAULT_COLUMN[kind]``.

    ``fraction`` of the day's rows (at least one) is affected; it is ignored by
    ``missing_column`` and ``empty``.
    """

    day: date
    kind: IncidentKind
    column: str | None = None
    fraction: float = 0.3

    def __post_init__(self) -> None:
        object.__setattr__(self, "day", _as_date(self.day, "IncidentSpec.day"))
        if self.kind not in INCIDENT_DEFAULT_COLUMN:
            raise ValueError(
                f"IncidentSpec.kind must be one of {sorted(INCIDENT_DEFAULT_COLUMN)}, got {self.kind!r}"
            )
        if self.kind == "empty":
            if self.column is not None:
                raise ValueError("IncidentSpec: an 'empty' incident takes no column")
        else:
            column = self.resolved_column
            if column not in _INCIDENT_ALLOWED_COLUMNS[self.kind]:
                raise ValueError(
                    f"IncidentSpec: a {self.kind!r} incident cannot apply to column {column!r}; "
                    f"allowed: {list(_INCIDENT_ALLOWED_COLUMNS[self.kind])}"
                )
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"IncidentSpec.fraction must be in (0, 1], got {self.fraction}")

    @property
    def resolved_column(self) -> str | None:
        """The column the incident affects, with the per-kind default filled in."""
        return self.column if self.column is not None else INCIDENT_DEFAULT_COLUMN[self.kind]


def drift_factor(drift: DriftSpec | None, day: date) -> float:
    """The share of the drift's full effect in force on ``day`` (0.0 .. 1.0)."""
    if drift is None:
        return 0.0
    elapsed = (_as_date(day, "day") - drift.start).days
    if elapsed < 0:
        return 0.0
    if drift.kind == "abrupt":
        return 1.0
    return min(1.0, (elapsed + 1) / drift.ramp_days)


# --- clean data and drift ---------------------------------------------------------------------

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


def _clean_frame(rng: np.random.Generator, n: int, day: date, drift: DriftSpec | None) -> dict[str, Any]:
    """Columns of one day as numpy arrays, before missing values and incidents.

    The same (seed, day) gives the same underlying draws with or without drift, so a drifted
    feature and what derives from it change while every other column stays identical.
    """
    factor = drift_factor(drift, day)
    drifted = set(drift.features) if drift is not None and factor > 0 else set()
    strength = drift.magnitude * factor if drift is not None else 0.0
    cat_weight = min(1.0, 0.3 * abs(strength))

    def cat_weight_for(column: str) -> float:
        return cat_weight if column in drifted else 0.0

    ids = rng.choice(100_000_000, size=n, replace=False)
    offsets_us = rng.integers(0, _US_PER_DAY, size=n)

    # Unobserved traits: dissatisfaction drives support calls, low satisfaction and churn;
    # engagement drives usage and logins.
    unhappy = rng.standard_normal(n)
    engaged = rng.standard_normal(n)

    contract_p = _mix_toward(np.array([0.52, 0.25, 0.23]), "contract_type", cat_weight_for("contract_type"))
    contract = _draw_categorical(rng.random(n), contract_p, CATEGORIES["contract_type"])
    tier_p = _mix_toward(np.array([0.40, 0.38, 0.22]), "plan_tier", cat_weight_for("plan_tier"))
    tier = _draw_categorical(rng.random(n), tier_p, CATEGORIES["plan_tier"])
    # Rows: month-to-month, one-year, two-year. Month-to-month customers pay by e-check more often.
    payment_by_contract = np.array(
        [[0.25, 0.20, 0.42, 0.13], [0.33, 0.30, 0.20, 0.17], [0.37, 0.35, 0.12, 0.16]]
    )
    payment_p = _mix_toward(payment_by_contract[contract], "payment_method", cat_weight_for("payment_method"))
    payment = _draw_categorical(rng.random(n), payment_p, CATEGORIES["payment_method"])
    region_p = _mix_toward(np.array([0.22, 0.20, 0.19, 0.21, 0.18]), "region", cat_weight_for("region"))
    region = _draw_categorical(rng.random(n), region_p, CATEGORIES["region"])

    mtm = (contract == 0).astype(float)
    two_year = (contract == 2).astype(float)
    echeck = (payment == 2).astype(float)
    basic = (tier == 0).astype(float)

    # Longer contracts go with longer tenure.
    tenure_shape = np.array([1.1, 2.0, 3.0])[contract]
    tenure_mean = np.array([16.0, 38.0, 58.0])[contract]
    # From here the samplers' draw counts depend on their parameters (gamma and Poisson reject), so
    # each gets its own stream: drifting one feature must not reshuffle the draws of the others.
    (
        s_tenure,
        s_products,
        s_charges,
        s_calls,
        s_satisfaction,
        s_late,
        s_session,
        s_inactivity,
        s_usage,
        s_total,
        s_label,
        s_missing,
        s_dither,
    ) = rng.spawn(13)
    tenure = s_tenure.gamma(tenure_shape, tenure_mean / tenure_shape)
    products = 1.0 + s_products.poisson(0.4 + 0.5 * tier + 0.01 * np.clip(tenure, 0, 120))
    charges = 40.0 + 30.0 * tier + 7.0 * (np.clip(products, 1, 6) - 1.0) + s_charges.normal(0.0, 10.0, size=n)
    calls = s_calls.poisson(np.exp(0.2 + 0.45 * unhappy + 0.25 * basic - 0.004 * np.clip(tenure, 0, 120)))
    satisfaction = (
        6.6 - 1.1 * unhappy - 0.18 * calls + 0.3 * two_year + s_satisfaction.normal(0.0, 1.0, size=n)
    )
    late = s_late.poisson(np.exp(-1.0 + 0.7 * echeck + 0.3 * unhappy + 0.3 * mtm))
    session = s_session.gamma(2.0, 25.0 * np.exp(0.35 * engaged - 0.15 * unhappy))
    inactivity = s_inactivity.exponential(np.exp(2.0 - 0.6 * engaged + 0.2 * unhappy))
    usage = s_usage.gamma(1.5, (8.0 + 10.0 * tier) * np.exp(0.3 * engaged))
    charge_noise = s_total.normal(0.0, 0.08, size=n)
    label_noise = s_label.normal(0.0, _LABEL_NOISE_SD, size=n)
    label_u = s_label.random(n)
    missing_u = {c: s_missing.random(n) for c in MISSING_RATES}
    dither = s_dither.random(n)

    numeric = {
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
    std = reference_std() if drifted & set(NUMERIC_FEATURES) else {}
    cols: dict[str, Any] = {}
    for name, (values, decimals) in numeric.items():
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

    coef = dict(_COEF)
    if drift is not None and drift.concept and factor > 0:
        for key, delta in _CONCEPT_DELTA.items():
            coef[key] += delta * strength
    logit = (
        coef["intercept"]
        + coef["month_to_month"] * mtm
        + coef["two_year"] * two_year
        + coef["log_tenure"] * np.log1p(cols["tenure_months"])
        + coef["charges"] * (cols["monthly_charges"] - 70.0)
        + coef["support_calls"] * cols["num_support_calls"]
        + coef["satisfaction"] * (cols["satisfaction_score"] - 6.0)
        + coef["late_payments"] * cols["late_payments_12m"]
        + coef["inactivity"] * np.minimum(cols["days_since_last_login"], 90)
        + coef["electronic_check"] * echeck
        + coef["products"] * (cols["num_products"] - 1)
        + coef["session"] * (cols["avg_session_minutes"] - 60.0)
        + label_noise
    )
    cols[LABEL] = (label_u < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)

    for name, rate in MISSING_RATES.items():
        cols[name] = np.where(missing_u[name] < rate, np.nan, cols[name])

    cols["_ids"] = ids
    cols["_offsets_us"] = offsets_us
    cols["_codes"] = {
        "contract_type": contract,
        "payment_method": payment,
        "region": region,
        "plan_tier": tier,
    }
    return cols


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


# --- incidents --------------------------------------------------------------------------------


def _affected(rng: np.random.Generator, n: int, fraction: float) -> np.ndarray:
    if n == 0:
        return np.array([], dtype=np.int64)
    k = min(n, max(1, round(fraction * n)))
    return np.sort(rng.choice(n, size=k, replace=False))


def _apply_incident(frame: pd.DataFrame, incident: IncidentSpec, rng: np.random.Generator) -> pd.DataFrame:
    kind = incident.kind
    if kind == "empty":
        return frame.iloc[0:0].copy()
    column = incident.resolved_column
    if column is None:  # every kind but "empty" resolves a column (IncidentSpec validates it)
        raise ValueError(f"{kind} incident on {incident.day}: no column to apply it to")
    if column not in frame.columns:
        raise ValueError(f"{kind} incident on {incident.day}: column {column!r} is not in the frame")
    if kind == "missing_column":
        return frame.drop(columns=[column])

    n = len(frame)
    frame = frame.copy()
    series = frame[column]
    if kind == "duplicate_keys":
        if n < 2:
            return frame
        k = min(n - 1, max(1, round(incident.fraction * n)))
        perm = rng.permutation(n)
        targets, pool = perm[:k], perm[k:]
        sources = pool[rng.integers(0, len(pool), size=k)]
        values = series.to_numpy(copy=True)
        values[targets] = values[sources]
        frame[column] = pd.array(values, dtype=series.dtype)
        return frame

    idx = _affected(rng, n, incident.fraction)
    if kind == "nulls":
        if pd.api.types.is_integer_dtype(series.dtype):
            series = series.astype("float64")
        series = series.copy()
        series.iloc[idx] = None
    elif kind == "out_of_range":
        lo, hi = NUMERIC_RANGES[column]
        span = (hi if hi is not None else 20_000.0) - lo
        bad = lo - span * rng.uniform(0.5, 5.0, size=len(idx))
        if pd.api.types.is_integer_dtype(series.dtype):
            bad = np.floor(bad).astype(np.int64)
        series = series.copy()
        series.iloc[idx] = bad
    elif kind == "unseen_category":
        series = series.copy()
        series.iloc[idx] = UNSEEN_CATEGORY[column]
    elif kind == "wrong_type":
        # All text, as a badly parsed CSV would give: an object column of str and None that
        # pyarrow can still write to Parquet (a str/float mix could not be written).
        text = series.astype(str).astype(object)
        text[series.isna().to_numpy()] = None
        text.iloc[idx] = "n/a"
        series = text.astype(object)
    elif kind in ("future_timestamps", "outside_interval"):
        if kind == "future_timestamps":
            shift = rng.integers(1, 6, size=len(idx)) * 365
        else:
            # Subtracting whole days from a time inside the day always lands before the day.
            shift = -rng.integers(1, 6, size=len(idx))
        values = series.to_numpy(copy=True)
        values[idx] = values[idx] + shift.astype("timedelta64[D]")
        series = pd.Series(values, index=frame.index, name=column)
    else:  # pragma: no cover - guarded by IncidentSpec.__post_init__
        raise ValueError(f"unknown incident kind {kind!r}")
    frame[column] = series
    return frame


# --- public generation ------------------------------------------------------------------------


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
    day = _as_date(day, "day")
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
        frame = _apply_incident(frame, incident, inc_rng)
    return frame.reset_index(drop=True)


def _days(start: date, end: date) -> Iterator[date]:
    start, end = _as_date(start, "start"), _as_date(end, "end")
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
    frames = [generate_day(d, rows_per_day, seed, drift, incidents) for d in _days(start, end)]
    # An incident that drops a column makes that day's frame narrower; concat fills it with NaN.
    return pd.concat(frames, ignore_index=True) if frames else empty_frame()


# --- SQL source -------------------------------------------------------------------------------


def masked_url(url: str | sa.URL) -> str:
    """The URL with its password replaced by ***, safe for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def source_table(table: str, metadata: sa.MetaData | None = None) -> sa.Table:
    """The SQLAlchemy Table of the source events with typed columns and an event_time index."""
    metadata = metadata if metadata is not None else sa.MetaData()
    columns: list[sa.Column[Any]] = []
    for name, dtype in SCHEMA.items():
        if name == ENTITY_ID:
            type_: sa.types.TypeEngine[Any] = sa.String(16)
        elif dtype == "string":
            type_ = sa.String(32)
        elif dtype.startswith("datetime"):
            type_ = sa.DateTime()
        elif dtype == "int64":
            type_ = sa.Integer()
        else:
            type_ = sa.Float()
        columns.append(sa.Column(name, type_, nullable=True))
    return sa.Table(table, metadata, *columns, sa.Index(f"ix_{table}_{EVENT_TIME}", EVENT_TIME))


def _sql_values(frame: pd.DataFrame, name: str) -> list[Any]:
    """One column as DB-API-friendly Python values (None for missing)."""
    n = len(frame)
    if name not in frame.columns:
        return [None] * n
    series = frame[name]
    dtype = SCHEMA[name]
    if dtype.startswith("datetime"):
        values = series.to_numpy().astype("datetime64[us]").astype(object)  # NaT -> None
        return values.tolist()
    if dtype == "string":
        return series.astype(object).where(series.notna(), None).tolist()
    if series.dtype == object:
        # wrong_type: a typed SQL column cannot hold "n/a"; unparseable cells become NULL.
        series = pd.to_numeric(series, errors="coerce")
    if dtype == "int64":
        if pd.api.types.is_integer_dtype(series.dtype):
            return series.tolist()
        return [None if math.isnan(v) else int(v) for v in series.to_numpy(dtype=float)]
    return series.astype(object).where(series.notna(), None).tolist()


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    columns = [_sql_values(frame, name) for name in COLUMNS]
    return [dict(zip(COLUMNS, row, strict=True)) for row in zip(*columns, strict=True)]


def _with_available_driver(url: sa.URL) -> sa.URL:
    # A bare postgresql:// names one default driver (psycopg 3 in SQLAlchemy 2.1, psycopg2 before);
    # use the other one when only that is installed, e.g. next to Airflow's psycopg2.
    if url.drivername != "postgresql":
        return url
    default = url.get_dialect().driver
    installed = [d for d in ("psycopg", "psycopg2") if importlib.util.find_spec(d) is not None]
    if installed and default not in installed:
        return url.set(drivername=f"postgresql+{installed[0]}")
    return url


def _error_text(exc: BaseException, url: str) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    try:
        password = make_url(url).password
    except ArgumentError:
        password = None
    if password:
        first = first.replace(str(password), "***")
    return first


def seed_source(
    url: str,
    table: str,
    start: date,
    end: date,
    rows_per_day: int,
    seed: int,
    drift: DriftSpec | None = None,
    incidents: Sequence[IncidentSpec] = (),
    chunk_rows: int = 50_000,
) -> int:
    """Write days ``start`` .. ``end`` (inclusive) into ``table`` at ``url``; return rows written.

    Creates the table (typed columns, index on event_time) if missing. Idempotent: in one
    transaction it deletes the rows with event_time in [start, end + 1 day), plus exact
    (customer_id, event_time) matches of generated rows that incidents pushed outside that window,
    then inserts the new rows in chunks of ``chunk_rows`` via executemany.

    SQL tables have fixed, typed columns, so two incidents look different here than in a frame:
    ``missing_column`` writes NULL into that column, and ``wrong_type`` writes NULL into the cells
    that do not parse as numbers (the file-based landing path exercises the real type error).
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    days = list(_days(start, end))
    shown = masked_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise SourceError(f"invalid database URL {shown}: {_error_text(exc, url)}") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        # Seeding creates the database; a fresh checkout has no data/ folder yet.
        folder = Path(parsed.database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SourceError(f"cannot create the folder of {shown}: {exc.strerror or exc}") from exc

    try:
        engine = sa.create_engine(_with_available_driver(parsed))
    except ImportError as exc:
        raise SourceError(f"cannot create an engine for {shown}: database driver missing ({exc})") from exc
    except SQLAlchemyError as exc:
        raise SourceError(f"cannot create an engine for {shown}: {_error_text(exc, url)}") from exc

    events = source_table(table)
    window_start = datetime.combine(days[0], datetime.min.time())
    window_end = datetime.combine(days[-1] + timedelta(days=1), datetime.min.time())
    written = 0
    try:
        try:
            connection = engine.connect()
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot connect to {shown}: {_error_text(exc, url)}") from exc
        try:
            with connection.begin():
                events.metadata.create_all(connection, checkfirst=True)
                connection.execute(
                    sa.delete(events).where(
                        events.c[EVENT_TIME] >= window_start, events.c[EVENT_TIME] < window_end
                    )
                )
                stray_delete = sa.delete(events).where(
                    events.c[ENTITY_ID] == sa.bindparam("stray_id"),
                    events.c[EVENT_TIME] == sa.bindparam("stray_time"),
                )
                buffer: list[dict[str, Any]] = []
                for day in days:
                    records = _records(generate_day(day, rows_per_day, seed, drift, incidents))
                    strays = [
                        {"stray_id": r[ENTITY_ID], "stray_time": r[EVENT_TIME]}
                        for r in records
                        if r[EVENT_TIME] is not None
                        and r[ENTITY_ID] is not None
                        and not window_start <= r[EVENT_TIME] < window_end
                    ]
                    if strays:
                        connection.execute(stray_delete, strays)
                    buffer.extend(records)
                    while len(buffer) >= chunk_rows:
                        connection.execute(events.insert(), buffer[:chunk_rows])
                        written += chunk_rows
                        del buffer[:chunk_rows]
                if buffer:
                    connection.execute(events.insert(), buffer)
                    written += len(buffer)
        except SQLAlchemyError as exc:
            raise SourceError(f"seeding {table!r} at {shown} failed: {_error_text(exc, url)}") from exc
        finally:
            connection.close()
    finally:
        engine.dispose()
    return written
