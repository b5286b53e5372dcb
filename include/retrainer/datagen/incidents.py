"""One-day data-quality breakages applied to a generated frame (nulls, out-of-range values, ...)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from retrainer.datagen.schema import NUMERIC_RANGES, UNSEEN_CATEGORY
from retrainer.datagen.specs import IncidentSpec


def _affected(rng: np.random.Generator, n: int, fraction: float) -> np.ndarray:
    if n == 0:
        return np.array([], dtype=np.int64)
    k = min(n, max(1, round(fraction * n)))
    return np.sort(rng.choice(n, size=k, replace=False))


def apply_incident(frame: pd.DataFrame, incident: IncidentSpec, rng: np.random.Generator) -> pd.DataFrame:
    """``frame`` with ``incident`` applied (a new frame; ``rng`` picks the affected rows and bad values)."""
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
