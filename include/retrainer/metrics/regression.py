"""Regression metrics on weighted rows: ``y`` the labels, ``p`` the predictions, ``w`` one row of weights
per resample. Each equals scikit-learn's with ``sample_weight`` (tests check that)."""

from __future__ import annotations

import numpy as np

from retrainer.metrics.binary import _weighted_mean


def _r2(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """1 - residual / total sum of squares; for constant labels 1.0 if exact else 0.0 (scikit-learn's
    ``force_finite``)."""
    total = w.sum(axis=1)
    centre = float(np.mean(y)) if len(y) else 0.0  # centred sums: no cancellation on large labels
    d = y - centre
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_d = np.where(total > 0, (w @ d) / total, 0.0)
        ss_tot = w @ (d**2) - total * mean_d**2
        ss_res = w @ ((y - p) ** 2)
        constant = ss_tot <= 1e-12 * np.maximum(w @ (d**2), 1.0)
        value = np.where(constant, np.where(ss_res == 0, 1.0, 0.0), 1.0 - ss_res / np.where(constant, 1.0, ss_tot))
    return np.where(total > 0, value, np.nan)


def weighted(name: str, y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The regression metric ``name`` for each row of ``w``."""
    if name == "rmse":
        return np.sqrt(_weighted_mean((y - p) ** 2, w))
    if name == "mae":
        return _weighted_mean(np.abs(y - p), w)
    if name == "r2":
        return _r2(y, p, w)
    if name == "mape":
        if np.any(y == 0):
            return np.full(w.shape[0], np.nan)  # undefined where a label is zero (the prepared gate says so)
        return _weighted_mean(np.abs(y - p) / np.abs(y), w)
    raise ValueError(f"unknown regression metric {name!r}")
