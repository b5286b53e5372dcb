"""One rule for a run's as-of date, window and key, whichever way the run was described."""

from __future__ import annotations

from datetime import date, datetime
from types import SimpleNamespace

import pytest

from retrainer import run_context
from retrainer.config import load_params
from retrainer.inputs import UnsafeInput


def _context(conf=None, params=None, interval=None, events=None, run_type="manual", dag_id="training"):
    run = SimpleNamespace(dag_id=dag_id, run_id="r1", conf=conf or {}, run_type=run_type,
                          run_after=datetime(2026, 4, 9, 3, 0))
    return {"dag_run": run, "params": params or {}, "data_interval_start": interval,
            "triggering_asset_events": events or {}, "ti": SimpleNamespace(try_number=2)}


def test_conf_beats_params_then_asset_events_then_interval_then_trigger_day():
    events = {"raw": [SimpleNamespace(extra={"days": ["2026-04-06", "2026-04-02"]})]}
    assert run_context.from_airflow(_context({"as_of": "2026-03-02"}, {"as_of": "2026-03-01"})).as_of == date(2026, 3, 2)
    assert run_context.from_airflow(_context(params={"day": "2026-03-05"})).as_of == date(2026, 3, 5)
    assert run_context.from_airflow(_context(events=events, interval=datetime(2026, 4, 7))).as_of == date(2026, 4, 6)
    assert run_context.from_airflow(_context(interval=datetime(2026, 4, 7))).as_of == date(2026, 4, 7)
    assert run_context.from_airflow(_context()).as_of == date(2026, 4, 9)


def test_reason_defaults_to_the_run_type_and_facts_round_trip():
    run = run_context.from_airflow(_context(run_type=SimpleNamespace(value="backfill")))
    assert (run.run_type, run.reason, run.try_number) == ("backfill", "backfill", "2")
    facts = run.to_dict()
    assert facts["as_of"] == "2026-04-09"
    assert run_context.RunContext.from_dict({**facts, "ui_url": "http://x"}) == run


def test_a_forced_run_gets_a_key_scope_of_its_own():
    plain = run_context.from_airflow(_context())
    forced = run_context.from_airflow(_context({"force": True}))
    assert plain.key_scope == "training"
    assert forced.key_scope == "training:r1"


def test_inputs_are_checked_unless_the_caller_only_reports():
    bad = _context({"as_of": "2026-03-31' OR '1'='1"})
    with pytest.raises(UnsafeInput, match="as_of"):
        run_context.from_airflow(bad)
    with pytest.raises(UnsafeInput, match="window_days: expected a whole number from 2"):
        run_context.from_airflow(_context({"window_days": 1}))
    assert run_context.from_airflow(_context({"window_days": 1}), min_window=1).window_days == 1
    # The failure notifier must still name a day when a bad input is what failed the run.
    assert run_context.from_airflow(bad, check=False).as_of == date(2026, 3, 31)


def test_a_rest_run_record_follows_the_same_rule():
    record = {"dag_id": "training", "dag_run_id": "manual__1", "conf": {"as_of": "2026-03-30", "reason": "replay"},
              "data_interval_start": "2026-03-28T00:00:00Z", "run_type": "manual"}
    run = run_context.from_run_record(record)
    assert (run.as_of, run.reason, run.run_id) == (date(2026, 3, 30), "replay", "manual__1")
    record["conf"] = {}
    assert run_context.from_run_record(record).as_of == date(2026, 3, 28)
    assert run_context.from_run_record({"run_after": "2026-04-01T10:00:00+00:00"}).as_of == date(2026, 4, 1)
    assert run_context.from_run_record({"conf": {}}) is None


def test_the_window_is_the_request_else_the_full_retrain_weekday_else_prepare(make_project):
    params = load_params(make_project({"schedule": {"full_retrain_weekday": "sunday", "full_retrain_window_days": 21}}))
    sunday = date(2026, 3, 29)
    assert run_context.for_cli(sunday).window(params) == 21
    assert run_context.for_cli(sunday, window_days=5).window(params) == 5
    assert run_context.for_cli(date(2026, 3, 28)).window(params) == params.prepare.window_days
    assert run_context.window_days(sunday, 3) == [date(2026, 3, 27), date(2026, 3, 28), sunday]
    assert run_context.day_interval(sunday) == (datetime(2026, 3, 29), datetime(2026, 3, 30))
