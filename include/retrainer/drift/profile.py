"""What the drift statistics need from each side of a column, and the reference side of every column.

A :class:`ReferenceProfile` is computed once per champion and cached on disk (``profile.npz`` and
``profile.json``); a check only profiles the current columns.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrainer.drift.columns import CATEGORICAL, NUMERIC, ColumnSpec, DriftInputError, Kind
from retrainer.storage import write_json_atomic, write_with

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


PROFILE_FORMAT = 1


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
    std = _evidently_std(to_series(values)) if with_std else None
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
        series = to_series(values)
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


def to_series(values: Any) -> pd.Series:
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
        ok = pd.api.types.is_numeric_dtype(to_series(values).dtype)
    if not ok:
        name = getattr(values, "name", None) or getattr(values, "_name", None) or ""
        raise DriftInputError(f"numeric column {name!r} holds non-numeric values")


def map_columns(fn: Callable[[Any], Any], items: Sequence[Any], workers: int) -> list[Any]:
    """``map`` over threads: numpy's sorts and searches release the GIL, so columns overlap."""
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="drift") as pool:
        return list(pool.map(fn, items))


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

        profiles = dict(zip([s.name for s in specs], map_columns(one, specs, workers), strict=True))
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
