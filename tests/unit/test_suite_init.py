"""Suite bootstrap: profile a reference sample into a suite the gate runs, then judge new days with it."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrainer import cli
from retrainer import validate as v
from retrainer.datagen import IncidentSpec, generate_day, generate_range
from retrainer.suite_init import profile_suite, read_reference_file, write_suite
from tests.conftest import seed

SEED = 7
REFERENCE = (date(2026, 1, 1), date(2026, 1, 10))
ROWS = 1_000
ROLES = {"entity_id": "customer_id", "event_time": "event_time", "label": "churned"}


def by(suite: dict, kind: str, column: str | None = None, severity: str | None = None) -> list[dict]:
    return [
        e
        for e in suite["expectations"]
        if e["type"] == kind
        and e["kwargs"].get("column") == column
        and (severity is None or e["meta"]["severity"] == severity)
    ]


def one(suite: dict, kind: str, column: str | None = None, severity: str | None = None) -> dict:
    hits = by(suite, kind, column, severity)
    assert len(hits) == 1, f"{kind} on {column}: {hits}"
    return hits[0]["kwargs"]


@pytest.fixture(scope="module")
def churn_suite(tmp_path_factory) -> Path:
    reference = generate_range(*REFERENCE, ROWS, SEED)
    suite = profile_suite(reference, name="churn_profiled", **ROLES)
    return write_suite(suite, tmp_path_factory.mktemp("suites") / "churn_profiled.json")


@pytest.fixture(scope="module")
def gate(churn_suite, tmp_path_factory):
    base = tmp_path_factory.mktemp("gate")
    counter = iter(range(1_000))

    def run(frame: pd.DataFrame, day: date) -> v.ValidationOutcome:
        start = datetime.combine(day, datetime.min.time())
        return v.validate_frame(
            frame,
            churn_suite,
            base / f"run{next(counter)}",
            partition_label=f"dt={day}",
            interval_start=start,
            interval_end=start + timedelta(days=1),
            build_docs=False,
        )

    return run


# --- the generated suite against the gate ------------------------------------------------------


def test_generated_suite_loads_with_the_gate(churn_suite):
    suite = v.load_suite(churn_suite)
    assert suite.name == "churn_profiled"
    assert {e.meta["severity"] for e in suite.expectations} == {"critical", "warning"}
    assert set(suite.suite_parameter_options) == {"interval_start", "interval_end"}


@pytest.mark.parametrize("day", [REFERENCE[0], REFERENCE[1]])
def test_reference_days_pass(gate, day):
    outcome = gate(generate_day(day, ROWS, SEED), day)
    assert outcome.success and outcome.failed == [], outcome.message()


@pytest.mark.parametrize("day", [date(2026, 2, 3), date(2026, 3, 17)])
def test_clean_days_after_the_reference_pass(gate, day):
    outcome = gate(generate_day(day, ROWS, SEED), day)
    assert outcome.success and outcome.critical() == [], outcome.message()


@pytest.mark.parametrize(
    ("kind", "column", "expected"),
    [
        ("unseen_category", "region", ("expect_column_values_to_be_in_set", "region")),
        ("out_of_range", "tenure_months", ("expect_column_values_to_be_between", "tenure_months")),
        ("missing_column", "tenure_months", ("expect_table_columns_to_match_set", None)),
        ("duplicate_keys", "customer_id", ("expect_column_values_to_be_unique", "customer_id")),
        ("outside_interval", "event_time", ("expect_column_values_to_be_between", "event_time")),
    ],
)
def test_incident_days_fail(gate, kind, column, expected):
    day = date(2026, 2, 3)
    frame = generate_day(day, ROWS, SEED, incidents=[IncidentSpec(day, kind, column=column, fraction=0.02)])
    outcome = gate(frame, day)
    assert not outcome.success
    assert expected in {(f.expectation_type, f.column) for f in outcome.critical()}, outcome.message()


# --- what the profile writes down --------------------------------------------------------------


def test_structure_roles_and_severities():
    reference = generate_range(date(2026, 1, 1), date(2026, 1, 3), 200, SEED)
    suite = profile_suite(reference, name="s", **ROLES)
    assert one(suite, "expect_table_columns_to_match_set") == {
        "column_set": list(reference.columns),
        "exact_match": True,
    }
    # From the per-day counts (200 a day): critical below a tenth of the smallest day or above 10x the largest.
    assert one(suite, "expect_table_row_count_to_be_between", severity="critical") == {
        "min_value": 20,
        "max_value": 2_000,
    }
    assert one(suite, "expect_table_row_count_to_be_between", severity="warning") == {
        "min_value": 100,
        "max_value": 400,
    }
    assert one(suite, "expect_column_values_to_be_unique", "customer_id") == {"column": "customer_id"}
    assert one(suite, "expect_column_value_lengths_to_be_between", "customer_id") == {
        "column": "customer_id",
        "min_value": 9,
        "max_value": 9,
    }
    assert one(suite, "expect_column_values_to_be_between", "event_time")["min_value"] == {
        "$PARAMETER": "interval_start"
    }
    assert one(suite, "expect_column_values_to_be_in_set", "churned") == {"column": "churned", "value_set": [0, 1]}
    assert one(suite, "expect_column_values_to_be_in_set", "plan_tier")["value_set"] == [
        "basic",
        "premium",
        "standard",
    ]
    assert one(suite, "expect_column_values_to_be_in_type_list", "tenure_months")["type_list"][0] == "int64"
    # Text carries no per-value type check; structure, types, ranges and sets are critical, means warnings.
    assert not by(suite, "expect_column_values_to_be_in_type_list", "region")
    for e in suite["expectations"]:
        # A missing label is an unlabelled row: a warning with its share, never a critical failure.
        label = e["kwargs"].get("column") == "churned" and "not_be_null" in e["type"]
        expected = "warning" if label or e["type"].startswith(("expect_column_mean", "expect_column_proportion")) else None
        if expected:
            assert e["meta"]["severity"] == expected, e
        elif e["type"] != "expect_table_row_count_to_be_between":
            assert e["meta"]["severity"] == "critical", e
        assert e["meta"]["notes"]
    assert suite["meta"]["roles"] == ROLES
    json.dumps(suite, allow_nan=False)  # plain JSON throughout


def test_ranges_widen_by_margin_keep_ints_and_the_sign():
    frame = pd.DataFrame(
        {
            "count": np.array([0, 5, 10], dtype="int64"),
            "signed": [-5.0, 0.0, 5.0],
            "price": [10.0, 20.0, 30.0],
        }
    )
    suite = profile_suite(frame, name="s", margin=0.25)
    count = one(suite, "expect_column_values_to_be_between", "count")
    assert count == {"column": "count", "min_value": 0, "max_value": 13}  # 10 + 2.5 rounded up; never < 0
    assert all(isinstance(count[k], int) for k in ("min_value", "max_value"))
    assert one(suite, "expect_column_values_to_be_between", "signed") == {
        "column": "signed",
        "min_value": -7.5,
        "max_value": 7.5,
    }
    assert one(suite, "expect_column_values_to_be_between", "price") == {
        "column": "price",
        "min_value": 5.0,
        "max_value": 35.0,
    }
    mean = one(suite, "expect_column_mean_to_be_between", "count")
    assert mean == {"column": "count", "min_value": 2.5, "max_value": 7.5}


def test_null_tolerance_follows_the_observed_rate():
    values = [float(i) for i in range(100)]
    frame = pd.DataFrame({"some_missing": [np.nan] * 10 + values[10:], "complete": values})
    suite = profile_suite(frame, name="s")
    # 10% observed: critical above 21% (2 x rate + 1 point), warning above 15.5%.
    assert one(suite, "expect_column_values_to_not_be_null", "some_missing") == {
        "column": "some_missing",
        "mostly": 0.79,
    }
    assert one(suite, "expect_column_proportion_of_non_null_values_to_be_between", "some_missing") == {
        "column": "some_missing",
        "min_value": 0.845,
        "max_value": 1.0,
    }
    assert one(suite, "expect_column_values_to_not_be_null", "complete") == {"column": "complete"}


def test_categories_only_for_few_repeated_values():
    frame = pd.DataFrame(
        {
            "colour": ["red", "blue", "red", "green"] * 5,
            "code": [f"X{i:03d}" for i in range(20)],  # all distinct: an identifier, not a category
        }
    )
    suite = profile_suite(frame, name="s", max_categories=3)
    assert one(suite, "expect_column_values_to_be_in_set", "colour")["value_set"] == ["blue", "green", "red"]
    assert one(suite, "expect_column_value_lengths_to_be_between", "code") == {
        "column": "code",
        "min_value": 4,
        "max_value": 4,
    }
    fewer = profile_suite(frame, name="s", max_categories=2)
    assert not by(fewer, "expect_column_values_to_be_in_set", "colour")
    assert by(fewer, "expect_column_value_lengths_to_be_between", "colour")


def test_entity_uniqueness_is_judged_per_partition():
    day1, day2 = pd.Timestamp("2026-01-01 10:00"), pd.Timestamp("2026-01-02 10:00")
    across_days = pd.DataFrame({"id": ["a", "b", "a", "b"], "t": [day1, day1, day2, day2]})
    suite = profile_suite(across_days, name="s", entity_id="id", event_time="t")
    assert by(suite, "expect_column_values_to_be_unique", "id")

    within_day = pd.DataFrame({"id": ["a", "a", "b"], "t": [day1, day1, day2]})
    suite = profile_suite(within_day, name="s", entity_id="id", event_time="t")
    assert not by(suite, "expect_column_values_to_be_unique", "id")
    assert any("repeats within a partition" in note for note in suite["notes"])


def test_event_time_text_and_aware_timestamps_become_naive_utc():
    frame = pd.DataFrame({"t": ["2026-01-02T00:30:00+01:00", "2026-01-01T08:00:00+01:00"], "x": [1, 2]})
    suite = profile_suite(frame, name="s", event_time="t")
    assert one(suite, "expect_column_values_to_be_in_type_list", "t")["type_list"][0].startswith("datetime64")
    # Both rows fall on 2026-01-01 in UTC (local time would split them): one partition of two rows.
    assert one(suite, "expect_table_row_count_to_be_between", severity="warning")["max_value"] == 4


def test_sampling_is_seeded_and_recorded():
    frame = generate_day(date(2026, 1, 1), 2_000, SEED)
    a = profile_suite(frame, name="s", sample_rows=500, seed=1)
    b = profile_suite(frame, name="s", sample_rows=500, seed=1)
    assert a == b
    assert a["meta"]["reference"] == {"rows": 2_000, "profiled_rows": 500, "margin": 0.1, "seed": 1}


@pytest.mark.parametrize(
    ("frame", "kwargs", "problem"),
    [
        (pd.DataFrame({"x": []}), {}, "empty"),
        (pd.DataFrame({"x": [1]}), {"entity_id": "id"}, "entity_id column 'id' is not in"),
        (pd.DataFrame({"x": [1]}), {"margin": -0.1}, "margin"),
        (pd.DataFrame({"x": [1]}), {"name": " "}, "name"),
        (pd.DataFrame({"t": ["yesterday-ish"]}), {"event_time": "t"}, "not timestamps"),
    ],
)
def test_bad_input_is_named(frame, kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        profile_suite(frame, **{"name": "s", **kwargs})


# --- writing -----------------------------------------------------------------------------------


def test_write_suite_is_atomic_and_refuses_to_overwrite(tmp_path):
    suite = profile_suite(pd.DataFrame({"x": [1, 2, 3]}), name="s")
    target = tmp_path / "nested" / "s.json"
    assert write_suite(suite, target) == target
    assert json.loads(target.read_text()) == suite
    before = target.read_bytes()

    other = profile_suite(pd.DataFrame({"x": [7, 8, 9]}), name="s")
    with pytest.raises(FileExistsError, match="overwrite=True") as info:
        write_suite(other, target)
    assert str(target) in str(info.value)
    assert target.read_bytes() == before

    write_suite(other, target, overwrite=True)
    assert json.loads(target.read_text()) == other
    assert [p.name for p in target.parent.iterdir()] == ["s.json"]  # no temp file left behind


def test_read_reference_file_csv_and_parquet(tmp_path):
    frame = generate_day(date(2026, 1, 1), 50, SEED)
    frame.to_csv(tmp_path / "ref.csv", index=False)
    frame.to_parquet(tmp_path / "ref.parquet")
    from_csv = read_reference_file(tmp_path / "ref.csv", event_time="event_time")
    assert pd.api.types.is_datetime64_dtype(from_csv["event_time"])
    assert len(read_reference_file(tmp_path / "ref.parquet")) == 50
    (tmp_path / "ref.xlsx").write_text("x")
    with pytest.raises(ValueError, match="use CSV or Parquet"):
        read_reference_file(tmp_path / "ref.xlsx")
    with pytest.raises(FileNotFoundError, match="absent.csv"):
        read_reference_file(tmp_path / "absent.csv")


# --- the command line --------------------------------------------------------------------------


def test_cli_suite_init_from_a_file(make_project, tmp_path, capsys):
    params = make_project()
    reference = tmp_path / "reference.csv"
    generate_range(date(2026, 1, 1), date(2026, 1, 3), 200, SEED).to_csv(reference, index=False)
    args = ["--params", str(params), "suite", "init", "--file", str(reference), "--name", "churn_csv"]

    assert cli.main(args) == 0
    result = json.loads(capsys.readouterr().out)
    written = params.parent / "validation_suites" / "churn_csv.json"
    assert result["suite"] == str(written) and written.is_file()
    assert result["roles"] == ROLES  # taken from params.yaml's dataset section, present in the file
    assert v.load_suite(written).name == "churn_csv"

    assert cli.main(args) == 2  # never overwrites a suite someone may have reviewed
    assert "already exists" in capsys.readouterr().err
    assert cli.main([*args, "--force", "--label", ""]) == 0
    assert json.loads(capsys.readouterr().out)["roles"]["label"] is None


def test_cli_suite_init_from_the_source_table(make_project, capsys):
    params = make_project()
    seed(params, end=date(2026, 1, 5), days=3, rows_per_day=150)
    out = params.parent / "suites" / "events.json"
    args = ["--params", str(params), "suite", "init", "--table", "customer_events", "--out", str(out)]
    assert cli.main([*args, "--sample-rows", "300"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["rows"] == 300 and result["name"] == "customer_events"
    suite = json.loads(out.read_text())
    assert suite["meta"]["reference"]["source"] == "table customer_events"
    # The newest 300 rows: the last two days, complete.
    assert one(suite, "expect_table_row_count_to_be_between", severity="warning")["max_value"] == 300

    assert cli.main([*args, "--force", "--table", "no_such_table"]) == 2
    assert "does not exist" in capsys.readouterr().err


# --- fitting the suite to its sample: every day of the sample passes -----------------------------


def test_the_fitted_suite_passes_on_every_day_of_its_sample(tmp_path):
    from retrainer.run_context import day_interval
    from retrainer.suite_fit import changed_expectations, fit_suite, sample_days

    reference = generate_range(date(2026, 1, 1), date(2026, 1, 6), 300, SEED)
    days = reference["event_time"].dt.date
    bad = days == date(2026, 1, 4)
    # One day with far more missing values and missing labels than the sample's average.
    reference.loc[bad & (reference.index % 3 == 0), "monthly_charges"] = np.nan
    reference.loc[bad & (reference.index % 4 == 0), "churned"] = np.nan
    suite = profile_suite(reference, name="fit", sample_rows=600, **ROLES)
    label_checks = [e for e in suite["expectations"] if e["kwargs"].get("column") == "churned" and "null" in e["type"]]
    assert label_checks and {e["meta"]["severity"] for e in label_checks} == {"warning"}
    assert "unlabelled" in label_checks[0]["meta"]["notes"]

    changes = fit_suite(suite, reference, "event_time")
    changed = {(c["type"], c["column"], c["action"]) for c in changes}
    assert ("expect_column_values_to_not_be_null", "monthly_charges", "loosened") in changed, changes
    # A value beyond the range of the profiled third of the rows (600 of 1,800), on a day of the sample.
    assert any(kind == "expect_column_values_to_be_between" and action == "loosened"
               for kind, _, action in changed), changes
    assert not any(c["column"] == "churned" for c in changes)  # missing labels never fail the gate
    assert suite["meta"]["fitted"] == changes
    loosened = changed_expectations(changes, "loosened")
    assert "expect_column_values_to_not_be_null(monthly_charges) for 2026-01-04" in loosened, loosened
    assert suite["meta"]["structural_rules"][0]["type"] == "retrainer_numeric_values_finite"
    path = write_suite(suite, tmp_path / "fit.json")
    for n, (day, batch) in enumerate(sample_days(reference, "event_time")):
        start, end = day_interval(day)
        outcome = v.validate_frame(batch, path, tmp_path / f"day{n}", partition_label=f"dt={day}",
                                   interval_start=start, interval_end=end, build_docs=False)
        assert outcome.success, outcome.message()
    # Without the fitting, the day with many missing values fails the suite made from its own sample.
    unfitted = write_suite(profile_suite(reference, name="fit", sample_rows=600, **ROLES), tmp_path / "raw.json")
    start, end = day_interval(date(2026, 1, 4))
    outcome = v.validate_frame(reference[bad], unfitted, tmp_path / "unfitted", partition_label="dt=2026-01-04",
                               interval_start=start, interval_end=end, build_docs=False)
    assert not outcome.success


def test_cli_suite_init_leaves_out_a_day_the_sample_limit_cut_short(make_project, capsys):
    params = make_project()
    seed(params, end=date(2026, 1, 5), days=3, rows_per_day=150)
    out = params.parent / "suites" / "events.json"
    args = ["--params", str(params), "suite", "init", "--table", "customer_events", "--out", str(out)]
    assert cli.main([*args, "--sample-rows", "200"]) == 0  # the newest 150 rows and 50 of the day before
    result = json.loads(capsys.readouterr().out)
    assert result["rows"] == 150 and result["days_checked"] == 1
    assert one(json.loads(out.read_text()), "expect_table_row_count_to_be_between", severity="warning") == {
        "min_value": 75, "max_value": 300}


def test_an_expectation_changed_on_several_days_is_named_once_with_its_days():
    from retrainer.suite_fit import changed_expectations

    def change(day: str, column: str, action: str = "loosened") -> dict:
        return {"day": day, "type": "expect_column_values_to_not_be_null", "column": column, "action": action, "note": ""}

    changes = [change("2026-01-04", "dep_time"), change("2026-01-05", "arr_time"), change("2026-01-05", "dep_time"),
               change("2026-01-06", "arr_time", "downgraded"),
               *(change(f"2026-01-{d:02d}", "air_time") for d in range(10, 15))]
    assert changed_expectations(changes, "loosened") == [
        "expect_column_values_to_not_be_null(dep_time) for 2026-01-04, 2026-01-05",
        "expect_column_values_to_not_be_null(arr_time) for 2026-01-05",
        "expect_column_values_to_not_be_null(air_time) for 5 days (2026-01-10..2026-01-14)",
    ]
    assert changed_expectations(changes, "downgraded") == ["expect_column_values_to_not_be_null(arr_time) for 2026-01-06"]
