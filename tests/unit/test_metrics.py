"""The vectorised weighted metrics equal scikit-learn's (with sample_weight), and the bootstrap is seeded."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from retrainer.metrics import METRICS, bootstrap_counts, paired_bootstrap, weighted_metric


def _sklearn(name: str, y: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
    if name == "roc_auc":
        return sk.roc_auc_score(y, p, sample_weight=w)
    if name == "average_precision":
        return sk.average_precision_score(y, p, sample_weight=w)
    if name == "log_loss":
        return sk.log_loss(y, p, sample_weight=w, labels=[0, 1])
    if name == "brier":
        return sk.brier_score_loss(y, p, sample_weight=w)
    if name == "accuracy":
        return sk.accuracy_score(y, p >= 0.5, sample_weight=w)
    if name == "f1":
        return sk.f1_score(y, p >= 0.5, sample_weight=w, zero_division=0)
    # Expected calibration error, written out the slow way: per bin |sum w(y - p)| / total weight.
    bins = np.minimum((p * 10).astype(int), 9)
    return sum(abs(np.sum(w[bins == b] * (y[bins == b] - p[bins == b]))) for b in range(10)) / w.sum()


@pytest.mark.parametrize("seed", range(12))
def test_weighted_metrics_equal_sklearn_with_sample_weight(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 800))
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    p = np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)
    if seed % 2:
        p = np.round(p, 1)  # many ties
    weights = rng.multinomial(n, np.full(n, 1 / n), size=4).astype(float)
    weights[0] = 1.0  # the plain, unweighted metric
    for name in METRICS:
        ours = weighted_metric(name, y, p, weights)
        for row, w in enumerate(weights):
            if name in ("roc_auc", "average_precision") and len(set(y[w > 0])) < 2:
                assert np.isnan(ours[row])
                continue
            assert ours[row] == pytest.approx(_sklearn(name, y, p, w), abs=1e-9), (name, row)


def test_bootstrap_is_seeded(monkeypatch):
    first = np.concatenate(list(bootstrap_counts(300, 250, seed=7)))
    again = np.concatenate(list(bootstrap_counts(300, 250, seed=7)))
    other = np.concatenate(list(bootstrap_counts(300, 250, seed=8)))
    assert first.shape == (250, 300) and (first.sum(axis=1) == 300).all()
    assert (first == again).all() and not (first == other).all()


def test_chunked_resamples_give_the_same_interval(monkeypatch):
    import retrainer.metrics

    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 400)
    new, old = rng.random(400), rng.random(400)
    whole, _ = paired_bootstrap("roc_auc", y, new, old, resamples=300, confidence=0.95, seed=4)
    monkeypatch.setattr(retrainer.metrics, "_CHUNK_CELLS", 400 * 7)  # 7 resamples per chunk
    chunked, _ = paired_bootstrap("roc_auc", y, new, old, resamples=300, confidence=0.95, seed=4)
    assert chunked == whole


def test_paired_bootstrap_of_identical_scores_is_exactly_zero():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    p = rng.random(500)
    overall, by_slice = paired_bootstrap(
        "roc_auc", y, p, p, resamples=200, confidence=0.95, seed=1, subsets={"half": np.arange(500) < 250}
    )
    assert (overall.improvement, overall.ci_low, overall.ci_high) == (0.0, 0.0, 0.0)
    assert by_slice["half"].rows == 250 and by_slice["half"].ci_low == 0.0


def test_lower_is_better_metrics_are_turned_into_improvements():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 2000)
    good = np.clip(0.6 * y + 0.4 * rng.random(2000), 0.01, 0.99)
    bad = np.clip(0.2 * y + 0.8 * rng.random(2000), 0.01, 0.99)
    overall, _ = paired_bootstrap("log_loss", y, good, bad, resamples=200, confidence=0.9, seed=2)
    assert overall.challenger < overall.champion  # a smaller loss...
    assert overall.improvement > 0 and overall.ci_low > 0  # ...is an improvement


def test_all_metrics_are_sklearns_on_plain_rows_even_for_certain_predictions():
    """What the monitor's performance check reads (``metric_value``): sklearn's figures, log loss clipped
    as sklearn clips it (the float's eps), for probabilities of exactly 0 and 1 too."""
    from retrainer.metrics import all_metrics, metric_value

    rng = np.random.default_rng(9)
    y = rng.integers(0, 2, 3000)
    p = 1.0 / (1.0 + np.exp(-(rng.normal(size=3000) * 12 + 6 * (2 * y - 1))))  # many within 1e-15 of 0 or 1
    p[:4] = [0.0, 1.0, 1e-17, 1 - 1e-16]
    ours = all_metrics(y, p)
    for name in METRICS:
        assert ours[name] == pytest.approx(_sklearn(name, y, p, np.ones(len(y))), abs=1e-9), name
        assert metric_value(name, y.astype(float), p) == ours[name]
    assert ours["rows"] == 3000 and ours["positive_rate"] == pytest.approx(y.mean())


# --------------------------------------------------------------------------------------------------
# Multiclass and regression: each metric equals scikit-learn's on the rows a weighting stands for
# --------------------------------------------------------------------------------------------------

MULTICLASS = ("macro_f1", "accuracy", "balanced_accuracy", "log_loss", "roc_auc_ovr", "calibration_error")
REGRESSION = ("rmse", "mae", "r2", "mape")


def _top_class_ece(y: np.ndarray, p: np.ndarray) -> float:
    """Top-class expected calibration error written out the slow way, bin by bin."""
    confidence, correct = p.max(axis=1), (p.argmax(axis=1) == y).astype(float)
    bins = np.minimum((confidence * 10).astype(int), 9)
    return sum(abs(np.sum(correct[bins == b] - confidence[bins == b])) for b in range(10)) / len(y)


def _sklearn_multiclass(name: str, y: np.ndarray, p: np.ndarray) -> float:
    labels = list(range(p.shape[1]))
    predicted = p.argmax(axis=1)
    if name == "macro_f1":
        return sk.f1_score(y, predicted, average="macro", zero_division=0)
    if name == "accuracy":
        return sk.accuracy_score(y, predicted)
    if name == "balanced_accuracy":
        return sk.balanced_accuracy_score(y, predicted)
    if name == "log_loss":
        return sk.log_loss(y, p, labels=labels)
    if name == "roc_auc_ovr":
        return sk.roc_auc_score(y, p, multi_class="ovr", average="macro", labels=labels)
    return _top_class_ece(y, p)


def _multiclass_case(seed: int, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(60, 600))
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if seed % 2:
        p = np.round(p, 1) + 1e-3  # ties
        p = p / p.sum(axis=1, keepdims=True)
    return y, p


@pytest.mark.parametrize("seed", range(8))
def test_multiclass_metrics_equal_sklearn_on_the_resampled_rows(seed):
    y, p = _multiclass_case(seed)
    n = len(y)
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=3).astype(float)
    counts[0] = 1.0
    for name in MULTICLASS:
        ours = weighted_metric(name, y, p, counts, task="multiclass")
        for row, w in enumerate(counts):
            rows = np.repeat(np.arange(n), w.astype(int))
            if name == "roc_auc_ovr" and len(set(y[rows])) < p.shape[1]:
                continue  # sklearn refuses a class absent from the labels; ours averages the defined ones
            assert ours[row] == pytest.approx(_sklearn_multiclass(name, y[rows], p[rows]), abs=1e-9), (name, row)


def test_multiclass_per_class_metrics_and_class_alignment():
    from retrainer.metrics import all_metrics
    from retrainer.metrics.multiclass import align_classes

    labels = ["b", "a", "c", "a", "b", "d"]  # "d": a class neither model knows
    p_new = np.array([[0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.5, 0.4, 0.1], [0.1, 0.8, 0.1], [0.4, 0.3, 0.3]])
    p_old = np.array([[0.3, 0.7], [0.9, 0.1], [0.5, 0.5], [0.6, 0.4], [0.2, 0.8], [0.5, 0.5]])
    classes, y, (new, old) = align_classes(labels, [(["a", "b", "c"], p_new), (np.array(["a", "b"]), p_old)])
    assert classes == ["a", "b", "c", "d"] and y.tolist() == [1, 0, 2, 0, 1, 3]
    assert new.shape == old.shape == (6, 4) and (old[:, 2:] == 0).all()
    metrics = all_metrics(y, new, task="multiclass", classes=classes)
    report = sk.precision_recall_fscore_support(y, new.argmax(axis=1), labels=[0, 1, 2, 3], zero_division=0)
    assert metrics["recall.a"] == pytest.approx(report[1][0]) and metrics["support.d"] == 1.0
    assert metrics["f1.c"] == pytest.approx(report[2][2])
    assert metrics["accuracy"] == pytest.approx(5 / 6)


def _sklearn_regression(name: str, y: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
    if name == "rmse":
        return sk.root_mean_squared_error(y, p, sample_weight=w)
    if name == "mae":
        return sk.mean_absolute_error(y, p, sample_weight=w)
    if name == "r2":
        return sk.r2_score(y, p, sample_weight=w)
    return sk.mean_absolute_percentage_error(y, p, sample_weight=w)


@pytest.mark.parametrize("seed", range(8))
def test_regression_metrics_equal_sklearn_with_sample_weight(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 700))
    y = rng.normal(50, 20, n) + (0.5 if seed % 2 else 1000.0)  # large offsets too
    p = y + rng.normal(0, 8, n)
    weights = rng.multinomial(n, np.full(n, 1 / n), size=4).astype(float)
    weights[0] = 1.0
    for name in REGRESSION:
        ours = weighted_metric(name, y, p, weights, task="regression")
        for row, w in enumerate(weights):
            assert ours[row] == pytest.approx(_sklearn_regression(name, y, p, w), rel=1e-9, abs=1e-9), (name, row)


def test_regression_edge_cases_follow_sklearn_or_say_undefined():
    y = np.array([3.0, 3.0, 3.0])
    assert weighted_metric("r2", y, y, task="regression")[0] == sk.r2_score(y, y) == 1.0
    assert weighted_metric("r2", y, y + 1, task="regression")[0] == sk.r2_score(y, y + 1) == 0.0
    assert np.isnan(weighted_metric("mape", np.array([0.0, 1.0]), np.array([1.0, 1.0]), task="regression")[0])
    with pytest.raises(ValueError, match="unknown regression metric 'roc_auc'"):
        weighted_metric("roc_auc", y, y, task="regression")


def test_paired_bootstrap_resamples_rows_of_a_probability_matrix():
    y, p = _multiclass_case(3)
    worse = 0.5 * p + 0.5 / p.shape[1]
    overall, by_slice = paired_bootstrap(
        "log_loss", y, p, worse, resamples=200, confidence=0.9, seed=1, task="multiclass",
        subsets={"first": np.arange(len(y)) < len(y) // 2},
    )
    assert overall.improvement > 0 and overall.ci_low > 0
    assert by_slice["first"].rows == len(y) // 2
