"""The retrain decision: a pure function of the check history, today's outcome and the drift params."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from retrainer.config import ConfigError, DriftConfig, load_params
from retrainer.monitor import CheckOutcome, decide, drift_signals

D0 = date(2026, 4, 1)


def policy(**overrides) -> DriftConfig:
    base = {"drift_share": 0.3, "critical_columns": ["region"], "persistence": {"checks": 3, "required": 2},
            "cooldown_days": 7}
    return DriftConfig(**{**base, **overrides})


def day(offset: int) -> str:
    return (D0 + timedelta(days=offset)).isoformat()


def outcome(offset: int, share: float = 0.0, drifted: dict | None = None, **kw) -> CheckOutcome:
    return CheckOutcome(as_of=day(offset), drifted_share=share, drifted_columns=drifted or {}, **kw)


def check(offset: int, signal: bool, inconclusive: bool = False) -> dict:
    return {"as_of": day(offset), "signal": signal, "inconclusive": inconclusive}


def test_each_kind_of_signal_is_named():
    p = policy(prediction_drift_is_critical=True)
    assert drift_signals(outcome(0, 0.2), p) == []
    assert drift_signals(outcome(0, 0.3), p) == ["drifted share 0.30 >= drift_share 0.3"]
    assert drift_signals(outcome(0, 0.1, critical_drifted=["region"]), p) == ["critical columns drifted: region"]
    assert drift_signals(outcome(0, performance_degraded=True, performance_note="roc_auc 0.61 below 0.70"), p) == [
        "performance below its floor: roc_auc 0.61 below 0.70"
    ]
    assert drift_signals(outcome(0, prediction_drifted=True), p) == ["prediction drift (drift.prediction_drift_is_critical)"]
    assert drift_signals(outcome(0, prediction_drifted=True), policy()) == []
    assert drift_signals(outcome(0, 0.9, inconclusive="too few rows"), p) == []


def test_no_signal_means_no_retrain():
    decision = decide([check(-2, True), check(-1, True)], [], outcome(0, 0.1), policy())
    assert (decision.action, decision.retrain, decision.signal) == ("no_drift", False, False)


def test_a_single_drifted_check_is_not_enough_under_persistence():
    decision = decide([check(-2, False), check(-1, False)], [], outcome(0, 0.5), policy())
    assert (decision.action, decision.retrain) == ("unconfirmed", False)
    assert decision.note == "drift seen in 1 of the last 3 checks; 2 of 3 needed"


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([False, True], "retrain"),  # 2 of the last 3 (today included)
        ([True, False], "retrain"),
        ([True, False, False], "unconfirmed"),  # the drifted check fell out of the last 3
        ([], "unconfirmed"),  # the first check ever can only count itself
    ],
)
def test_persistence_counts_the_last_m_checks_including_today(history, expected):
    checks = [check(i - len(history), s) for i, s in enumerate(history)]
    assert decide(checks, [], outcome(0, 0.5), policy()).action == expected


def test_persistence_of_one_retrains_at_the_first_signal():
    decision = decide([], [], outcome(0, 0.5), policy(persistence={"checks": 1, "required": 1}))
    assert decision.action == "retrain" and decision.checks_considered == 1


def test_inconclusive_checks_and_a_rerun_of_today_do_not_count():
    history = [check(-3, True), check(-2, True, inconclusive=True), check(-1, False), check(0, True)]
    # Considered: -3 and -1 (the inconclusive one and today's earlier record are skipped) plus today.
    decision = decide(history, [], outcome(0, 0.5), policy())
    assert (decision.action, decision.drift_seen, decision.checks_considered) == ("retrain", 2, 3)


def test_an_inconclusive_check_decides_nothing():
    decision = decide([check(-1, True)], [], outcome(0, 0.9, inconclusive="200 rows < 1000"), policy())
    assert (decision.action, decision.retrain, decision.note) == ("inconclusive", False, "200 rows < 1000")


def test_cooldown_blocks_a_second_retrain_within_n_days():
    checks = [check(-1, True)]
    blocked = decide(checks, [{"as_of": day(-6)}], outcome(0, 0.5), policy())
    assert (blocked.action, blocked.retrain, blocked.cooldown_until) == ("cooldown", False, day(1))
    assert blocked.last_trigger == day(-6)
    allowed = decide(checks, [{"as_of": day(-7)}], outcome(0, 0.5), policy())
    assert allowed.action == "retrain"
    assert decide(checks, [{"as_of": day(-1)}], outcome(0, 0.5), policy(cooldown_days=0)).action == "retrain"


def test_a_trigger_after_the_checked_day_also_blocks_backfilled_checks():
    decision = decide([check(-1, True)], [{"as_of": day(3)}], outcome(0, 0.5), policy())
    assert decision.action == "cooldown"


def test_a_rerun_of_a_day_that_already_triggered_does_not_trigger_again():
    decision = decide([check(-1, True), check(0, True)], [{"as_of": day(0)}], outcome(0, 0.5), policy())
    assert (decision.action, decision.retrain) == ("already_triggered", False)


def test_drift_every_day_of_a_month_retrains_once_per_cooldown():
    checks, triggers, retrains = [], [], []
    p = policy(cooldown_days=14)
    for offset in range(30):
        decision = decide(checks, triggers, outcome(offset, 0.5), p)
        checks.append({"as_of": day(offset), "signal": decision.signal})
        if decision.retrain:
            triggers.append({"as_of": day(offset)})
            retrains.append(offset)
    assert retrains == [1, 15, 29]


def test_params_reject_unknown_drift_columns_and_bad_persistence(make_project):
    with pytest.raises(ConfigError, match=r"drift.critical_columns: not features of dataset 'churn': \['regoin'\]"):
        load_params(make_project({"drift": {"critical_columns": ["regoin"]}}))
    with pytest.raises(ConfigError, match=r"drift.persistence: Value error, required \(4\) must not exceed checks \(3\)"):
        load_params(make_project({"drift": {"persistence": {"checks": 3, "required": 4}}}))
    with pytest.raises(ConfigError, match=r"drift.methods.region: Input should be"):
        load_params(make_project({"drift": {"methods": {"region": "t-test"}}}))
    params = load_params(make_project({"drift": {"methods": {"score": "psi"}, "thresholds": {"region": 0.2}}}))
    assert params.drift.methods == {"score": "psi"}


def test_a_checks_as_of_date_is_the_param_else_the_newest_asset_event_day_else_the_schedule():
    from datetime import datetime
    from types import SimpleNamespace

    from retrainer_airflow.tasks import monitor_facts

    def context(params=None, events=None, interval=None):
        run = SimpleNamespace(dag_id="drift_monitor", run_id="r1", conf={}, run_type="asset_triggered",
                              run_after=datetime(2026, 4, 9, 3, 0))
        return {"dag_run": run, "params": params or {}, "triggering_asset_events": events or {},
                "data_interval_start": interval}

    events = {"retrainer_raw_partitions": [SimpleNamespace(extra={"as_of": "2026-04-05"}),
                                           SimpleNamespace(extra={"days": ["2026-04-06", "2026-04-02"]}),
                                           SimpleNamespace(extra=None)]}
    assert monitor_facts(context({"as_of": "2026-03-01"}, events))["as_of"] == "2026-03-01"
    assert monitor_facts(context(events=events))["as_of"] == "2026-04-06"
    assert monitor_facts(context(interval=datetime(2026, 4, 7)))["as_of"] == "2026-04-07"
    assert monitor_facts(context())["as_of"] == "2026-04-09"
