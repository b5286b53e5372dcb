"""The fast drift path gives Evidently's answers: same method, threshold, score and decision per column.

Every comparison runs the real Evidently 0.7 ``Report([DataDriftPreset])`` on the same data.
"""

from __future__ import annotations

import typing

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from bench.drift_cases import CASES, drift_case
from retrainer import drift
from retrainer.config import DriftMethod

ROWS = 50_000


@pytest.fixture(scope="module")
def cases():
    return {name: drift_case(name, ROWS) for name in CASES}


def _specs(case, **overrides):
    return drift.column_specs(case.numeric, case.categorical, **overrides)


def _assert_same_answers(fast: drift.DriftTable, full: drift.DriftTable) -> None:
    by_column = full.by_column()
    assert [c.column for c in fast.columns] == [c.column for c in full.columns]
    for ours in fast.columns:
        theirs = by_column[ours.column]
        assert theirs.method in (ours.method, ours.method_label), ours.column
        assert ours.threshold == pytest.approx(theirs.threshold, abs=0), ours.column
        assert ours.score == pytest.approx(theirs.score, rel=1e-9, abs=1e-12), ours.column
        assert ours.drifted == theirs.drifted, (ours.column, ours.score, theirs.score)
    assert fast.drifted_share == full.drifted_share


def test_the_fast_methods_and_the_config_match_the_installed_evidently():
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests
    from evidently.legacy.core import ColumnType

    for name, (label, threshold) in drift.FAST_METHODS.items():
        test = _registered_stat_tests[name][ColumnType.Numerical]
        assert (test.display_name, test.default_threshold) == (label, threshold)
    tabular = {
        name for name, by_type in _registered_stat_tests.items()
        if set(by_type) & {ColumnType.Numerical, ColumnType.Categorical} and not name.endswith(drift.FULL_DATA_SUFFIX)
    }
    assert set(typing.get_args(DriftMethod)) == tabular


@pytest.mark.parametrize("name", CASES)
def test_every_column_decision_agrees_with_evidently_on_the_full_data(cases, name):
    case = cases[name]
    specs = _specs(case)
    profile = drift.ReferenceProfile.from_frame(case.reference, specs)
    fast = drift.drift_table(profile, case.current, specs, drift_share=0.2, workers=2)
    full = drift.evidently_drift(case.reference, case.current, specs, drift_share=0.2)

    _assert_same_answers(fast, full)
    assert {c.column for c in fast.drifted} >= case.expected
    certain = set(case.columns) - case.near
    assert {c.column for c in fast.drifted} & certain == case.expected
    assert all(c.computed_by == "exact" for c in fast.columns)


def test_overrides_and_methods_without_an_exact_version_use_evidentlys_function(cases):
    case = cases["abrupt"]
    specs = _specs(
        case,
        methods={"tenure_months": "psi", "region": "chisquare", "data_usage_gb": "jensenshannon", "syn_flag": "wasserstein"},
        thresholds={"monthly_charges": 1.5, "syn_segment": 0.25, "region": 0.01},
    )
    profile = drift.ReferenceProfile.from_frame(case.reference, specs)
    fast = drift.drift_table(profile, case.current, specs, drift_share=0.3, reference_frame=lambda: case.reference)
    full = drift.evidently_drift(case.reference, case.current, specs, drift_share=0.3)

    _assert_same_answers(fast, full)
    by_column = fast.by_column()
    # psi, chi-square and a binned Jensen-Shannon are not computed here: Evidently's own function runs.
    assert {c for c, r in by_column.items() if r.computed_by == "evidently"} == {"tenure_months", "region", "data_usage_gb"}
    assert by_column["monthly_charges"].drifted is False  # its threshold was raised to 1.5
    assert by_column["syn_segment"].drifted is False


def test_a_small_reference_uses_evidentlys_p_value_tests(cases):
    case = cases["abrupt"]
    reference = case.reference.head(800)
    specs = _specs(case)
    profile = drift.ReferenceProfile.from_frame(reference, specs)
    fast = drift.drift_table(profile, case.current, specs, drift_share=0.2, reference_frame=lambda: reference)
    full = drift.evidently_drift(reference, case.current, specs, drift_share=0.2)

    _assert_same_answers(fast, full)
    assert {c.method for c in fast.columns} <= {"ks", "chisquare", "z"}


def test_a_score_at_its_threshold_is_decided_by_evidentlys_own_function(cases):
    case = cases["near_threshold"]
    specs = _specs(case)
    profile = drift.ReferenceProfile.from_frame(case.reference, specs)
    exact = drift.drift_table(profile, case.current, specs, 0.2).by_column()
    at_threshold = {"syn_normal_a": exact["syn_normal_a"].score, "syn_segment": exact["syn_segment"].score}
    specs = _specs(case, thresholds=at_threshold)

    fast = drift.drift_table(profile, case.current, specs, 0.2, reference_frame=lambda: case.reference)
    full = drift.evidently_drift(case.reference, case.current, specs, 0.2)

    _assert_same_answers(fast, full)
    # Summation order makes our score and scipy's differ in the last bits, which can land on either
    # side of a threshold equal to the score: such columns are left to Evidently's own function.
    for column in at_threshold:
        assert fast.by_column()[column].computed_by == "evidently"


def test_arrow_input_and_a_saved_profile_give_the_same_answers(cases, tmp_path):
    case = cases["abrupt"]
    specs = _specs(case)
    profile = drift.ReferenceProfile.from_frame(pa.Table.from_pandas(case.reference), specs, meta={"champion": "3"})
    profile.save(tmp_path / "ref")
    loaded = drift.ReferenceProfile.load(tmp_path / "ref")
    assert loaded.meta == {"champion": "3"} and loaded.rows == ROWS

    from_pandas = drift.drift_table(drift.ReferenceProfile.from_frame(case.reference, specs), case.current, specs, 0.2)
    from_arrow = drift.drift_table(loaded, pa.Table.from_pandas(case.current), specs, 0.2)
    assert [c.to_dict() for c in from_arrow.columns] == [c.to_dict() for c in from_pandas.columns]


def test_the_report_shows_the_full_data_answers_while_plotting_a_sample(cases, tmp_path):
    case = cases["near_threshold"]
    specs = _specs(case)
    profile = drift.ReferenceProfile.from_frame(case.reference, specs)
    table = drift.drift_table(profile, case.current, specs, 0.2)
    ref_sample = drift.stratified_sample(case.reference, 2_000, seed=1)
    cur_sample = drift.stratified_sample(case.current, 2_000, seed=2)

    snapshot = drift.drift_report(ref_sample, cur_sample, table, specs, metadata={"as_of": "2026-03-31"})
    shown = drift.snapshot_table(snapshot, specs, 0.2)
    for ours, reported in zip(table.columns, shown.columns, strict=True):
        assert (reported.column, reported.score, reported.drifted) == (ours.column, ours.score, ours.drifted)
        assert reported.threshold == ours.threshold
    # The same samples on their own would answer differently near the threshold.
    sampled = drift.evidently_drift(ref_sample, cur_sample, specs, 0.2)
    assert [c.score for c in sampled.columns] != [c.score for c in table.columns]

    drift.save_report(snapshot, tmp_path / "report.html", tmp_path / "report.json")
    assert "on all rows" in (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "syn_normal_b" in (tmp_path / "report.json").read_text(encoding="utf-8")


def test_bad_columns_are_named():
    reference = pd.DataFrame({"x": np.arange(2000.0), "c": ["a", "b"] * 1000})
    specs = drift.column_specs(["x"], ["c"])
    profile = drift.ReferenceProfile.from_frame(reference, specs)
    with pytest.raises(drift.DriftInputError, match="'x' is not in the data"):
        drift.drift_table(profile, reference[["c"]], specs, 0.5)
    with pytest.raises(drift.DriftInputError, match="'x' has no non-null values in the current data"):
        drift.drift_table(profile, reference.assign(x=np.nan), specs, 0.5)
    with pytest.raises(drift.DriftInputError, match="numeric column 'x' holds non-numeric values"):
        drift.drift_table(profile, reference.assign(x="n/a"), specs, 0.5)


def test_stratified_sample_is_proportional_seeded_and_exact_in_size():
    frame = pd.DataFrame({"day": ["d1"] * 6000 + ["d2"] * 3000 + ["d3"] * 1000, "v": np.arange(10_000)})
    sample = drift.stratified_sample(frame, 1000, seed=5, by="day")
    assert len(sample) == 1000
    assert sample["day"].value_counts().to_dict() == {"d1": 600, "d2": 300, "d3": 100}
    assert sample.equals(drift.stratified_sample(pa.Table.from_pandas(frame), 1000, seed=5, by="day"))
    assert not sample.equals(drift.stratified_sample(frame, 1000, seed=6, by="day"))
    assert len(drift.stratified_sample(frame, 50_000, seed=5)) == 10_000


def test_summary_line_lists_drifted_columns_with_scores_and_the_decision():
    columns = [
        drift.ColumnDrift("a", "num", "wasserstein", "W", 0.1, 0.31, True, "exact", 10, 10),
        drift.ColumnDrift("b", "cat", "jensenshannon", "JS", 0.1, 0.02, False, "exact", 10, 10),
        drift.ColumnDrift("c", "num", "wasserstein", "W", 0.1, 0.52, True, "exact", 10, 10),
    ]
    line = drift.summary_line(drift.DriftTable(columns, 0.5), "retrain")
    assert line == "drift: 2/3 columns drifted (share 0.67); drifted: c=0.520, a=0.310; decision: retrain"
