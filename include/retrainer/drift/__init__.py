"""Column drift the way Evidently 0.7's ``DataDriftPreset`` decides it, fast on large data.

Evidently on the full data is slow (about a minute for 1M vs 1M rows x 20 columns here) because it
computes every column's statistic three times and builds plots from all rows; the statistic itself
is cheap. This module gives the same per-column answers much faster:

* **Same method and threshold.** The method is chosen by Evidently's own rule (above 1,000 reference
  rows: normed Wasserstein for numeric columns with more than 5 distinct values, Jensen-Shannon for
  the others and for categorical columns; threshold 0.1), or taken from a per-column override.
* **Same statistic on all rows, not an estimate.** Normed Wasserstein and Jensen-Shannon depend on
  the data only through each side's distinct values and their counts (and the reference's standard
  deviation), so they are computed exactly from those. The reference side is summarised once per
  champion (:class:`ReferenceProfile`, cached on disk); a check only sorts or counts the current
  columns, in parallel. The result equals scipy's (what Evidently calls) up to floating-point
  rounding, about 1e-13; a score within :data:`EXACT_MARGIN` of its threshold is recomputed with
  Evidently's own function on the full columns, so rounding can never flip a decision.
* **Anything else runs Evidently itself.** Other methods, and references of 1,000 rows or fewer
  (where Evidently switches to p-value tests), call Evidently's registered stat test on the full
  columns: the exact code path of its report, minus the plots.
* **The report is Evidently's.** :func:`drift_report` runs ``Report([DataDriftPreset])`` on a
  seeded, day-stratified sample for its plots, with each column's method replaced by a stat test
  that returns the full-data score and decision computed here, so the HTML and JSON show exactly
  the answers the decision uses.

:func:`evidently_drift` runs the plain Evidently report on whatever it is given: the baseline the
tests and ``bench/bench_drift.py`` compare against.

The package, by concern: ``columns`` (what is compared and the answers), ``profile`` (each side's
distinct values and counts; the cached reference), ``stats`` (the exact statistics and the per-column
decision), ``report`` (Evidently's reports), ``sample`` (the day-stratified samples for the plots).

pandas, numpy, pyarrow, scipy and evidently are imported inside functions: importing this package is
cheap.
"""

from __future__ import annotations

from retrainer.drift.columns import (
    CATEGORICAL,
    NUMERIC,
    ColumnDrift,
    ColumnSpec,
    DriftInputError,
    DriftTable,
    Kind,
    column_specs,
    summary_line,
)
from retrainer.drift.profile import (
    PROFILE_FORMAT,
    ColumnProfile,
    ReferenceProfile,
    categorical_profile,
    column_values,
    numeric_profile,
    profile_column,
)
from retrainer.drift.report import (
    FULL_DATA_SUFFIX,
    drift_report,
    evidently_drift,
    run_evidently,
    save_report,
    snapshot_table,
)
from retrainer.drift.sample import stratified_sample
from retrainer.drift.stats import (
    EXACT_MARGIN,
    FAST_METHODS,
    FEW_VALUES,
    JS_VALUE_COUNT_LIMIT,
    LARGE_REFERENCE_ROWS,
    column_drift,
    default_method,
    drift_table,
    evidently_column,
    jensenshannon_counts,
    union_distinct,
    wasserstein_normed,
)

__all__ = [
    "CATEGORICAL",
    "EXACT_MARGIN",
    "FAST_METHODS",
    "FEW_VALUES",
    "FULL_DATA_SUFFIX",
    "JS_VALUE_COUNT_LIMIT",
    "LARGE_REFERENCE_ROWS",
    "NUMERIC",
    "PROFILE_FORMAT",
    "ColumnDrift",
    "ColumnProfile",
    "ColumnSpec",
    "DriftInputError",
    "DriftTable",
    "Kind",
    "ReferenceProfile",
    "categorical_profile",
    "column_drift",
    "column_specs",
    "column_values",
    "default_method",
    "drift_report",
    "drift_table",
    "evidently_column",
    "evidently_drift",
    "jensenshannon_counts",
    "numeric_profile",
    "profile_column",
    "run_evidently",
    "save_report",
    "snapshot_table",
    "stratified_sample",
    "summary_line",
    "union_distinct",
    "wasserstein_normed",
]
