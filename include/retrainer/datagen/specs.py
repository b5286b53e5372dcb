"""What to inject into generated days: drift (:class:`DriftSpec`) and incidents (:class:`IncidentSpec`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from retrainer.datagen.schema import (
    CATEGORICAL_FEATURES,
    COLUMNS,
    ENTITY_ID,
    EVENT_TIME,
    LABEL,
    NUMERIC_FEATURES,
)


def as_date(value: date, what: str) -> date:
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
        object.__setattr__(self, "start", as_date(self.start, "DriftSpec.start"))
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
        object.__setattr__(self, "day", as_date(self.day, "IncidentSpec.day"))
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
    elapsed = (as_date(day, "day") - drift.start).days
    if elapsed < 0:
        return 0.0
    if drift.kind == "abrupt":
        return 1.0
    return min(1.0, (elapsed + 1) / drift.ramp_days)
