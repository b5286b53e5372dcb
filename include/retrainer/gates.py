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
    frame: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    label: str,
    max_auc: float,
    task: str = "binary",
    max_r2: float = 0.95,
) -> list[str]:
    """Features that on their own predict the label almost perfectly, measured for the task.

    A real signal never does that; a copy or a transform of the label does (a "cancelled_at" filled only
    for churners, say). Binary: a feature's AUC (categories scored by their label rate) >= ``max_auc``.
    Multiclass: the macro one-vs-rest AUC of the feature's values (numbers in quantile bins, so a
    non-monotonic copy is caught too) >= ``max_auc``. Regression: the share of the label's variance the
    feature's values (categories, or numbers in quantile bins) explain >= ``max_r2``.
    """
    if task == "regression":
        return _regression_leakage(frame, numeric, categorical, label, max_r2)
    if task == "multiclass":
        return _multiclass_leakage(frame, numeric, categorical, label, max_auc)
    return _binary_leakage(frame, numeric, categorical, label, max_auc)


def _binary_leakage(frame: pd.DataFrame, numeric: list[str], categorical: list[str], label: str, max_auc: float) -> list[str]:
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


LEAKAGE_BINS = 20


def _groups(values: pd.Series, numeric: bool) -> pd.Series:
    """A feature's values as groups: categories as they are, numbers in up to LEAKAGE_BINS quantile bins."""
    import pandas as pd

    if not numeric:
        return values
    numbers = values.astype("float64")
    if numbers.nunique() <= LEAKAGE_BINS:
        return numbers
    return pd.Series(pd.qcut(numbers, LEAKAGE_BINS, labels=False, duplicates="drop"), index=values.index)


def _multiclass_leakage(frame: pd.DataFrame, numeric: list[str], categorical: list[str], label: str, max_auc: float) -> list[str]:
    import numpy as np
    import pandas as pd

    codes, classes = pd.factorize(frame[label])
    if len(classes) < 2:
        return []
    problems = []
    for column in [*numeric, *categorical]:
        groups = _groups(frame[column], column in numeric)
        separations = []
        for c in range(len(classes)):
            y = (codes == c).astype(int)
            scores = _label_rate(groups, y)
            scores = np.where(np.isnan(scores), y.mean(), scores)
            auc = binary_auc(y, scores) if not np.all(scores == scores[0]) else 0.5
            separations.append(max(auc, 1.0 - auc))
        macro = float(np.mean(separations))
        if macro >= max_auc:
            problems.append(
                f"column {column!r} alone separates the classes of {label!r} with macro one-vs-rest AUC "
                f"{macro:.4f} (>= {max_auc}): likely target leakage"
            )
    return problems


def _regression_leakage(frame: pd.DataFrame, numeric: list[str], categorical: list[str], label: str, max_r2: float) -> list[str]:
    import numpy as np

    y = frame[label].astype("float64").to_numpy()
    total = float(np.sum((y - y.mean()) ** 2)) if len(y) else 0.0
    if total <= 0:
        return []
    problems = []
    for column in [*numeric, *categorical]:
        groups = _groups(frame[column], column in numeric)
        means = _label_rate(groups, y)  # each row's group mean of the label
        means = np.where(np.isnan(means), y.mean(), means)
        explained = 1.0 - float(np.sum((y - means) ** 2)) / total
        if explained >= max_r2:
            problems.append(
                f"column {column!r} alone explains {explained:.4f} of the variance of {label!r} (>= {max_r2}): "
                "likely target leakage"
            )
    return problems


def _label_rate(values: pd.Series, y: np.ndarray) -> np.ndarray:
    """Each row's category scored by the label rate (the mean of ``y``) of its category (NaN where the
    category is missing).

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


def prediction_problems(
    predictions: np.ndarray, where: str, task: str = "binary", labels: np.ndarray | None = None
) -> list[str]:
    """A model whose holdout predictions are missing, out of range or constant is broken, whatever its metric.

    Binary: probabilities in [0, 1]; multiclass: rows of class probabilities in [0, 1] summing to 1;
    regression: finite numbers, within the labels' range widened by its width on each side (with
    ``labels``). Constant: the same output for every row.
    """
    import numpy as np

    p = np.asarray(predictions, dtype="float64")
    if p.size == 0:
        return [f"{where}: no predictions"]
    problems = []
    nan = int(np.isnan(p).sum())
    if nan:
        what = "predictions" if task == "regression" else "predicted probabilities"
        problems.append(f"{where}: {nan} of {p.size} {what} are NaN")
    if task == "regression":
        problems += _regression_range(p, where, labels)
    else:
        finite = p[~np.isnan(p)]
        outside = int(((finite < 0.0) | (finite > 1.0)).sum())
        if outside:
            problems.append(f"{where}: {outside} predicted probabilities outside [0, 1] (e.g. {finite[(finite < 0) | (finite > 1)][:3].tolist()})")
    if task == "multiclass" and p.ndim == 2 and not nan:
        off = int((np.abs(p.sum(axis=1) - 1.0) > 1e-6).sum())
        if off:
            problems.append(f"{where}: {off} rows of class probabilities do not sum to 1")
    rows = p.reshape(len(p), -1)
    spread = np.nanmax(rows, axis=0) - np.nanmin(rows, axis=0) if not np.isnan(rows).all() else np.zeros(1)
    if float(np.max(spread)) < 1e-9:
        problems.append(f"{where}: every prediction is {np.round(rows[0], 6).tolist()}: the model predicts a constant")
    return problems


def _regression_range(p: np.ndarray, where: str, labels: np.ndarray | None) -> list[str]:
    import numpy as np

    problems = []
    infinite = int(np.isinf(p).sum())
    if infinite:
        problems.append(f"{where}: {infinite} predictions are infinite")
    if labels is not None and len(labels):
        low, high = float(np.min(labels)), float(np.max(labels))
        width = max(high - low, 1e-9)
        finite = p[np.isfinite(p)]
        outside = finite[(finite < low - width) | (finite > high + width)]
        if outside.size:
            problems.append(
                f"{where}: {outside.size} predictions far outside the labels' range [{low:g}, {high:g}] "
                f"(e.g. {outside[:3].tolist()})"
            )
    return problems


def label_problems(frame: pd.DataFrame, label: str, task: str, where: str, no_zero: bool = False) -> list[str]:
    """The prepared set's label for its task: classification, more than one class and no class holding all
    but a sliver of the rows (MAX_MAJORITY_SHARE); regression, finite numbers that vary (and none zero when a
    percentage error is judged, ``no_zero``)."""
    import numpy as np
    import pandas as pd

    values = frame[label]
    if task != "regression":
        shares = values.value_counts(normalize=True)
        if len(shares) and float(shares.iloc[0]) > MAX_MAJORITY_SHARE:
            return [f"{where}: label {label!r} is {shares.index[0]!r} on {shares.iloc[0]:.2%} of rows "
                    f"(> {MAX_MAJORITY_SHARE:.1%}): too unbalanced to learn the other classes"]
        return []
    if not pd.api.types.is_numeric_dtype(values.dtype):
        return [f"{where}: label {label!r} is {values.dtype}, not numbers: a regression needs a numeric label"]
    numbers = values.to_numpy(dtype="float64", na_value=np.nan)
    problems = []
    if np.isinf(numbers).any():
        problems.append(f"{where}: label {label!r} has {int(np.isinf(numbers).sum())} infinite values")
    finite = numbers[np.isfinite(numbers)]
    if finite.size and float(finite.max() - finite.min()) == 0.0:
        problems.append(f"{where}: label {label!r} is constant ({finite[0]:g}): nothing to learn")
    if no_zero and (finite == 0).any():
        problems.append(f"{where}: label {label!r} is zero on {int((finite == 0).sum())} rows: mape is undefined there")
    return problems


MAX_MAJORITY_SHARE = 0.995
