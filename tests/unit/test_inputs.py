"""retrainer.inputs: what a trigger may pass to a run; SQL text and paths out of reports/ are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrainer import inputs
from retrainer.config import ConfigError


def test_as_of_must_be_a_plain_date() -> None:
    assert inputs.check_as_of("2026-03-31") == "2026-03-31"
    assert inputs.check_as_of(None) is None and inputs.check_as_of("") is None
    for bad in ("2026-03-31'; DROP TABLE customer_events; --", "2026-03-31 OR 1=1", "yesterday", "20260331"):
        with pytest.raises(inputs.UnsafeInput, match="as_of: expected a date YYYY-MM-DD"):
            inputs.check_as_of(bad)
    with pytest.raises(inputs.UnsafeInput, match="not a valid calendar date"):
        inputs.check_as_of("2026-02-30")
    assert issubclass(inputs.UnsafeInput, ConfigError)  # the task fails at once, without retries


def test_reason_note_and_window() -> None:
    assert inputs.check_reason("drift") == "drift"
    with pytest.raises(inputs.UnsafeInput, match="reason: only letters"):
        inputs.check_reason("drift'; DELETE FROM runs;--")
    assert inputs.check_note("a note\nover two lines") == "a note\nover two lines"
    with pytest.raises(inputs.UnsafeInput, match="note: at most 500"):
        inputs.check_note("x" * 501)
    with pytest.raises(inputs.UnsafeInput, match="control characters"):
        inputs.check_note("bell\x07")
    assert inputs.check_window_days(7) == 7
    for bad in (1, 5000, "7; DROP", True):
        with pytest.raises(inputs.UnsafeInput, match="window_days"):
            inputs.check_window_days(bad)


def test_report_path_stays_inside_reports(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    (reports / "drift").mkdir(parents=True)
    inside = reports / "drift" / "report.json"
    assert inputs.check_report_path(str(inside), reports) == str(inside.resolve())
    assert inputs.check_report_path("drift/report.json", reports) == str(inside.resolve())
    assert inputs.check_report_path(None, reports) is None
    # Project-relative, as the drift DAG passes it.
    assert inputs.check_report_path("reports/drift/report.json", reports, reports.parent) == str(inside.resolve())
    for bad in ("../secrets.txt", "drift/../../etc/passwd", str(reports / ".." / "x"), "..\\x"):
        with pytest.raises(inputs.UnsafeInput, match=r"'\.\.' path segments are not allowed"):
            inputs.check_report_path(bad, reports)
    with pytest.raises(inputs.UnsafeInput, match="outside the reports folder"):
        inputs.check_report_path("/etc/passwd", reports)
    (reports / "escape").symlink_to(tmp_path)
    with pytest.raises(inputs.UnsafeInput, match="outside the reports folder"):
        inputs.check_report_path("escape/x.json", reports)
    with pytest.raises(inputs.UnsafeInput, match="NUL"):
        inputs.check_report_path("a\x00b", reports)


def test_run_facts_refuses_unsafe_conf(tmp_path: Path, make_project) -> None:
    from types import SimpleNamespace

    from retrainer_airflow.tasks import run_facts

    from retrainer.config import load_params

    params = load_params(make_project())
    run = SimpleNamespace(conf={}, dag_id="training", run_id="r1", run_type="manual", run_after=None)
    context = {"dag_run": run, "params": {"as_of": "2026-03-31", "report": None}, "ti": SimpleNamespace(try_number=1)}
    facts = run_facts(context, params)
    assert facts["as_of"] == "2026-03-31" and facts["trigger_report"] == ""

    run.conf = {"report": str(params.reports_dir / "drift" / "r.json"), "reason": "drift"}
    facts = run_facts(context, params)
    assert facts["trigger_report"].endswith("reports/drift/r.json") and facts["reason"] == "drift"

    run.conf = {"as_of": "2026-03-31' OR '1'='1"}
    with pytest.raises(inputs.UnsafeInput, match="as_of"):
        run_facts(context, params)
    run.conf = {"report": "../../../etc/passwd"}
    with pytest.raises(inputs.UnsafeInput, match=r"report: '\.\.'"):
        run_facts(context, params)
