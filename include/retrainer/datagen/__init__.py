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

The package, by concern: ``schema`` (columns, dtypes, categories, ranges), ``specs`` (what to inject:
:class:`DriftSpec`, :class:`IncidentSpec`), ``generator`` (clean data with drift, one day or a range),
``incidents`` (applying an incident to a frame), ``source`` (the SQL table).
"""


from __future__ import annotations

from retrainer.datagen.generator import empty_frame, generate_day, generate_range, reference_std
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
    UNSEEN_CATEGORY,
)
from retrainer.datagen.source import seed_source, source_table
from retrainer.datagen.specs import (
    INCIDENT_DEFAULT_COLUMN,
    DriftSpec,
    IncidentKind,
    IncidentSpec,
    drift_factor,
)

__all__ = [
    "CATEGORICAL_FEATURES",
    "CATEGORIES",
    "COLUMNS",
    "DRIFT_TARGET_CATEGORY",
    "ENTITY_ID",
    "EVENT_TIME",
    "INCIDENT_DEFAULT_COLUMN",
    "INT_FEATURES",
    "LABEL",
    "MISSING_RATES",
    "NUMERIC_FEATURES",
    "NUMERIC_RANGES",
    "SCHEMA",
    "UNSEEN_CATEGORY",
    "DriftSpec",
    "IncidentKind",
    "IncidentSpec",
    "drift_factor",
    "empty_frame",
    "generate_day",
    "generate_range",
    "reference_std",
    "seed_source",
    "source_table",
]
