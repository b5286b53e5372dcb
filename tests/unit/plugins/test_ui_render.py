"""plugins/retrainer_ui_render.py: the control room's HTML and SVG, from plain data (no Airflow)."""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "plugins"))  # as Airflow does for the plugins folder
import retrainer_ui_render as render  # noqa: E402

PREFIX, BASE = "/retrainer", ""


def _check(day: str, share: float, signal: bool, triggered: bool = False, inconclusive: bool = False) -> dict:
    return {"as_of": day, "drifted_share": share, "drifted_columns": ["tenure"] if signal else [],
            "decision": "retrain" if triggered else "no_drift", "signal": signal, "inconclusive": inconclusive,
            "champion_version": "1", "triggered": triggered, "training_run_id": "drift__" + day if triggered else None,
            "report": f"drift/{day}/report.html", "note": ""}


def _svg(html: str) -> ET.Element:
    return ET.fromstring(re.search(r"<svg.*?</svg>", html, re.S).group(0))  # noqa: S314 - our own output


def test_drift_chart_draws_points_threshold_and_trigger_markers():
    drift = {"threshold": 0.2, "checks": [_check("2026-03-29", 0.0, False), _check("2026-03-30", 0.5, True, True),
                                          _check("2026-03-31", 0.1, False, inconclusive=True)]}
    html = render.drift_chart(drift, PREFIX, width=400, height=200)
    svg = _svg(html)  # well-formed SVG
    ns = "{http://www.w3.org/2000/svg}"
    circles = [c for c in svg.iter() if c.tag in ("circle", ns + "circle")]
    assert len(circles) == 3
    # y grows downwards: 0.5 sits higher than 0.0; the threshold (0.2) between them.
    ys = [float(c.get("cy")) for c in circles]
    threshold = next(e for e in svg.iter() if e.get("class") == "threshold")
    assert ys[1] < float(threshold.get("y1")) < ys[0]
    assert [c.get("fill") for c in circles] == ["#2f855a", "#c53030", "#a0aec0"]
    triggers = [e for e in svg.iter() if e.get("class") == "trigger"]
    assert len(triggers) == 1 and "drift__2026-03-30" in ET.tostring(triggers[0], encoding="unicode")
    assert 'href="/retrainer/reports/drift/2026-03-30/report.html"' in html
    assert "latest check 2026-03-31" in html
    assert "no drift check yet" in render.drift_chart({"threshold": 0.2, "checks": []}, PREFIX)


def test_drift_chart_of_a_single_check_and_shares_above_one_stay_inside():
    html = render.drift_chart({"threshold": 0.2, "checks": [_check("2026-03-31", 1.0, True)]}, PREFIX, 300, 150)
    (circle,) = [c for c in _svg(html).iter() if c.tag.endswith("circle")]
    assert 0 <= float(circle.get("cx")) <= 300 and 0 <= float(circle.get("cy")) <= 150


def test_values_are_escaped_everywhere():
    hostile = '<script>alert("x")</script>'
    quarantine = [{"day": "2026-04-01", "reason": hostile, "failed": [{"expectation": hostile, "column": hostile,
                   "severity": "critical", "examples": [hostile]}], "batches": 1, "md5": "abc", "data_docs": None,
                   "replay_run_id": "replay__2026-04-01__1-abc"}]
    html = render.quarantine_table(quarantine, PREFIX, True, BASE)
    assert "<script>" not in html and "&lt;script&gt;" in html
    history = [{"seq": 1, "at": "t", "action": "auto", "version": "1", "previous": None, "by": hostile, "reason": hostile}]
    assert "<script>" not in render.history_table(history, BASE)


@pytest.mark.parametrize("can_replay", [True, False])
def test_replay_button_is_disabled_for_roles_that_may_not_start_runs(can_replay):
    quarantine = [{"day": "2026-04-01", "reason": "bad", "failed": [], "batches": 1, "md5": "abc",
                   "data_docs": "validation/dt=2026-04-01/data_docs/index.html", "replay_run_id": "r"}]
    html = render.quarantine_table(quarantine, PREFIX, can_replay, BASE)
    button = re.search(r"<button[^>]*>", html).group(0)
    assert 'data-replay="2026-04-01"' in button and 'data-endpoint="/retrainer/api/replay"' in button
    assert ("disabled" in button) is (not can_replay)
    assert 'href="/retrainer/reports/validation/dt=2026-04-01/data_docs/index.html"' in html


def test_the_page_renders_an_empty_project_and_section_errors():
    data = {"model_name": "m", "champion": None, "challenger": None, "history": [], "gates": [], "drift": None,
            "quarantine": [], "errors": {"drift": "ValueError: ledger broken"}}
    html = render.control_room(data, PREFIX, BASE, "viewer", False)
    assert "no champion yet" in html and "no challenger yet" in html and "nothing in quarantine" in html
    assert "could not read this section: ValueError: ledger broken" in html
    assert "read-only" in html and "http" not in re.sub(r'xmlns="http://www.w3.org/2000/svg"', "", html).split("<script>")[0]


def test_model_card_shows_version_metric_days_promotion_and_decision():
    card = {"alias": "champion", "name": "m", "version": "3", "aliases": ["champion"], "run_id": "r", "experiment_id": "1",
            "metric_name": "holdout_roc_auc", "metric_value": 0.81234, "as_of": "2026-03-31",
            "train_days": {"first": "2026-03-18", "last": "2026-03-28", "count": 11},
            "holdout_days": {"first": "2026-03-29", "last": "2026-03-31", "count": 3},
            "trained_by": {"dag_id": "training", "run_id": "manual__1", "reason": "drift", "run_type": "manual"},
            "gate": "passed", "approval": "approved_auto", "demoted": None,
            "promoted": {"at": "2026-04-01T00:00:00+00:00", "by": "training/manual__1", "action": "auto", "reason": "better"},
            "decision": {"header": ["check", "challenger", "champion", "change", "95% CI", "rule", "result"],
                         "rows": [["roc_auc floor", "0.8123", "", "", "", ">= 0.6", "pass"]],
                         "verdict": "PASSED: may replace the champion", "reasons": ["ok"], "passed": True, "promote": True},
            "links": {"mlflow_run": "http://mlflow/#/experiments/1/runs/r", "mlflow_version": None}}
    html = render.model_card(card, "champion", "/base")
    assert ">v3<" in html and "0.8123" in html and "2026-03-18 .. 2026-03-28 (11 days)" in html
    assert 'href="/base/dags/training/runs/manual__1" data-airflow="1"' in html
    assert 'data-external="1"' in html and "model version in MLflow" not in html
    assert '<span class="badge ok">pass</span>' in html
