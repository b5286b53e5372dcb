"""Multiclass metrics on weighted rows: ``y`` holds class indices (0..k-1), ``p`` a matrix of class
probabilities (rows x k), ``w`` one row of weights per resample.

Each equals scikit-learn's on the rows a weighting stands for (a bootstrap resample's counts are its rows
repeated); tests check that. Macro averages run over the classes present in the weighted rows (in the labels
or the predictions for f1, in the labels for balanced accuracy and one-vs-rest AUC), as scikit-learn's do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from retrainer.metrics.binary import _calibration_error, _roc_auc, _weighted_mean

MAX_REPORTED_CLASSES = 50  # per-class metrics are reported for at most this many classes


def _one_hot(indices: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((len(indices), k))
    out[np.arange(len(indices)), indices] = 1.0
    return out


def predicted_classes(p: np.ndarray) -> np.ndarray:
    """The most probable class of each row (the first on ties, as ``predict`` of scikit-learn's classifiers)."""
    return np.argmax(p, axis=1)


def _counts(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted true positives, predicted and true counts per class: (resamples x k) each."""
    k = p.shape[1]
    truth, predicted = _one_hot(y, k), _one_hot(predicted_classes(p), k)
    return w @ (truth * predicted), w @ predicted, w @ truth


def _macro(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        total = present.sum(axis=1)
        return np.where(total > 0, (np.where(present, values, 0.0)).sum(axis=1) / total, np.nan)


def _macro_f1(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    tp, predicted, true = _counts(y, p, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(predicted + true > 0, 2 * tp / (predicted + true), 0.0)  # zero_division=0
    return _macro(f1, (predicted + true) > 0)


def _balanced_accuracy(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    tp, _, true = _counts(y, p, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(true > 0, tp / true, 0.0)
    return _macro(recall, true > 0)


def _log_loss(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    eps = np.finfo(np.float64).eps  # scikit-learn clips, then renormalises each row
    q = np.clip(p, eps, 1 - eps)
    q = q / q.sum(axis=1, keepdims=True)
    return _weighted_mean(-np.log(q[np.arange(len(y)), y]), w)


def _roc_auc_ovr(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Macro one-vs-rest AUC over the classes where it is defined (both sides present)."""
    per_class = np.stack([_roc_auc((y == c).astype(np.float64), p[:, c], w) for c in range(p.shape[1])], axis=1)
    defined = ~np.isnan(per_class)
    return _macro(np.nan_to_num(per_class), defined)


def weighted(name: str, y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The multiclass metric ``name`` for each row of ``w``."""
    if p.ndim != 2:
        raise ValueError(f"multiclass metrics take a matrix of class probabilities, got shape {p.shape}")
    if name == "accuracy":
        return _weighted_mean((predicted_classes(p) == y).astype(np.float64), w)
    if name == "macro_f1":
        return _macro_f1(y, p, w)
    if name == "balanced_accuracy":
        return _balanced_accuracy(y, p, w)
    if name == "log_loss":
        return _log_loss(y, p, w)
    if name == "roc_auc_ovr":
        return _roc_auc_ovr(y, p, w)
    if name == "calibration_error":
        # Of the top class: its probability against whether it was right, in 10 equal-width bins.
        correct = (predicted_classes(p) == y).astype(np.float64)
        return _calibration_error(correct, p.max(axis=1), w)
    raise ValueError(f"unknown multiclass metric {name!r}")


def metric_key(label: Any) -> str:
    """A class label as a part of an MLflow metric name (letters, digits, ``_-. /`` only)."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", str(label))[:100] or "_"


def per_class(y: np.ndarray, p: np.ndarray, classes: Sequence[Any] | None = None) -> dict[str, float]:
    """Precision, recall, f1 and support of each class (scikit-learn's), keyed ``<metric>.<class>``."""
    from sklearn.metrics import precision_recall_fscore_support

    k = p.shape[1]
    names = list(classes) if classes is not None else list(range(k))
    if not len(y) or k > MAX_REPORTED_CLASSES:
        return {}
    precision, recall, f1, support = precision_recall_fscore_support(
        y, predicted_classes(p), labels=list(range(k)), zero_division=0
    )
    out: dict[str, float] = {}
    for i, name in enumerate(names):
        key = metric_key(name)
        out |= {f"precision.{key}": float(precision[i]), f"recall.{key}": float(recall[i]),
                f"f1.{key}": float(f1[i]), f"support.{key}": float(support[i])}
    return out


def _sorted_labels(labels: set) -> list:
    try:
        return sorted(labels)
    except TypeError:  # mixed types: a stable order all the same
        return sorted(labels, key=lambda v: (type(v).__name__, str(v)))


def align_classes(
    labels: Sequence[Any], predictions: Sequence[tuple[Sequence[Any], np.ndarray]]
) -> tuple[list, np.ndarray, list[np.ndarray]]:
    """One class order for labels and several models' probability matrices.

    ``predictions`` holds each model's classes (its ``classes_``) and probabilities; two models trained on
    different windows may know different classes, and a holdout may hold a class neither saw. Returns the
    union of classes (sorted), the labels as indices into it, and each matrix with a column per class of the
    union (zero where the model does not know the class).
    """
    labels = [v.item() if hasattr(v, "item") else v for v in labels]
    known = {v.item() if hasattr(v, "item") else v for classes, _ in predictions for v in classes}
    union = _sorted_labels(known | set(labels))
    index = {label: i for i, label in enumerate(union)}
    y = np.array([index[v] for v in labels], dtype=np.int64)
    aligned = []
    for classes, p in predictions:
        matrix = np.zeros((len(p), len(union)))
        columns = [index[v.item() if hasattr(v, "item") else v] for v in classes]
        matrix[:, columns] = np.asarray(p, dtype=np.float64)
        aligned.append(matrix)
    return union, y, aligned
