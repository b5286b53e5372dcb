"""A month of daily drift checks on generated data, through the library's statistics and decision.

The project's own params.yaml `drift` policy, 2,000 rows a day (the demo's rate), the generator's
drift injection; a retrain makes the new champion's training days the reference of later checks.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from bench.drift_cases import simulate_daily_checks
from retrainer.datagen import DriftSpec
from retrainer.deployment import find_deployment
from tests.conftest import REPO_ROOT

FIRST = date(2026, 5, 1)
DRIFT_START = FIRST + timedelta(days=5)


@pytest.fixture(scope="module")
def policy():
    return find_deployment(REPO_ROOT, explicit=REPO_ROOT / "models").load("churn").drift


def _retrain_days(checks) -> list[int]:
    return [(date.fromisoformat(c.as_of) - DRIFT_START).days for c in checks if c.action == "retrain"]


@pytest.mark.parametrize("seed", [42, 7])
def test_no_drift_means_no_retrain_over_a_month(policy, seed):
    checks = simulate_daily_checks(policy, FIRST, 30, seed=seed)
    false_alarms = [c for c in checks if c.signal]
    largest = max(c.max_score for c in checks)
    print(f"seed {seed}: false-alarm rate {len(false_alarms)}/{len(checks)} checks; "
          f"columns drifted in {sum(len(c.drifted) for c in checks)} of {len(checks) * 14} column checks "
          f"(largest score {largest:.2f} of its threshold)")
    assert [c.action for c in checks] == ["no_drift"] * 30


def test_abrupt_drift_on_two_features_retrains_once_within_the_persistence_window(policy):
    drift = DriftSpec(start=DRIFT_START, kind="abrupt", features=("monthly_charges", "num_support_calls"))
    checks = simulate_daily_checks(policy, FIRST, 5 + policy.cooldown_days + 1, drift=drift)
    before = checks[:5]
    assert all(c.action == "no_drift" for c in before)
    retrains = _retrain_days(checks)
    assert len(retrains) == 1
    assert 0 <= retrains[0] < policy.persistence.checks
    after = checks[5 + retrains[0] + 1:]
    # Drift is still there every day, but the cooldown holds the second retrain off.
    assert after and all(c.signal and c.action == "cooldown" for c in after)

    storm = simulate_daily_checks(policy.model_copy(update={"cooldown_days": 0}), FIRST, len(checks), drift=drift)
    assert len(_retrain_days(storm)) > 1


def test_abrupt_drift_on_two_independent_features_retrains_by_drifted_share(policy):
    drift = DriftSpec(start=DRIFT_START, kind="abrupt", features=("tenure_months", "payment_method"), magnitude=1.0)
    checks = simulate_daily_checks(policy, FIRST, 5 + 10, drift=drift)
    retrains = _retrain_days(checks)
    assert len(retrains) == 1
    retrain = checks[5 + retrains[0]]
    assert retrain.drifted_share >= policy.drift_share
    assert {"tenure_months", "payment_method"} <= set(retrain.drifted)


def test_gradual_drift_is_detected_within_a_week(policy):
    drift = DriftSpec(start=DRIFT_START, kind="gradual", features=("monthly_charges", "num_support_calls"), ramp_days=14)
    checks = simulate_daily_checks(policy, FIRST, 5 + 10, drift=drift)
    retrains = _retrain_days(checks)
    print(f"gradual drift (14-day ramp): first retrain {retrains[0] if retrains else None} days after it began")
    assert retrains and 0 <= retrains[0] <= policy.window_days
    # The new champion's training days are the reference from then on.
    first = 5 + retrains[0]
    assert checks[first].reference_end < checks[first + 1].reference_end
