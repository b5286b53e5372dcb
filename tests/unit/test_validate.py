"""The raw-data gate: the churn_raw suite against small hand-made partitions."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrainer import validate as v

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "validation_suites" / "churn_raw.json"
DAY = datetime(2026, 1, 15)
INTERVAL = {"interval_start": DAY, "interval_end": DAY + timedelta(days=1)}


def clean_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """One day's partition in the generator's schema, inside every critical and warning band."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(10**8, size=n, replace=False)
    df = pd.DataFrame(
        {
            "customer_id": [f"C{i:08d}" for i in ids],
            "event_time": pd.Timestamp(DAY) + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s"),
            "tenure_months": rng.integers(0, 121, n),
            "monthly_charges": rng.uniform(15, 150, n),
            "total_charges": rng.uniform(0, 15_000, n),
            "num_support_calls": rng.integers(0, 21, n),
            "avg_session_minutes": rng.uniform(0, 240, n),
            "days_since_last_login": rng.integers(0, 366, n),
            "num_products": rng.integers(1, 7, n),
            "satisfaction_score": rng.uniform(1, 10, n),
            "late_payments_12m": rng.integers(0, 13, n),
            "data_usage_gb": rng.uniform(0, 500, n),
            "contract_type": rng.choice(["month-to-month", "one-year", "two-year"], n),
            "payment_method": rng.choice(
                ["credit_card", "bank_transfer", "electronic_check", "mailed_check"], n
            ),
            "region": rng.choice(["north", "south", "east", "west", "central"], n),
            "plan_tier": rng.choice(["basic", "standard", "premium"], n),
            "churned": (rng.random(n) < 0.25).astype("int64"),
        }
    )
    # Normal missingness, fixed counts so the null-rate checks are deterministic.
    df.loc[df.index[: n // 50], "total_charges"] = np.nan
    df.loc[df.index[-(n // 20) :], "satisfaction_score"] = np.nan
    return df


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    """validate_frame with the suite and interval bound; pays the GX import once per module."""
    base = tmp_path_factory.mktemp("validate")
    counter = iter(range(1_000))

    def run(df: pd.DataFrame, **kwargs) -> v.ValidationOutcome:
        kwargs.setdefault("build_docs", False)  # Data Docs are checked once; they cost ~0.3 s a run
        report_dir = base / f"run{next(counter)}"
        return v.validate_frame(df, SUITE, report_dir, partition_label=str(report_dir), **INTERVAL, **kwargs)

    return run


def only(outcome: v.ValidationOutcome, expectation_type: str, column: str | None) -> v.FailedExpectation:
    hits = [f for f in outcome.failed if f.expectation_type == expectation_type and f.column == column]
    assert hits, f"{expectation_type} on {column} not among failures:\n{outcome.message()}"
    assert expectation_type in outcome.message()
    return hits[0]


def test_clean_frame_passes(gate):
    outcome = gate(clean_frame())
    assert outcome.success, outcome.message()
    assert outcome.failed == []
    assert outcome.evaluated == len(json.loads(SUITE.read_text())["expectations"])
    assert outcome.suite_name == "churn_raw"


def test_report_json_and_data_docs_written(gate):
    outcome = gate(clean_frame(), build_docs=True)
    report = json.loads(Path(outcome.report_json).read_text())
    assert Path(outcome.report_json).name == "validation.json"
    assert report["success"] is True and report["run_id"] == outcome.run_id
    assert report["gx_result"]["statistics"]["evaluated_expectations"] == outcome.evaluated
    assert report["suite_parameters"]["interval_start"] == DAY.isoformat()
    assert not list(Path(outcome.report_json).parent.glob(".*.tmp"))  # the temp file was renamed
    index = Path(outcome.data_docs_index)
    assert index.name == "index.html" and index.is_file()
    assert index.parent == Path(outcome.report_json).parent / "data_docs"
    assert any(index.parent.glob("validations/**/*.html"))


def test_missing_column(gate):
    outcome = gate(clean_frame().drop(columns=["churned"]))
    assert not outcome.success
    f = only(outcome, "expect_table_columns_to_match_set", None)
    assert f.unexpected_examples == ["missing: churned"]
    errored = [x for x in outcome.failed if x.column == "churned"]
    assert errored and all(x.error == "column 'churned' is missing" for x in errored)


def test_strings_in_numeric_column(gate):
    df = clean_frame()
    df["monthly_charges"] = df["monthly_charges"].astype(object)
    df.loc[[3, 7, 9], "monthly_charges"] = ["abc", "12,5", "abc"]
    outcome = gate(df)
    assert not outcome.success
    f = only(outcome, "expect_column_values_to_be_in_type_list", "monthly_charges")
    assert f.severity == "critical"
    assert f.unexpected_examples == ["abc", "12,5"] and f.unexpected_count == 3
    assert f.observed_value == "object"
    assert "abc" in outcome.message()


def test_int_column_arriving_as_float(gate):
    df = clean_frame()
    df["tenure_months"] = df["tenure_months"].astype("float64")
    f = only(gate(df), "expect_column_values_to_be_in_type_list", "tenure_months")
    assert f.observed_value == "float64"


def test_out_of_range(gate):
    df = clean_frame()
    df.loc[[1, 2], "tenure_months"] = [-1, 500]
    outcome = gate(df)
    f = only(outcome, "expect_column_values_to_be_between", "tenure_months")
    assert sorted(f.unexpected_examples) == [-1, 500] and f.unexpected_count == 2
    assert f.kwargs["min_value"] == 0 and f.kwargs["max_value"] == 120
    assert not outcome.success


def test_non_finite_numbers_fail_the_gate_whatever_the_suite_says(gate):
    # total_charges has only a lower bound in the suite: +inf satisfies it, the structural rule does not.
    suite = json.loads(SUITE.read_text())
    bounds = [e["kwargs"] for e in suite["expectations"]
              if e["type"] == "expect_column_values_to_be_between" and e["kwargs"].get("column") == "total_charges"]
    assert bounds and all("max_value" not in b for b in bounds)
    df = clean_frame()
    df.loc[[4, 8, 15], "total_charges"] = [np.inf, np.inf, -np.inf]
    outcome = gate(df)
    assert not outcome.success
    f = only(outcome, "retrainer_numeric_values_finite", "total_charges")
    assert f.severity == "critical" and f.unexpected_count == 3 and f.unexpected_examples == ["-inf", "inf"]
    report = json.loads(Path(outcome.report_json).read_text())
    assert report["success"] is False and report["critical_failures"] >= 1
    assert gate(clean_frame()).success  # NaN is a missing value, judged by the suite's null tolerance


def test_unseen_category(gate):
    df = clean_frame()
    df.loc[4, "plan_tier"] = "gold"
    outcome = gate(df)
    f = only(outcome, "expect_column_values_to_be_in_set", "plan_tier")
    assert f.unexpected_examples == ["gold"] and f.unexpected_count == 1
    assert "gold" in outcome.message() and not outcome.success


def test_duplicate_ids(gate):
    df = clean_frame()
    df.loc[9, "customer_id"] = df.loc[8, "customer_id"]
    outcome = gate(df)
    f = only(outcome, "expect_column_values_to_be_unique", "customer_id")
    assert f.unexpected_examples == [df.loc[8, "customer_id"]] and f.unexpected_count == 2
    assert not outcome.success


def test_nulls_above_tolerance(gate):
    df = clean_frame()
    df.loc[: len(df) // 5, "total_charges"] = np.nan  # ~20% against a 5% allowance
    outcome = gate(df)
    f = only(outcome, "expect_column_values_to_not_be_null", "total_charges")
    assert f.kwargs["mostly"] == 0.95 and f.unexpected_count == df["total_charges"].isna().sum()
    assert f.unexpected_examples == [None]
    assert not outcome.success


def test_nulls_within_tolerance_pass(gate):
    assert gate(clean_frame()).success  # 2% and 5% NaN are normal


def test_event_time_outside_interval(gate):
    df = clean_frame()
    df.loc[3, "event_time"] = pd.Timestamp(DAY + timedelta(days=1))  # the end bound is exclusive
    df.loc[4, "event_time"] = pd.Timestamp(DAY - timedelta(seconds=1))
    outcome = gate(df)
    f = only(outcome, "expect_column_values_to_be_between", "event_time")
    assert sorted(f.unexpected_examples) == ["2026-01-14T23:59:59", "2026-01-16T00:00:00"]
    assert f.kwargs["min_value"] == "2026-01-15T00:00:00"  # the parameter's value in this run
    assert not outcome.success


def test_aware_interval_bounds_are_converted_to_naive_utc(gate, tmp_path):
    start = datetime(2026, 1, 15, 1, tzinfo=timezone(timedelta(hours=1)))  # 00:00 UTC
    outcome = v.validate_frame(
        clean_frame(),
        SUITE,
        tmp_path,
        partition_label="aware",
        interval_start=start,
        interval_end=start + timedelta(days=1),
        build_docs=False,
    )
    assert outcome.success, outcome.message()


def test_empty_frame(gate):
    outcome = gate(clean_frame().iloc[0:0])
    assert not outcome.success
    f = only(outcome, "expect_table_row_count_to_be_between", None)
    assert f.unexpected_examples == [0] and f.observed_value == 0


def test_warning_only_failure_keeps_success(gate):
    df = clean_frame()
    df["churned"] = 0
    df.loc[:2, "churned"] = 1  # 1% base rate: implausible but not a broken feed
    outcome = gate(df)
    assert outcome.success, outcome.message()
    assert outcome.critical() == []
    f = only(outcome, "expect_column_mean_to_be_between", "churned")
    assert f.severity == "warning" and outcome.warnings() == [f]
    assert f.unexpected_examples == [pytest.approx(0.01)]
    report = json.loads(Path(outcome.report_json).read_text())
    assert report["success"] is True and report["warning_failures"] == 1


def test_summary_result_format_skips_the_rerun(gate):
    df = clean_frame()
    df.loc[4, "region"] = "mars"
    f = only(gate(df, result_format="SUMMARY"), "expect_column_values_to_be_in_set", "region")
    assert f.unexpected_examples == ["mars"]


def test_partition_round_trip_and_truncated_parquet(tmp_path):
    good = tmp_path / "dt=2026-01-15" / "part.parquet"
    good.parent.mkdir()
    clean_frame().to_parquet(good)
    outcome = v.validate_partition(good, SUITE, tmp_path / "report", **INTERVAL, build_docs=False)
    assert outcome.success and outcome.partition == str(good)
    assert "dt=2026-01-15" in outcome.run_id

    bad = tmp_path / "truncated.parquet"
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(v.PartitionUnreadable, match="truncated.parquet") as info:
        v.validate_partition(bad, SUITE, tmp_path / "r2", **INTERVAL)
    assert info.value.path == str(bad) and isinstance(info.value, ValueError)

    with pytest.raises(v.PartitionUnreadable, match="no such file"):
        v.validate_partition(tmp_path / "absent.parquet", SUITE, tmp_path / "r3", **INTERVAL)


def test_suite_loads_with_severities():
    suite = v.load_suite(SUITE)
    severities = [e.meta["severity"] for e in suite.expectations]
    assert set(severities) == {"critical", "warning"}
    assert all(e.severity.value == e.meta["severity"] for e in suite.expectations)
    assert set(suite.suite_parameter_options) == {"interval_start", "interval_end"}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read"),
        ("{not json", "not valid JSON"),
        ('{"name": "s", "expectations": [], "colour": 1}', "unknown suite keys"),
        ('{"name": "s", "expectations": []}', "non-empty list"),
        (
            '{"name": "s", "expectations": [{"type": "expect_column_values_to_be_betweeen",'
            ' "kwargs": {"column": "a", "min_value": 0}, "meta": {"severity": "critical"}}]}',
            "not found",
        ),
        (
            '{"name": "s", "expectations": [{"type": "expect_column_values_to_be_between",'
            ' "kwargs": {"column": "a"}, "meta": {"severity": "critical"}}]}',
            "invalid expectation",
        ),
        (
            '{"name": "s", "expectations": [{"type": "expect_column_values_to_not_be_null",'
            ' "kwargs": {"column": "a"}, "meta": {"severity": "fatal"}}]}',
            "meta.severity",
        ),
    ],
)
def test_bad_suite_raises_value_error_naming_the_file(tmp_path, content, problem):
    path = tmp_path / "suite.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=problem) as info:
        v.load_suite(path)
    assert str(path) in str(info.value)


# --- the gate's speed-ups must not change what it sees or leave anything behind -------------------


def test_partition_text_is_read_as_arrow_strings_and_text_in_a_number_column_fails(tmp_path):
    df = clean_frame()
    df["total_charges"] = df["total_charges"].map(lambda x: None if pd.isna(x) else f"{x:.2f}").astype(object)
    df.loc[[5, 6], "total_charges"] = "n/a"  # a badly parsed CSV upstream
    path = tmp_path / "part.parquet"
    df.to_parquet(path)

    read = v.read_partition(path)
    assert str(read["region"].dtype) == "string" and read["region"].dtype.storage == "pyarrow"
    assert read["region"].tolist() == df["region"].tolist()
    assert read["tenure_months"].dtype == "int64"

    outcome = v.validate_partition(path, SUITE, tmp_path / "report", **INTERVAL, build_docs=False)
    assert not outcome.success
    f = only(outcome, "expect_column_values_to_be_in_type_list", "total_charges")
    assert f.observed_value == "string" and f.unexpected_examples == ["n/a"]


def test_gx_settings_are_restored_and_the_callers_frame_untouched(gate):
    from great_expectations.execution_engine import pandas_execution_engine as engine

    df = clean_frame()
    df["region"] = df["region"].astype("string")  # string[python]: converted for GX, not for the caller
    before = df.copy()
    outcome = gate(df)
    assert outcome.success, outcome.message()
    pd.testing.assert_frame_equal(df, before)
    assert df["region"].dtype.storage == "python"
    assert engine.HASH_THRESHOLD == 1e9  # lowered only while the gate runs
    assert pd.get_option("mode.copy_on_write") is False
    meta = json.loads(Path(outcome.report_json).read_text())["gx_result"]["meta"]
    assert "ge_load_time" in meta["batch_markers"]
    assert "pandas_data_fingerprint" not in meta["batch_markers"]  # the whole-frame MD5 was skipped


def test_data_docs_on_failure_only(gate):
    clean = gate(clean_frame(), build_docs="on_failure")
    assert clean.success and clean.data_docs_index is None
    assert not (Path(clean.report_json).parent / "data_docs").exists()

    df = clean_frame()
    df.loc[4, "plan_tier"] = "gold"
    failed = gate(df, build_docs="on_failure")
    assert not failed.success and Path(failed.data_docs_index).is_file()

    with pytest.raises(ValueError, match="build_docs"):
        gate(clean_frame(), build_docs="sometimes")


def test_release_lets_go_of_the_frame_gx_keeps_with_its_last_context(tmp_path):
    import weakref

    from retrainer.validate.gx import arrow_strings, batches_released

    with batches_released() as release:
        df = arrow_strings(clean_frame())  # text already Arrow-backed: GX's batch is this very frame
        kept = weakref.ref(df)
        assert v.validate_frame(df, SUITE, tmp_path / "r", partition_label="p", build_docs=False, **INTERVAL).success
        del df
        release()
        assert kept() is None  # nothing holds the batch's frame while the next one is read


def test_a_failed_validations_message_leads_with_its_critical_failures_and_its_short_reason_keeps_them():
    from retrainer.quarantine import short_reason
    from retrainer.validate.results import FailedExpectation

    def failed(column: str, severity: str) -> FailedExpectation:
        return FailedExpectation("expect_column_values_to_not_be_null", column, {"column": column, "mostly": 0.95},
                                 severity, [], 10)

    warnings = [failed(f"warn_{i}", "warning") for i in range(4)]
    outcome = v.ValidationOutcome(success=False, partition="dt=2013-12-10", suite_name="raw", evaluated=20,
                                  failed=[*warnings[:2], failed("distance", "critical"), *warnings[2:]],
                                  report_json="r.json", data_docs_index=None, run_id="run")
    listed = [line for line in outcome.message().splitlines() if line.startswith("  - ")]
    assert listed[0].startswith("  - [critical] expect_column_values_to_not_be_null on distance")
    assert [line.split(" on ")[1].split()[0] for line in listed[1:]] == ["warn_0", "warn_1", "warn_2", "warn_3"]
    assert short_reason(outcome.message()).startswith("[critical] expect_column_values_to_not_be_null on distance")
