"""retrainer_launcher.airflow_api: run durations and task log lines from the REST API's answers."""

from __future__ import annotations

from retrainer_launcher import airflow_api


def test_run_durations_and_log_formatting() -> None:
    run = {
        "queued_at": "2026-01-01T00:00:00Z",
        "start_date": "2026-01-01T00:00:10.5Z",
        "end_date": "2026-01-01T00:01:10.5Z",
    }
    assert airflow_api.run_duration(run) == 60
    assert airflow_api.run_duration(run, "queued_at") == 70.5
    assert airflow_api.run_duration({"start_date": None, "end_date": None}) is None

    entry = {
        "timestamp": "2026-01-01T12:34:56.789Z",
        "level": "error",
        "event": "Task failed with exception",
        "error_detail": [
            {
                "exc_type": "ValueError",
                "exc_value": "boom",
                "frames": [{"filename": "f.py", "lineno": 3, "name": "g"}],
            }
        ],
    }
    text = airflow_api.format_log_entry(entry)
    assert text.startswith("12:34:56 error")
    assert "f.py:3 in g" in text and "ValueError: boom" in text
    assert airflow_api.format_log_entry("plain line") == "plain line"


def test_the_paused_line_names_every_dag_and_its_state() -> None:
    from retrainer_launcher.airflow_api import paused_line

    line = paused_line({"training": False, "drift_monitor": True, "promote": None})
    assert line == "training unpaused, drift_monitor paused, promote not parsed"
