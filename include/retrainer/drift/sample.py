"""Seeded samples stratified by day: the rows of the report's plots, and a capped reference."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from retrainer.drift.profile import column_values, to_series

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


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

    series = to_series(values)
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
