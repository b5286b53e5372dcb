"""The checks beside the GX suites: finite numbers, target leakage in the prepared set, and sanity of a
model's predictions.

All are cheap (one pass over columns or predictions) and return human-readable problems; an empty
list means the check passed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


FINITE_CHECK = "retrainer_numeric_values_finite"
MAX_EXAMPLES = 5


def non_finite_values(frame: pd.DataFrame, columns: list[str] | None = None) -> dict[str, dict]:
    """Columns holding ``inf`` or ``-inf`` (NaN is a missing value, which the suites judge), with the
    count and up to MAX_EXAMPLES distinct values: {column: {"rows": n, "examples": [...]}}.

    A structural rule of every gate, whatever ranges a suite states: no model can learn from an
    infinite number, and a suite whose range has no upper bound (``min_value`` only) lets it through.
    ``columns``: the columns to check (default: every numeric column of ``frame``).
    """
    import numpy as np
    import pandas as pd

    found: dict[str, dict] = {}
    names = columns if columns is not None else list(frame.columns)
    for name in names:
        if name not in frame.columns or not pd.api.types.is_float_dtype(frame[name].dtype):
            continue  # integer, text and missing columns cannot hold an infinite value
        values = frame[name].to_numpy(dtype="float64", na_value=np.nan)
        bad = np.isinf(values)
        if bad.any():
            found[name] = {"rows": int(bad.sum()), "examples": sorted({str(v) for v in values[bad]})[:MAX_EXAMPLES]}
    return found


def non_finite_problems(frame: pd.DataFrame, columns: list[str], where: str) -> list[str]:
    """:func:`non_finite_values` as messages naming ``where``, the column, the count and examples."""
    return [f"{where}: column {name!r} has {v['rows']} non-finite values, e.g. {v['examples']}"
            for name, v in non_finite_values(frame, columns).items()]


def leakage_problems(
    frame: pd.DataFrame, numeric: list[str], categorical: list[str], label: str, max_auc: float
) -> list[str]:
    """Features that on their own separate the label almost perfectly (AUC >= ``max_auc``).

    A real churn signal never does that; a copy or a transform of the label does (a "cancelled_at"
    filled only for churners, say). Categories are scored by their label rate in the same frame.
    """
    import numpy as np

    y = frame[label].astype(int).to_numpy()
    if len(np.unique(y)) < 2:
        return []
    problems = []
    for column in [*numeric, *categorical]:
        scores = _label_rate(frame[column], y) if column in categorical else frame[column].astype("float64").to_numpy()
        missing = np.isnan(scores)
        if missing.any():
            scores = np.where(missing, np.median(scores[~missing]) if not missing.all() else 0.0, scores)
        if np.all(scores == scores[0]):
            continue
        auc = binary_auc(y, scores)
        separation = max(auc, 1.0 - auc)
        if separation >= max_auc:
            problems.append(
                f"column {column!r} alone separates {label!r} with AUC {separation:.4f} (>= {max_auc}): "
                "likely target leakage"
            )
    return problems


def _label_rate(values: pd.Series, y: np.ndarray) -> np.ndarray:
    """Each row's category scored by the label rate of its category (NaN where the category is missing).

    Categories are factorized (Arrow-backed strings never become Python objects) and counted with
    ``bincount``: one linear pass however many rows.
    """
    import numpy as np
    import pandas as pd

    codes, _ = pd.factorize(values, use_na_sentinel=True)
    known = codes >= 0
    rates = np.bincount(codes[known], weights=y[known]) / np.maximum(np.bincount(codes[known]), 1)
    scores = np.full(len(codes), np.nan)
    scores[known] = rates[codes[known]]
    return scores


def binary_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of ``scores`` for 0/1 labels ``y``, ties counted half: ``sklearn.metrics.roc_auc_score``'s
    value, from the label counts per distinct score (a hash group-by and a sort of the distinct values)
    instead of sorting every row; a feature has few distinct values, so this stays linear in rows. The
    formula is ``retrainer.metrics.roc_auc_from_counts``, the one the gate's metrics use."""
    import pandas as pd

    from retrainer.metrics import roc_auc_from_counts

    counts = pd.DataFrame({"score": scores, "y": y}).groupby("score", sort=True)["y"].agg(["sum", "count"])
    positives = counts["sum"].to_numpy(dtype="float64")
    negatives = counts["count"].to_numpy(dtype="float64") - positives
    return float(roc_auc_from_counts(positives, negatives))


def prediction_problems(probabilities: np.ndarray, where: str) -> list[str]:
    """A model whose holdout probabilities are missing, out of [0, 1] or constant is broken, whatever its metric."""
    import numpy as np

    p = np.asarray(probabilities, dtype="float64")
    problems = []
    if p.size == 0:
        return [f"{where}: no predictions"]
    nan = int(np.isnan(p).sum())
    if nan:
        problems.append(f"{where}: {nan} of {p.size} predicted probabilities are NaN")
    finite = p[~np.isnan(p)]
    outside = int(((finite < 0.0) | (finite > 1.0)).sum())
    if outside:
        problems.append(f"{where}: {outside} predicted probabilities outside [0, 1] (e.g. {finite[(finite < 0) | (finite > 1)][:3].tolist()})")
    if finite.size and float(finite.max() - finite.min()) < 1e-9:
        problems.append(f"{where}: every prediction is {finite[0]:.6f}: the model predicts a constant")
    return problems
