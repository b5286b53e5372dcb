"""Metrics from labels and predicted probabilities, for the performance check.

Kept in its own module so that :mod:`retrainer.monitor.performance` imports it by one line: the
project's one metric implementation (``retrainer.metrics``) is to replace it.
"""

from __future__ import annotations


def metrics_from_proba(y, proba) -> dict[str, float]:
    """The same metrics as ``retrainer.train.score``, from labels and predicted probabilities."""
    import numpy as np
    from sklearn import metrics

    y = np.asarray(y, dtype=int)
    proba = np.asarray(proba, dtype=float)
    predicted = (proba >= 0.5).astype(int)
    single_class = len(np.unique(y)) < 2
    return {
        "roc_auc": float("nan") if single_class else float(metrics.roc_auc_score(y, proba)),
        "average_precision": float("nan") if single_class else float(metrics.average_precision_score(y, proba)),
        "accuracy": float(metrics.accuracy_score(y, predicted)),
        "f1": float(metrics.f1_score(y, predicted, zero_division=0)),
        "log_loss": float(metrics.log_loss(y, np.clip(proba, 1e-15, 1 - 1e-15), labels=[0, 1])),
    }
