"""The generated data set's schema: columns, dtypes, categories, clean value ranges, missing rates."""

from __future__ import annotations

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
