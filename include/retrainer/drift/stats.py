"""Each column's drift score and decision: exact statistics where the method allows, else Evidently's.

See the package docstring (:mod:`retrainer.drift`) for why the exact statistics equal Evidently's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from retrainer.drift.columns import (
    CATEGORICAL,
    NUMERIC,
    ColumnDrift,
    ColumnSpec,
    DriftInputError,
    DriftTable,
    Kind,
)
from retrainer.drift.profile import (
    ColumnProfile,
    ReferenceProfile,
    column_values,
    map_columns,
    profile_column,
    to_series,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


# Evidently switches from p-value tests to distances above this many reference rows.
LARGE_REFERENCE_ROWS = 1000
# Numeric columns with at most this many distinct values (reference and current together) are
# compared as categories (Jensen-Shannon) rather than with Wasserstein.
FEW_VALUES = 5
# Jensen-Shannon on a numeric column bins it into a histogram when the reference has more
# distinct values than this; the histogram case is left to Evidently's own function.
JS_VALUE_COUNT_LIMIT = 20
# Our exact statistics differ from scipy's only by summation order (~1e-13 at 1M rows). A score
# this close to its threshold is recomputed with Evidently's function so its decision is Evidently's.
EXACT_MARGIN = 1e-9
# The methods computed exactly here, with Evidently's display name and default threshold (a unit test
# checks them against the installed Evidently, so the fast path needs no Evidently import).
FAST_METHODS: dict[str, tuple[str, float]] = {
    "wasserstein": ("Wasserstein distance (normed)", 0.1),
    "jensenshannon": ("Jensen-Shannon distance", 0.1),
}


def wasserstein_normed(reference: ColumnProfile, current: ColumnProfile) -> float:
    """Evidently's normed Wasserstein distance, from distinct values and counts.

    scipy's ``wasserstein_distance`` integrates |F_ref - F_cur| over the sorted union of all values;
    repeated values add zero-width steps, so the integral over the distinct values is the same sum.
    Evidently divides by ``max(std(reference), 0.001)``.
    """
    import numpy as np

    grid = np.union1d(reference.values, current.values)
    if grid.size < 2:
        return 0.0
    points = grid[:-1]

    def cdf(prof: ColumnProfile) -> np.ndarray:
        cumulative = np.concatenate(([0], np.cumsum(prof.counts)))
        return cumulative[np.searchsorted(prof.values, points, side="right")] / prof.rows

    distance = float(np.sum(np.abs(cdf(reference) - cdf(current)) * np.diff(grid)))
    return distance / max(float(reference.std), 0.001)


def jensenshannon_counts(reference: ColumnProfile, current: ColumnProfile) -> float:
    """Evidently's Jensen-Shannon distance on value frequencies (its categorical branch)."""
    import numpy as np
    from scipy.spatial import distance

    if reference.kind == NUMERIC:
        keys = np.union1d(reference.values, current.values)
        ref_idx = np.searchsorted(keys, reference.values)
        cur_idx = np.searchsorted(keys, current.values)
        ref_p = np.zeros(keys.size)
        cur_p = np.zeros(keys.size)
    else:
        keys = sorted(set(reference.values) | set(current.values), key=lambda k: (type(k).__name__, k))
        position = {k: i for i, k in enumerate(keys)}
        ref_idx = np.array([position[k] for k in reference.values], dtype="int64")
        cur_idx = np.array([position[k] for k in current.values], dtype="int64")
        ref_p = np.zeros(len(keys))
        cur_p = np.zeros(len(keys))
    ref_p[ref_idx] = reference.counts / reference.rows
    cur_p[cur_idx] = current.counts / current.rows
    return float(distance.jensenshannon(ref_p, cur_p))


def union_distinct(reference: ColumnProfile, current: ColumnProfile) -> int:
    import numpy as np

    if reference.kind == NUMERIC:
        return int(np.union1d(reference.values, current.values).size)
    return len(set(reference.values) | set(current.values))


def default_method(reference: ColumnProfile, current: ColumnProfile) -> str | None:
    """Evidently's automatic choice above 1,000 reference rows; None below (Evidently decides)."""
    if reference.rows <= LARGE_REFERENCE_ROWS:
        return None
    if reference.kind == CATEGORICAL:
        return "jensenshannon"
    return "jensenshannon" if union_distinct(reference, current) <= FEW_VALUES else "wasserstein"


def _fast_score(method: str, reference: ColumnProfile, current: ColumnProfile) -> float | None:
    if method == "wasserstein" and reference.kind == NUMERIC:
        return wasserstein_normed(reference, current)
    if method == "jensenshannon" and (reference.kind == CATEGORICAL or reference.distinct <= JS_VALUE_COUNT_LIMIT):
        return jensenshannon_counts(reference, current)
    return None


def _clean_series(values: Any, kind: Kind) -> pd.Series:
    import numpy as np

    series = to_series(values)
    if kind == NUMERIC:
        series = series.replace([-np.inf, np.inf], np.nan)
    return series.dropna()


def evidently_column(spec: ColumnSpec, reference: Any, current: Any) -> ColumnDrift:
    """One column with Evidently's own method choice and stat test on all rows (no report, no plots)."""
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    ref, cur = _clean_series(reference, spec.kind), _clean_series(current, spec.kind)
    _require_rows(spec.name, len(ref), len(cur))
    column_type = ColumnType(spec.kind)
    test = get_stattest(ref, cur, column_type, spec.method)
    result = test(ref, cur, column_type, spec.threshold)
    return ColumnDrift(
        column=spec.name,
        kind=spec.kind,
        method=test.name,
        method_label=test.display_name,
        threshold=float(result.actual_threshold),
        score=float(result.drift_score),
        drifted=bool(result.drifted),
        computed_by="evidently",
        reference_rows=len(ref),
        current_rows=len(cur),
    )


def _require_rows(name: str, reference_rows: int, current_rows: int) -> None:
    if reference_rows == 0:
        raise DriftInputError(f"column {name!r} has no non-null values in the reference data")
    if current_rows == 0:
        raise DriftInputError(f"column {name!r} has no non-null values in the current data")


def column_drift(
    spec: ColumnSpec,
    reference: ColumnProfile,
    current: ColumnProfile,
    reference_values: Callable[[], Any] | None = None,
    current_values: Callable[[], Any] | None = None,
) -> ColumnDrift:
    """One column's answer: exact statistics when the method allows, else Evidently on all rows.

    ``reference_values`` / ``current_values`` give the full columns for Evidently's own function;
    they are called only when it is needed.
    """
    _require_rows(spec.name, reference.rows, current.rows)
    method = spec.method or default_method(reference, current)
    score = _fast_score(method, reference, current) if method else None
    if score is not None:
        label, default_threshold = FAST_METHODS[method]
        threshold = default_threshold if spec.threshold is None else float(spec.threshold)
        if abs(score - threshold) > EXACT_MARGIN * max(1.0, abs(threshold)):
            return ColumnDrift(
                column=spec.name,
                kind=spec.kind,
                method=method,
                method_label=label,
                threshold=threshold,
                score=score,
                drifted=score >= threshold,  # both distances: drift when at or above the threshold
                computed_by="exact",
                reference_rows=reference.rows,
                current_rows=current.rows,
            )
    if reference_values is None or current_values is None:
        raise DriftInputError(
            f"column {spec.name!r}: method {method or 'chosen by Evidently'!r} needs the full columns, "
            "which were not provided"
        )
    return evidently_column(spec, reference_values(), current_values())


def drift_table(
    reference: ReferenceProfile,
    current: Any,
    specs: Sequence[ColumnSpec],
    drift_share: float,
    reference_frame: Callable[[], Any] | None = None,
    workers: int = 1,
) -> DriftTable:
    """Every column of ``current`` (pandas DataFrame or pyarrow Table) against the reference profile.

    ``reference_frame`` loads the full reference data; it is called only if some column needs
    Evidently's own function (a method without an exact implementation, or a score at the threshold).
    """
    loaded: dict[str, Any] = {}

    def full_reference() -> Any:
        if "frame" not in loaded:
            if reference_frame is None:
                raise DriftInputError("the full reference data is needed but no loader was given")
            loaded["frame"] = reference_frame()
        return loaded["frame"]

    def one(spec: ColumnSpec) -> ColumnDrift:
        if spec.name not in reference.columns:
            raise DriftInputError(f"column {spec.name!r} is not in the reference profile")
        values = column_values(current, spec.name)
        return column_drift(
            spec,
            reference.columns[spec.name],
            profile_column(values, spec.kind),
            reference_values=lambda: column_values(full_reference(), spec.name),
            current_values=lambda: values,
        )

    return DriftTable(map_columns(one, list(specs), workers), drift_share)
