"""retrainer.gates: the leakage gate's AUC equals scikit-learn's (ties and all), categories scored by label rate."""

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


def test_leakage_scores_a_category_by_its_label_rate_like_a_groupby() -> None:
    import pandas as pd

    from retrainer.gates import _label_rate, leakage_problems

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 2_000)
    plan = pd.Series(rng.choice(["a", "b", "c", None], 2_000), dtype="string[pyarrow]")
    expected = plan.astype(object).map(pd.Series(y).groupby(plan.astype(object)).mean()).astype("float64")
    assert np.allclose(_label_rate(plan, y), expected.to_numpy(), equal_nan=True)
    # A category that is the label in disguise is caught; one unrelated to it is not.
    frame = pd.DataFrame({"plan": plan, "status": pd.Series(np.where(y == 1, "gone", "active"), dtype="string[pyarrow]"),
                          "tenure": rng.normal(size=2_000), "churned": y})
    problems = leakage_problems(frame, ["tenure"], ["plan", "status"], "churned", 0.98)
    assert len(problems) == 1 and "'status'" in problems[0]


def test_the_leakage_auc_is_the_metrics_auc() -> None:
    from retrainer.metrics import weighted_metric

    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 5_000)
    scores = np.round(y * 0.4 + rng.normal(size=y.size), 1)  # many ties
    assert binary_auc(y, scores) == pytest.approx(float(weighted_metric("roc_auc", y, scores)[0]), abs=1e-12)


def test_broken_predictions_are_named() -> None:
    from retrainer.gates import prediction_problems

    assert prediction_problems(np.array([0.1, 0.7, 0.4]), "holdout") == []
    assert prediction_problems(np.array([]), "holdout") == ["holdout: no predictions"]
    problems = prediction_problems(np.array([0.2, np.nan, 1.5, -0.1]), "holdout")
    assert any("1 of 4 predicted probabilities are NaN" in p for p in problems)
    assert any("2 predicted probabilities outside [0, 1]" in p for p in problems)
    assert "predicts a constant" in prediction_problems(np.full(10, 0.3), "holdout")[0]


def test_non_finite_values_are_found_per_numeric_column_and_named():
    import numpy as np
    import pandas as pd

    from retrainer.gates import non_finite_problems, non_finite_values

    frame = pd.DataFrame({"a": [1.0, np.inf, np.nan, -np.inf], "b": [1, 2, 3, 4], "c": ["x", "inf", "y", "z"],
                          "d": pd.array([0.5, None, np.inf, 2.0], dtype="Float64")})
    assert non_finite_values(frame) == {"a": {"rows": 2, "examples": ["-inf", "inf"]},
                                        "d": {"rows": 1, "examples": ["inf"]}}
    assert non_finite_values(frame, ["b", "c", "missing"]) == {}
    assert non_finite_problems(frame, ["a"], "training set") == [
        "training set: column 'a' has 2 non-finite values, e.g. ['-inf', 'inf']"]
