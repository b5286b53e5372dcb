"""Validating a window's partitions together: the verdict of every partition is the one it gets alone."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from retrainer import validate as v
from retrainer.datagen import IncidentSpec, generate_day
from retrainer.ingest import write_partition
from retrainer.validate.window import is_row_wise, split_suite

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "validation_suites" / "churn_raw.json"
FIRST = date(2026, 1, 10)
DAYS = [FIRST + timedelta(days=i) for i in range(4)]
BAD_DAY = DAYS[2]
ROWS = 400


def _partitions(root: Path, incidents: tuple[IncidentSpec, ...] = (), infinite: bool = False) -> list:
    parts = []
    for day in DAYS:
        frame = generate_day(day, ROWS, seed=7, incidents=tuple(i for i in incidents if i.day == day))
        if infinite and day == BAD_DAY:
            frame.loc[frame.index[:3], "total_charges"] = np.inf
        path = root / "raw" / f"dt={day.isoformat()}" / "part.parquet"
        write_partition(frame, path)
        start = datetime(day.year, day.month, day.day)
        parts.append(v.PartitionToValidate(path, root / "reports" / f"dt={day}", start, start + timedelta(days=1),
                                           day.isoformat()))
    return parts


def _failed(outcome: v.ValidationOutcome) -> set[tuple[str, str | None, str]]:
    return {(f.expectation_type, f.column, f.severity) for f in outcome.failed}


def _alone(part: v.PartitionToValidate, tmp_path: Path) -> v.ValidationOutcome:
    return v.validate_partition(part.path, SUITE, tmp_path / "alone" / part.label, build_docs=False,
                                interval_start=part.interval_start, interval_end=part.interval_end)


def test_the_churn_suite_splits_into_row_wise_and_per_partition_halves():
    suite = v.load_suite(SUITE)
    row_wise, per_partition = split_suite(suite)
    assert len(row_wise) + len(per_partition) == len(suite.expectations)
    kinds = {c["type"] for c in per_partition}
    # Aggregates, uniqueness, tolerances and the interval can only be judged partition by partition.
    assert {"expect_table_row_count_to_be_between", "expect_column_values_to_be_unique",
            "expect_column_mean_to_be_between"} <= kinds
    assert not any(is_row_wise(c) for c in per_partition)
    assert is_row_wise({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x"}})
    assert not is_row_wise({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x", "mostly": 0.9}})
    assert not is_row_wise({"type": "expect_column_values_to_be_between",
                            "kwargs": {"column": "t", "min_value": {"$PARAMETER": "interval_start"}}})


def test_a_clean_window_passes_from_one_stacked_run_with_complete_reports(tmp_path):
    parts = _partitions(tmp_path)
    outcomes = list(v.validate_partitions(parts, SUITE, tmp_path / "window"))
    assert [p.label for p, _ in outcomes] == [p.label for p in parts]
    expectations = len(v.load_suite(SUITE).expectations)
    for part, outcome in outcomes:
        assert outcome.success and not outcome.failed
        assert outcome.evaluated == expectations  # both halves: the whole suite was judged
        report = json.loads((part.report_dir / "validation.json").read_text())
        assert report["success"] and report["gx_result"]["rows_run"]["run_id"]
        assert report["suite_parameters"]["interval_start"].startswith(part.label)
        assert outcome.data_docs_index and Path(outcome.data_docs_index).is_file()
    window = json.loads((tmp_path / "window" / "window.json").read_text())
    assert window["success"] and len(window["partitions"]) == len(parts)


@pytest.mark.parametrize(
    "incident",
    [
        IncidentSpec(BAD_DAY, "out_of_range", column="tenure_months", fraction=0.05),
        IncidentSpec(BAD_DAY, "unseen_category", column="region", fraction=0.05),
        IncidentSpec(BAD_DAY, "nulls", column="monthly_charges", fraction=0.2),
        IncidentSpec(BAD_DAY, "duplicate_keys", fraction=0.05),
        IncidentSpec(BAD_DAY, "outside_interval", fraction=0.05),
        IncidentSpec(BAD_DAY, "missing_column", column="tenure_months"),
        IncidentSpec(BAD_DAY, "wrong_type", column="total_charges"),
    ],
    ids=lambda i: i.kind,
)
def test_every_partition_gets_the_verdict_and_evidence_it_gets_alone(tmp_path, incident):
    parts = _partitions(tmp_path, (incident,))
    together = dict((p.label, o) for p, o in v.validate_partitions(parts, SUITE, tmp_path / "window",
                                                                    build_docs="on_failure"))
    for part in parts:
        alone = _alone(part, tmp_path)
        assert together[part.label].success == alone.success, part.label
        assert _failed(together[part.label]) == _failed(alone), part.label
        if not alone.success:
            assert together[part.label].message().count("[critical]") == alone.message().count("[critical]")
    assert not together[BAD_DAY.isoformat()].success
    assert all(together[d.isoformat()].success for d in DAYS if d != BAD_DAY)


def test_non_finite_values_in_one_partition_send_the_stack_to_the_full_gate(tmp_path):
    parts = _partitions(tmp_path, infinite=True)
    together = dict((p.label, o) for p, o in v.validate_partitions(parts, SUITE, tmp_path / "window"))
    bad = together[BAD_DAY.isoformat()]
    assert not bad.success and ("retrainer_numeric_values_finite", "total_charges", "critical") in _failed(bad)
    assert all(together[d.isoformat()].success for d in DAYS if d != BAD_DAY)


def test_stacks_hold_at_most_chunk_rows(tmp_path):
    parts = _partitions(tmp_path)
    outcomes = list(v.validate_partitions(parts, SUITE, tmp_path / "window", build_docs=False, chunk_rows=ROWS))
    for part, outcome in outcomes:
        report = json.loads((part.report_dir / "validation.json").read_text())
        assert outcome.success and "rows_run" not in report["gx_result"]  # each one validated alone


def test_partitions_named_alone_keep_their_own_full_report_and_docs_in_order(tmp_path):
    parts = _partitions(tmp_path)
    outcomes = list(v.validate_partitions(parts, SUITE, tmp_path / "window", alone={DAYS[-1].isoformat()}))
    assert [p.label for p, _ in outcomes] == [p.label for p in parts]
    last, outcome = outcomes[-1]
    report = json.loads((last.report_dir / "validation.json").read_text())
    assert outcome.success and "rows_run" not in report["gx_result"]
    assert outcome.data_docs_index == str(last.report_dir / "data_docs" / "index.html")
    first_report = json.loads((parts[0].report_dir / "validation.json").read_text())
    assert "rows_run" in first_report["gx_result"]


def test_stack_groups_fill_to_the_row_limit_and_keep_the_alone_ones_apart() -> None:
    from retrainer.validate.window import stack_groups

    labels = ["d1", "d2", "d3", "d4", "d5"]
    assert stack_groups([400, 500, 200, 900, 100], labels, 1000, ()) == [[0, 1], [2], [3, 4]]
    assert stack_groups([400, 500, 200, 900, 100], labels, 1000, {"d2"}) == [[0], [1], [2], [3, 4]]
    assert stack_groups([2000, 10], labels[:2], 1000, ()) == [[0], [1]]


def test_partitions_are_read_one_stack_at_a_time_into_the_groups_stack_groups_gives(tmp_path, monkeypatch) -> None:
    from retrainer.validate import window

    parts = _partitions(tmp_path)
    reads: list[str] = []
    released: list[list[str]] = []
    real_read = window.read_partition
    monkeypatch.setattr(window, "read_partition", lambda path: reads.append(str(path)) or real_read(path))
    for chunk_rows, alone in ((2 * ROWS, ()), (3 * ROWS, {DAYS[1].isoformat()}), (10 * ROWS, {DAYS[-1].isoformat()})):
        reads.clear(), released.clear()
        outcomes = list(window.validate_partitions(parts, SUITE, tmp_path / "window", build_docs=False,
                                                   chunk_rows=chunk_rows, alone=alone,
                                                   after_each=lambda: released.append(list(reads))))
        assert [p.label for p, _ in outcomes] == [p.label for p in parts] and all(o.success for _, o in outcomes)
        groups = window.stack_groups([ROWS] * len(parts), [p.label for p in parts], chunk_rows, alone)
        # After each stack exactly its partitions (and those before) have been read: never the next one.
        assert released == [[str(parts[i].path) for group in groups[:n + 1] for i in group] for n in range(len(groups))]
        assert len(groups) > 1
