"""retrainer.gates.binary_auc: the leakage gate's AUC equals scikit-learn's, ties and all."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from retrainer.gates import binary_auc


@pytest.mark.parametrize("distinct", [2, 7, 1000, None])
def test_binary_auc_equals_sklearn(distinct: int | None) -> None:
    rng = np.random.default_rng(distinct or 0)
    y = rng.integers(0, 2, 50_000)
    noise = rng.normal(size=y.size)
    scores = y * 0.3 + noise if distinct is None else np.round((y * 0.3 + noise) * distinct / 6) / distinct
    assert binary_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_binary_auc_of_a_perfect_and_an_inverted_feature() -> None:
    y = np.array([0, 0, 1, 1])
    assert binary_auc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert binary_auc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
