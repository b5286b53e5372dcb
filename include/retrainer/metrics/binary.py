"""Binary-classification metrics on weighted rows (one row of weights per resample); also the building
blocks (ROC AUC from counts, weighted means, calibration error) of the multiclass metrics."""

from __future__ import annotations

import numpy as np

CALIBRATION_BINS = 10


def _tie_starts(sorted_scores: np.ndarray) -> np.ndarray:
    """Index of the first row of each run of equal scores in a sorted vector."""
    return np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])


def roc_auc_from_counts(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """ROC AUC from the (weighted) count of positive and negative rows at each distinct score, the
    scores in ascending order along the last axis: Mann-Whitney with half credit for ties.

    The one AUC formula of the project: the weighted metric below counts per tie group of the sorted
    rows, the leakage gate (``retrainer.gates.binary_auc``) per distinct value of a feature. NaN where
    one class is absent.
    """
    negatives_below = np.cumsum(negatives, axis=-1) - negatives
    numerator = (positives * (negatives_below + 0.5 * negatives)).sum(axis=-1)
    denominator = positives.sum(axis=-1) * negatives.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def _roc_auc(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    # The area under the weighted ROC curve: counts per run of equal scores, one row per weighting.
    order = np.argsort(p, kind="mergesort")
    starts = _tie_starts(p[order])
    wo, yo = w[:, order], y[order]
    pos = np.add.reduceat(wo * yo, starts, axis=1)
    neg = np.add.reduceat(wo * (1.0 - yo), starts, axis=1)
    return roc_auc_from_counts(pos, neg)


def _average_precision(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    # Step-wise area under the precision-recall curve, thresholds at each distinct score (as sklearn).
    order = np.argsort(-p, kind="mergesort")
    starts = _tie_starts(p[order])
    wo, yo = w[:, order], y[order]
    tp = np.cumsum(np.add.reduceat(wo * yo, starts, axis=1), axis=1)
    fp = np.cumsum(np.add.reduceat(wo * (1.0 - yo), starts, axis=1), axis=1)
    total_pos = tp[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = tp / total_pos
    ap = (np.diff(recall, axis=1, prepend=0.0) * precision).sum(axis=1)
    return np.where(total_pos[:, 0] > 0, ap, np.nan)


def _weighted_mean(values: np.ndarray, w: np.ndarray) -> np.ndarray:
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (w @ values) / total, np.nan)


def _log_loss(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    eps = np.finfo(np.float64).eps  # sklearn clips the same way
    q = np.clip(p, eps, 1 - eps)
    return _weighted_mean(-(y * np.log(q) + (1.0 - y) * np.log(1.0 - q)), w)


def _f1(y: np.ndarray, predicted: np.ndarray, w: np.ndarray) -> np.ndarray:
    tp = w @ (predicted * y)
    fp = w @ (predicted * (1.0 - y))
    fn = w @ ((1.0 - predicted) * y)
    denominator = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * tp / denominator, 0.0)  # sklearn's zero_division=0


def _calibration_error(y: np.ndarray, p: np.ndarray, w: np.ndarray, bins: int = CALIBRATION_BINS) -> np.ndarray:
    # Expected calibration error over equal-width bins: sum over bins of |weighted sum of (y - p)| / total.
    bin_of = np.minimum((p * bins).astype(int), bins - 1)
    residual = np.zeros((len(p), bins))
    residual[np.arange(len(p)), bin_of] = y - p
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.abs(w @ residual).sum(axis=1) / total, np.nan)
