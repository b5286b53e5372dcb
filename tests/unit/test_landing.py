"""Landing files: claimed atomically, read once, split into daily partitions, quarantined when unreadable.

Real files, a real SQLite source and a real DVC repo where tracking matters; no Airflow.
"""

from __future__ import annotations

import json
import os
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from retrainer import landing
from retrainer.config import load_params
from retrainer.datagen import generate_day
from retrainer.ingest import ingest_day, ingest_window
from retrainer.storage import SOURCE_MARKER, md5_file, partition_file
from tests.conftest import AS_OF, seed

DAY = AS_OF


@pytest.fixture
def params(make_project):
    # No settle wait in tests (files are complete when written); the wait has its own test.
    return load_params(make_project({"landing": {"settle_seconds": 0}}))


def _drop(params, name: str, frame: pd.DataFrame | None = None, text: str | None = None) -> Path:
    params.landing_dir.mkdir(parents=True, exist_ok=True)
    path = params.landing_dir / name
    if text is not None:
        path.write_text(text)
    elif name.endswith(".csv"):
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def _day(day: date = DAY, rows: int = 50) -> pd.DataFrame:
    return generate_day(day, rows, seed=42)


def _land(params, *, track: bool = False) -> dict:
    claimed = landing.claim_files(params)
    summary = landing.ingest_staged(params, track=track)
    summary["claim"] = claimed
    return summary


def test_a_csv_day_becomes_the_same_partition_the_sql_source_gives(params, make_project):
    _drop(params, "batch.csv", _day(rows=300))
    summary = _land(params)
    assert summary["days"] == [DAY.isoformat()]
    assert not list(params.landing_dir.iterdir())  # claimed: nothing left in the landing folder
    landed = partition_file(params.data_dir, DAY)
    marker = json.loads((landed.parent / SOURCE_MARKER).read_text())
    assert marker["source"] == "landing" and marker["files"][0]["name"] == "batch.csv"

    # The same rows through the SQL source give byte-identical Parquet.
    other = load_params(make_project())
    seed(other.source_file, end=DAY, days=1, rows_per_day=300)
    from_sql = ingest_day(other, DAY, track=False)
    assert md5_file(landed) == from_sql.md5


def test_a_parquet_file_over_two_days_makes_two_partitions_and_two_triggers(params):
    frame = pd.concat([_day(DAY - timedelta(days=1)), _day(DAY)], ignore_index=True)
    _drop(params, "two_days.parquet", frame)
    summary = _land(params)
    assert summary["days"] == [(DAY - timedelta(days=1)).isoformat(), DAY.isoformat()]
    assert [len(pd.read_parquet(p["path"])) for p in summary["partitions"]] == [50, 50]
    first = summary["triggers"][0]
    assert first["conf"] == {
        "as_of": (DAY - timedelta(days=1)).isoformat(),
        "reason": "new_data",
        "note": "new data from landing file(s): two_days.parquet",
    }
    md5 = summary["partitions"][0]["md5"]
    assert first["trigger_run_id"] == f"new_data__{(DAY - timedelta(days=1)).isoformat()}__{md5[:12]}"
    ledger = landing.load_ledger(params)
    assert [e["status"] for e in ledger.values()] == ["ingested"]
    assert next(iter(ledger.values()))["days"] == summary["days"]


def test_the_same_content_is_never_read_twice(params):
    frame = _day()
    _drop(params, "a.csv", frame)
    first = _land(params)
    before = md5_file(partition_file(params.data_dir, DAY))

    _drop(params, "a-again.csv", frame)  # same bytes, another name
    second = _land(params)
    assert second["days"] == [] and second["triggers"] == []
    [dup] = second["claim"]["quarantined"]
    assert "duplicate" in dup["reason"] and "'a.csv'" in dup["reason"]
    assert Path(dup["to"]).exists() and Path(dup["to"] + ".reason.txt").exists()
    assert md5_file(partition_file(params.data_dir, DAY)) == before
    assert len(landing.load_ledger(params)) == 1
    assert first["files"][0]["sha256"] == dup["sha256"]


def test_files_for_the_same_day_merge_in_any_order_to_the_same_bytes(make_project):
    whole = _day(rows=100)
    halves = {"first.csv": whole.iloc[:60], "second.csv": whole.iloc[40:]}  # 20 rows overlap
    results = []
    for order in (["first.csv", "second.csv"], ["second.csv", "first.csv"]):
        params = load_params(make_project({"landing": {"settle_seconds": 0}}))
        for name in order:
            _drop(params, name, halves[name])
            _land(params)
        results.append(partition_file(params.data_dir, DAY))
    assert md5_file(results[0]) == md5_file(results[1])
    assert len(pd.read_parquet(results[0])) == 100  # the overlap is not counted twice
    marker = json.loads((results[0].parent / SOURCE_MARKER).read_text())
    assert sorted(f["name"] for f in marker["files"]) == ["first.csv", "second.csv"]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("garbage.parquet", "this is not parquet", "garbage.parquet: not a readable parquet file"),
        ("empty.csv", "", "empty.csv: not a readable csv file"),
        ("header_only.csv", "customer_id,event_time\n", "header_only.csv: the file has no rows"),
        ("notes.txt", "hello", "unsupported file type '.txt'"),
    ],
)
def test_unreadable_files_go_to_quarantine_with_a_reason(params, name, content, expected):
    _drop(params, name, text=content)
    summary = _land(params)
    quarantined = summary["claim"]["quarantined"] + summary["quarantined"]
    assert len(quarantined) == 1 and expected in quarantined[0]["reason"]
    target = Path(quarantined[0]["to"])
    assert target.read_text() == content  # moved as it was, nothing lost
    assert expected in Path(f"{target}.reason.txt").read_text()
    assert summary["days"] == [] and not (params.data_dir / "raw").exists()
    assert not list(params.landing_dir.iterdir())


def test_missing_columns_and_bad_timestamps_are_named(params):
    frame = _day()
    _drop(params, "no_label.csv", frame.drop(columns=["churned", "region"]))
    broken = frame.astype({"event_time": object})
    broken.loc[3, "event_time"] = "yesterday-ish"
    broken.loc[7, "event_time"] = None
    _drop(params, "bad_times.csv", broken)
    summary = _land(params)
    reasons = {q["name"]: q["reason"] for q in summary["quarantined"]}
    assert "missing columns ['region', 'churned']" in reasons["no_label.csv"]
    assert "2 of 50 rows have an event_time that is missing or not a timestamp" in reasons["bad_times.csv"]
    assert "CSV lines [5, 9]" in reasons["bad_times.csv"] and "'yesterday-ish'" in reasons["bad_times.csv"]
    ledger = landing.load_ledger(params)
    assert sorted(e["status"] for e in ledger.values()) == ["quarantined", "quarantined"]


def test_hidden_files_are_ignored_folders_quarantined_and_fresh_files_waited_for(params, make_project):
    _drop(params, ".upload-in-progress.csv", _day())
    (params.landing_dir / "nested").mkdir()
    (params.landing_dir / "nested" / "x.csv").write_text("a\n1\n")
    result = landing.claim_files(params)
    assert result["claimed"] == []
    assert [q["name"] for q in result["quarantined"]] == ["nested"]
    assert (params.landing_dir / ".upload-in-progress.csv").exists()

    settled = load_params(make_project({"landing": {"settle_seconds": 30}}))
    path = _drop(settled, "fresh.csv", _day())
    now = [path.stat().st_mtime + 1]
    naps = []

    def sleep(seconds):
        naps.append(seconds)
        now[0] += seconds

    result = landing.claim_files(settled, clock=lambda: now[0], sleep=sleep)
    assert [c["name"] for c in result["claimed"]] == ["fresh.csv"] and naps  # waited, then claimed

    copying = _drop(settled, "still_copying.csv", _day(DAY - timedelta(days=1)))
    just_written = os.path.getmtime(copying)
    result = landing.claim_files(settled, clock=lambda: just_written, max_wait=0)
    assert result["still_being_written"] == ["still_copying.csv"] and result["claimed"] == []


def test_a_task_that_dies_after_claiming_loses_nothing(params):
    _drop(params, "batch.csv", _day())
    claimed = landing.claim_files(params)
    [pending] = landing.pending_claims(params)
    assert pending.name == "batch.csv" and Path(pending.path) == Path(claimed["claimed"][0]["path"])

    # Died half-way through ingest: the rows were merged, the ledger was not written.
    frame = landing.read_landing_file(Path(pending.path), params)
    landing.merge_into_partition(params, DAY, frame, {"sha256": pending.sha256, "name": pending.name, "rows": 50})
    half = md5_file(partition_file(params.data_dir, DAY))

    summary = landing.ingest_staged(params, track=False)  # the retry
    assert summary["days"] == [DAY.isoformat()] and summary["partitions"][0]["status"] == "unchanged"
    assert md5_file(partition_file(params.data_dir, DAY)) == half
    assert landing.pending_claims(params) == []
    assert landing.ingest_staged(params, track=False)["days"] == []  # and nothing twice


def test_training_ingest_uses_a_landing_day_instead_of_the_sql_source(params):
    seed(params.source_file, end=DAY, days=3, rows_per_day=300)
    _drop(params, "late_batch.csv", _day(rows=40))
    _land(params, track=True)
    target = partition_file(params.data_dir, DAY)
    before = md5_file(target)

    summary = ingest_window(params, DAY, window=3)
    assert summary["as_of_status"] == "landing" and summary["as_of_rows"] == 40
    assert md5_file(target) == before  # the SQL rows of that day did not overwrite it
    assert [p["status"] for p in summary["new_partitions"]] == ["written", "written", "landing"]
    assert (target.parent / "part.parquet.dvc").exists()


def test_weekly_full_retrain_window_follows_the_as_of_weekday(make_project):
    from retrainer.run_context import window_length

    params = load_params(make_project({"schedule": {"full_retrain_weekday": "sunday", "full_retrain_window_days": 21}}))
    sunday = date(2026, 3, 29)
    assert sunday.weekday() == 6
    assert window_length(params, sunday) == 21
    assert window_length(params, sunday - timedelta(days=1)) == params.prepare.window_days
    assert window_length(params, sunday, requested=5) == 5


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_retrainer_batch_writes_a_landing_file_that_lands(params, suffix):
    from retrainer.cli import main

    out = params.landing_dir / f"batch{suffix}"
    code = main(["--params", str(params.source_file), "batch", "--day", DAY.isoformat(), "--rows", "40",
                 "--seed", "7", "--out", str(out)])
    assert code == 0
    assert len(landing.read_landing_file(out, params)) == 40
    assert _land(params)["days"] == [DAY.isoformat()]
