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

pandas, numpy, pyarrow, scipy and evidently are imported inside functions: importing this module is
cheap.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from retrainer.storage import write_json_atomic, write_with

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

Kind = Literal["num", "cat"]
NUMERIC: Kind = "num"
CATEGORICAL: Kind = "cat"

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
PROFILE_FORMAT = 1


class DriftInputError(ValueError):
    """A column cannot be compared (missing, empty after dropping nulls, or of the wrong type)."""


# --------------------------------------------------------------------------- column specs and results


@dataclass(frozen=True)
class ColumnSpec:
    """A column to check: its kind and optional per-column method and threshold overrides."""

    name: str
    kind: Kind
    method: str | None = None
    threshold: float | None = None


def column_specs(
    numeric: Sequence[str],
    categorical: Sequence[str],
    methods: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> list[ColumnSpec]:
    methods, thresholds = dict(methods or {}), dict(thresholds or {})
    return [
        ColumnSpec(name, kind, methods.get(name), thresholds.get(name))
        for kind, names in ((NUMERIC, numeric), (CATEGORICAL, categorical))
        for name in names
    ]


@dataclass(frozen=True)
class ColumnDrift:
    """One column's answer: the method and threshold in force, the score and the decision."""

    column: str
    kind: Kind
    method: str  # Evidently's stat test name, e.g. "wasserstein"
    method_label: str  # its display name, e.g. "Wasserstein distance (normed)"
    threshold: float
    score: float
    drifted: bool
    computed_by: str  # "exact" (this module) or "evidently" (Evidently's stat test on all rows)
    reference_rows: int
    current_rows: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> ColumnDrift:
        return cls(**payload)


@dataclass(frozen=True)
class DriftTable:
    """Every column's answer, plus the dataset-level share Evidently reports."""

    columns: list[ColumnDrift]
    drift_share: float

    @property
    def drifted(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.drifted]

    @property
    def drifted_share(self) -> float:
        return len(self.drifted) / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.columns) and self.drifted_share >= self.drift_share

    def by_column(self) -> dict[str, ColumnDrift]:
        return {c.column: c for c in self.columns}

    def to_dict(self) -> dict:
        return {
            "columns": [c.to_dict() for c in self.columns],
            "drift_share": self.drift_share,
            "drifted_share": self.drifted_share,
            "dataset_drift": self.dataset_drift,
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> DriftTable:
        return cls([ColumnDrift.from_dict(c) for c in payload["columns"]], payload["drift_share"])


# --------------------------------------------------------------------------- summaries of one column


@dataclass
class ColumnProfile:
    """What the drift statistics need from one side of one column.

    Numeric: the sorted distinct values with their counts, the row count and (for the reference)
    the standard deviation computed the way Evidently computes it. Categorical: the distinct values
    and counts. Nulls and infinities are dropped first, as Evidently does.
    """

    kind: Kind
    rows: int
    values: Any  # numpy array of sorted distinct numbers, or a list of category values
    counts: Any  # numpy int64 array aligned with values
    std: float | None = None

    @property
    def distinct(self) -> int:
        return len(self.values)


def _finite_numbers(values: Any) -> np.ndarray:
    import numpy as np

    array = np.asarray(values, dtype="float64")
    return array[np.isfinite(array)]


def _sorted_counts(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and their counts of an already sorted array (np.unique without its sort)."""
    import numpy as np

    if sorted_values.size == 0:
        return sorted_values, np.zeros(0, dtype="int64")
    starts = np.empty(sorted_values.size, dtype=bool)
    starts[0] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=starts[1:])
    first = np.flatnonzero(starts)
    counts = np.diff(np.append(first, sorted_values.size)).astype("int64")
    return sorted_values[first], counts


def _evidently_std(values: Any) -> float:
    """``np.std`` of the column as Evidently sees it (a pandas Series without nulls or infinities)."""
    import numpy as np
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(values)
    series = series.replace([-np.inf, np.inf], np.nan).dropna()
    return float(np.std(series))


def numeric_profile(values: Any, *, with_std: bool = False) -> ColumnProfile:
    """Profile of a numeric column (pandas Series, numpy array or pyarrow array)."""
    import numpy as np

    numbers = _finite_numbers(_to_numpy(values))
    distinct, counts = _sorted_counts(np.sort(numbers))
    std = _evidently_std(_to_series(values)) if with_std else None
    return ColumnProfile(NUMERIC, int(numbers.size), distinct, counts, std)


def categorical_profile(values: Any) -> ColumnProfile:
    """Profile of a categorical column: distinct non-null values and their counts."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray | pa.Array):
        counted = pc.value_counts(values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values)
        keys = counted.field("values")
        if pa.types.is_dictionary(keys.type):
            keys = keys.dictionary_decode()
        pairs = [(k, int(n)) for k, n in zip(keys.to_pylist(), counted.field("counts").to_pylist(), strict=True)
                 if k is not None and not (isinstance(k, float) and math.isnan(k))]
    else:
        series = _to_series(values)
        if series.dtype.kind == "f":
            series = series.replace([-np.inf, np.inf], np.nan)
        counted = series.value_counts(dropna=True, sort=False)
        pairs = [(_plain(k), int(n)) for k, n in counted.items()]
    pairs.sort(key=lambda kv: (type(kv[0]).__name__, kv[0]))
    keys = [k for k, _ in pairs]
    counts = np.array([n for _, n in pairs], dtype="int64")
    return ColumnProfile(CATEGORICAL, int(counts.sum()), keys, counts)


def _plain(value: Any) -> Any:
    """numpy scalars to Python ones, so keys compare and serialise the same from pandas and Arrow."""
    return value.item() if hasattr(value, "item") else value


def _to_numpy(values: Any) -> np.ndarray:
    import numpy as np
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray | pa.Array):
        import pyarrow.compute as pc

        as_float = pc.cast(values, pa.float64())
        return np.asarray(as_float.to_numpy(zero_copy_only=False), dtype="float64")
    if hasattr(values, "to_numpy"):
        try:
            return values.to_numpy(dtype="float64", na_value=np.nan)
        except (TypeError, ValueError):
            return np.asarray(values, dtype="float64")
    return np.asarray(values, dtype="float64")


def _to_series(values: Any) -> pd.Series:
    import pandas as pd
    import pyarrow as pa

    if isinstance(values, pd.Series):
        return values
    if isinstance(values, pa.ChunkedArray | pa.Array):
        if pa.types.is_dictionary(values.type):
            # Plain values, as a frame read without dictionaries would hold (no unused categories).
            values = values.cast(values.type.value_type)
        return values.to_pandas()
    return pd.Series(values)


def column_values(frame: Any, name: str) -> Any:
    """Column ``name`` of a pandas DataFrame or a pyarrow Table, or DriftInputError naming it."""
    import pyarrow as pa

    if isinstance(frame, pa.Table):
        if name not in frame.column_names:
            raise DriftInputError(f"column {name!r} is not in the data (columns: {frame.column_names})")
        return frame.column(name)
    if name not in frame.columns:
        raise DriftInputError(f"column {name!r} is not in the data (columns: {list(frame.columns)})")
    return frame[name]


def profile_column(values: Any, kind: Kind, *, reference: bool = False) -> ColumnProfile:
    if kind == NUMERIC:
        _require_numeric(values)
        return numeric_profile(values, with_std=reference)
    return categorical_profile(values)


def _require_numeric(values: Any) -> None:
    import pandas as pd
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray | pa.Array):
        ok = pa.types.is_integer(values.type) or pa.types.is_floating(values.type) or pa.types.is_null(values.type)
    else:
        ok = pd.api.types.is_numeric_dtype(_to_series(values).dtype)
    if not ok:
        name = getattr(values, "name", None) or getattr(values, "_name", None) or ""
        raise DriftInputError(f"numeric column {name!r} holds non-numeric values")


# --------------------------------------------------------------------------- the reference profile


@dataclass
class ReferenceProfile:
    """The reference side of every column, computed once (per champion) and reused by every check."""

    columns: dict[str, ColumnProfile]
    rows: int
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_frame(
        cls, frame: Any, specs: Sequence[ColumnSpec], meta: dict | None = None, workers: int = 1
    ) -> ReferenceProfile:
        def one(spec: ColumnSpec) -> ColumnProfile:
            return profile_column(column_values(frame, spec.name), spec.kind, reference=True)

        profiles = dict(zip([s.name for s in specs], _map(one, specs, workers), strict=True))
        return cls(profiles, int(frame.num_rows if hasattr(frame, "num_rows") else len(frame)), dict(meta or {}))

    def save(self, folder: Path) -> None:
        """``profile.npz`` (numbers) and ``profile.json`` (kinds, counts, category keys), atomically."""
        import io

        import numpy as np

        arrays: dict[str, Any] = {}
        columns: dict[str, Any] = {}
        for i, (name, prof) in enumerate(self.columns.items()):
            entry: dict[str, Any] = {"kind": prof.kind, "rows": prof.rows, "std": prof.std, "slot": i}
            if prof.kind == NUMERIC:
                arrays[f"v{i}"] = np.asarray(prof.values, dtype="float64")
            else:
                entry["keys"] = list(prof.values)
            arrays[f"c{i}"] = np.asarray(prof.counts, dtype="int64")
            columns[name] = entry
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        folder.mkdir(parents=True, exist_ok=True)
        write_with(folder / "profile.npz", lambda tmp: tmp.write_bytes(buffer.getvalue()))
        write_json_atomic(
            folder / "profile.json",
            {"format": PROFILE_FORMAT, "rows": self.rows, "columns": columns, "meta": self.meta},
        )

    @classmethod
    def load(cls, folder: Path) -> ReferenceProfile:
        import numpy as np

        described = json.loads((folder / "profile.json").read_text(encoding="utf-8"))
        if described.get("format") != PROFILE_FORMAT:
            raise ValueError(f"{folder / 'profile.json'}: profile format {described.get('format')} is not {PROFILE_FORMAT}")
        with np.load(folder / "profile.npz", allow_pickle=False) as arrays:
            columns = {}
            for name, entry in described["columns"].items():
                slot = entry["slot"]
                values = arrays[f"v{slot}"] if entry["kind"] == NUMERIC else entry["keys"]
                columns[name] = ColumnProfile(entry["kind"], entry["rows"], values, arrays[f"c{slot}"], entry["std"])
        return cls(columns, described["rows"], described.get("meta", {}))


# --------------------------------------------------------------------------- exact statistics


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


def _stat_test(method: str, kind: Kind):
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    return get_registered_stattest(method, ColumnType(kind))


def _clean_series(values: Any, kind: Kind) -> pd.Series:
    import numpy as np

    series = _to_series(values)
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


def _map(fn: Callable[[Any], Any], items: Sequence[Any], workers: int) -> list[Any]:
    """``map`` over threads: numpy's sorts and searches release the GIL, so columns overlap."""
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="drift") as pool:
        return list(pool.map(fn, items))


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

    return DriftTable(_map(one, list(specs), workers), drift_share)


# --------------------------------------------------------------------------- Evidently reports


def _data_definition(specs: Sequence[ColumnSpec]):
    from evidently import DataDefinition

    return DataDefinition(
        numerical_columns=[s.name for s in specs if s.kind == NUMERIC],
        categorical_columns=[s.name for s in specs if s.kind == CATEGORICAL],
    )


def _report_frame(frame: Any, specs: Sequence[ColumnSpec]) -> pd.DataFrame:
    import pyarrow as pa

    names = [s.name for s in specs]
    if isinstance(frame, pa.Table):
        return frame.select(names).to_pandas()
    return frame[names]


def _preset(specs: Sequence[ColumnSpec], drift_share: float, methods: Mapping[str, str] | None = None):
    from evidently.presets import DataDriftPreset

    per_method = {s.name: s.method for s in specs if s.method}
    per_method.update(methods or {})
    per_threshold = {s.name: float(s.threshold) for s in specs if s.threshold is not None}
    return DataDriftPreset(
        columns=[s.name for s in specs],
        drift_share=drift_share,
        per_column_method=per_method or None,
        per_column_threshold=per_threshold or None,
    )


def run_evidently(
    reference: Any,
    current: Any,
    specs: Sequence[ColumnSpec],
    drift_share: float,
    metadata: dict[str, Any] | None = None,
    methods: Mapping[str, str] | None = None,
):
    """``Report([DataDriftPreset])`` on the given frames, with tests; returns Evidently's snapshot."""
    from evidently import Dataset, Report

    definition = _data_definition(specs)
    report = Report(
        [_preset(specs, drift_share, methods)],
        include_tests=True,
        metadata={k: str(v) for k, v in (metadata or {}).items()},
    )
    return report.run(
        current_data=Dataset.from_pandas(_report_frame(current, specs), data_definition=definition),
        reference_data=Dataset.from_pandas(_report_frame(reference, specs), data_definition=definition),
    )


def snapshot_table(snapshot: Any, specs: Sequence[ColumnSpec], drift_share: float, reference_rows: int = -1,
                   current_rows: int = -1, computed_by: str = "evidently") -> DriftTable:
    """Per-column method, threshold, score and decision as an Evidently snapshot reports them."""
    described = snapshot.dict()
    kinds = {s.name: s.kind for s in specs}
    decisions = {}
    for test in described["tests"]:
        name = str(test.get("name", ""))
        prefix = "Value Drift for column "
        if name.startswith(prefix):
            status = getattr(test["status"], "value", test["status"])
            decisions[name[len(prefix):]] = str(status) == "FAIL"
    columns = []
    for metric in described["metrics"]:
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        name = config["column"]
        if name not in decisions:
            raise ValueError(f"the Evidently snapshot has no drift test for column {name!r}")
        columns.append(
            ColumnDrift(
                column=name,
                kind=kinds[name],
                method=str(config.get("method")),
                method_label=str(config.get("method")),
                threshold=float(config.get("threshold")),
                score=float(metric["value"]),
                drifted=decisions[name],
                computed_by=computed_by,
                reference_rows=reference_rows,
                current_rows=current_rows,
            )
        )
    return DriftTable(columns, drift_share)


def evidently_drift(reference: Any, current: Any, specs: Sequence[ColumnSpec], drift_share: float) -> DriftTable:
    """Plain Evidently on all the rows it is given: the baseline the fast path must agree with."""
    snapshot = run_evidently(reference, current, specs, drift_share)
    return snapshot_table(snapshot, specs, drift_share, len(reference), len(current))


# The full-data answers that drift_report's stat tests hand to Evidently, keyed by column.
_FULL_DATA_ANSWERS: ContextVar[dict[str, ColumnDrift] | None] = ContextVar("retrainer_full_data_answers", default=None)
FULL_DATA_SUFFIX = "__full_data"


def _answer(reference: pd.Series, current: pd.Series, feature_type: Any, threshold: float) -> tuple[float, bool]:
    answers = _FULL_DATA_ANSWERS.get()
    if answers is None or reference.name not in answers:
        raise RuntimeError(f"no full-data drift answer for column {reference.name!r}")
    answer = answers[reference.name]
    return answer.score, answer.drifted


def _full_data_test_name(method: str, kind: Kind) -> str:
    """Register (once) a stat test that reports ``method``'s full-data answer inside an Evidently report."""
    from evidently.legacy.calculations.stattests.registry import (
        StatTest,
        _registered_stat_tests,
        register_stattest,
    )
    from evidently.legacy.core import ColumnType

    name = f"{method}{FULL_DATA_SUFFIX}"
    if name not in _registered_stat_tests:
        original = _stat_test(method, kind)
        register_stattest(
            StatTest(
                name=name,
                display_name=f"{original.display_name}, on all rows",
                allowed_feature_types=[ColumnType.Numerical, ColumnType.Categorical],
                default_threshold=original.default_threshold,
            ),
            _answer,
        )
    return name


@contextmanager
def _answers(table: DriftTable) -> Iterator[None]:
    token = _FULL_DATA_ANSWERS.set(table.by_column())
    try:
        yield
    finally:
        _FULL_DATA_ANSWERS.reset(token)


def drift_report(
    reference_sample: Any,
    current_sample: Any,
    table: DriftTable,
    specs: Sequence[ColumnSpec],
    metadata: dict[str, Any] | None = None,
):
    """Evidently's DataDriftPreset report whose drift scores and decisions are ``table``'s.

    The samples feed the report's distribution plots; every score, threshold, per-column test and
    the drifted share come from ``table`` (computed on all rows), so the report and the decision
    never disagree.
    """
    answers = table.by_column()
    missing = [s.name for s in specs if s.name not in answers]
    if missing:
        raise ValueError(f"drift_report: no answers for columns {missing}")
    methods = {s.name: _full_data_test_name(answers[s.name].method, s.kind) for s in specs}
    thresholds = [ColumnSpec(s.name, s.kind, None, answers[s.name].threshold) for s in specs]
    with _answers(table):
        return run_evidently(reference_sample, current_sample, thresholds, table.drift_share, metadata, methods)


def save_report(snapshot: Any, html_path: Path, json_path: Path) -> None:
    """The snapshot as HTML and JSON, each written atomically."""
    write_with(html_path, lambda tmp: snapshot.save_html(str(tmp)))
    write_with(json_path, lambda tmp: tmp.write_text(json.dumps(snapshot.dict(), indent=1, default=str)))


# --------------------------------------------------------------------------- samples for the report


def stratified_sample(frame: Any, rows: int, seed: int, by: str | None = None) -> pd.DataFrame:
    """At most ``rows`` rows, drawn without replacement in proportion to each ``by`` group (seeded).

    A frame no larger than ``rows`` is returned whole. Works on pandas frames and pyarrow tables.
    """
    import numpy as np
    import pyarrow as pa

    total = frame.num_rows if isinstance(frame, pa.Table) else len(frame)
    if total <= rows:
        return frame.to_pandas() if isinstance(frame, pa.Table) else frame.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    if by is None:
        picked = np.sort(rng.choice(total, size=rows, replace=False))
    else:
        groups = _to_numpy_codes(column_values(frame, by))
        picked_parts = []
        order = np.argsort(groups, kind="stable")
        bounds = np.flatnonzero(np.diff(groups[order])) + 1
        members = np.split(order, bounds)
        quotas = _proportional_quotas([len(m) for m in members], rows)
        for chosen, quota in zip(members, quotas, strict=True):
            if quota:
                picked_parts.append(rng.choice(chosen, size=quota, replace=False))
        picked = np.sort(np.concatenate(picked_parts)) if picked_parts else np.zeros(0, dtype="int64")
    if isinstance(frame, pa.Table):
        return frame.take(pa.array(picked)).to_pandas()
    return frame.iloc[picked].reset_index(drop=True)


def _to_numpy_codes(values: Any) -> np.ndarray:
    import pandas as pd

    series = _to_series(values)
    codes, _ = pd.factorize(series, sort=True)
    return codes


def _proportional_quotas(sizes: Sequence[int], rows: int) -> list[int]:
    """Largest-remainder allocation of ``rows`` over groups of ``sizes`` (sums to ``rows``)."""
    total = sum(sizes)
    exact = [rows * s / total for s in sizes]
    quotas = [min(int(x), s) for x, s in zip(exact, sizes, strict=True)]
    remainder = rows - sum(quotas)
    for i in sorted(range(len(sizes)), key=lambda i: exact[i] - int(exact[i]), reverse=True):
        if remainder <= 0:
            break
        if quotas[i] < sizes[i]:
            quotas[i] += 1
            remainder -= 1
    return quotas


def summary_line(table: DriftTable, decision: str = "") -> str:
    """One log line: drifted share, the drifted columns with their scores, and the decision."""
    drifted = ", ".join(f"{c.column}={c.score:.3f}" for c in sorted(table.drifted, key=lambda c: -c.score)) or "none"
    line = f"drift: {len(table.drifted)}/{len(table.columns)} columns drifted (share {table.drifted_share:.2f}); drifted: {drifted}"
    return f"{line}; decision: {decision}" if decision else line
