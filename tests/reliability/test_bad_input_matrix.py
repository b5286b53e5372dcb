"""The bad-input matrix: each bad batch goes through the real `training` DAG (`airflow dags test`).

Every case ends with a message naming the problem, no model version registered and the champion left
alone, and nothing lost. How a case ends depends on what is wrong:

* ``quarantined``: the batch fails the gate; all of it is kept in quarantine with its report;
* ``unreadable``: source values cannot be read as their column's type (a decimal comma in a REAL column,
  an event time stored as other text): all the day's rows are kept in quarantine as text, with a report;
* ``skipped``: an empty batch ends the run cleanly at ingest;
* ``refused``: the configuration is wrong (params file, suite file, source table): the run fails before
  any data is judged, and nothing is quarantined (the source rows are untouched).

Batches whose *schema* is wrong (a missing, renamed or extra column, text in a numeric column) cannot
live in the typed demo table, so each case writes its batch to a table of its own and runs with a
params file pointing the source at it; everything else (stores, data folder) is shared.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from retrainer.config import load_params
from retrainer.datagen import generate_day
from tests.conftest import AS_OF, seed, write_project
from tests.e2e.test_training_dag import Airflow, _tail, _versions

pytestmark = pytest.mark.e2e


def _missing_column(df):
    return df.drop(columns=["tenure_months"])


def _renamed_column(df):
    return df.rename(columns={"monthly_charges": "monthly_charge"})


def _extra_column(df):
    return df.assign(promo_code="SPRING")


def _strings_in_numeric(df):
    out = df.copy()
    out["total_charges"] = out["total_charges"].map(lambda v: "n/a" if pd.isna(v) or v > 3000 else f"{v:.2f}")
    return out


def _all_null_column(df):
    return df.assign(satisfaction_score=np.nan)


def _nulls_above_tolerance(df):
    out = df.copy()
    out.loc[out.index[: len(out) // 3], "monthly_charges"] = np.nan
    return out


def _out_of_range(df):
    out = df.copy()
    out.loc[out.index[:10], "tenure_months"] = -5
    return out


def _unseen_category(df):
    out = df.copy()
    out.loc[out.index[:25], "region"] = "mars"
    return out


def _duplicate_keys(df):
    out = df.copy()
    out.loc[out.index[1:20], "customer_id"] = out["customer_id"].iloc[0]
    return out


def _empty(df):
    return df.iloc[0:0]


def _duplicated_rows(df):
    return pd.concat([df, df.iloc[:30]], ignore_index=True)  # a feed that sent 30 rows twice


def _storm_of_repeats(df):
    return pd.concat([df] * 10, ignore_index=True)  # 10x the usual rows: the same day replayed ten times


def _fractions_in_integer_column(df):
    return df.assign(tenure_months=df["tenure_months"] + 0.5)


def _label_out_of_set(df):
    out = df.copy()
    out.loc[out.index[:10], "churned"] = 2
    return out


def _infinite_values(df):
    out = df.copy()
    out.loc[out.index[:5], "total_charges"] = np.inf  # the suite's range has no upper bound
    out.loc[out.index[5:7], "total_charges"] = -np.inf
    return out


def _mojibake_category(df):
    out = df.copy()
    out.loc[out.index[:12], "region"] = "nÃ¶rth"  # "nörth" encoded as UTF-8, decoded as Latin-1
    return out


def _sql(statement: str) -> Callable[[sa.Connection, str], None]:
    """A change made in the case's typed table after it is written (SQLite keeps any text in any column)."""
    def run(conn: sa.Connection, table: str) -> None:
        conn.execute(sa.text(statement.format(table=table)))
    return run


@dataclass(frozen=True)
class Case:
    fragments: list[str]  # what the run's output (and the quarantine reason) must name
    mutate: Callable[[pd.DataFrame], pd.DataFrame] = lambda df: df
    after_load: Callable[[sa.Connection, str], None] | None = None
    outcome: str = "quarantined"  # quarantined | unreadable | skipped | refused
    params_edit: Callable[[dict, Path], None] | None = None  # changes the case's params file
    retried: bool = False  # a source that cannot be read may come back: Airflow retries, then fails


def _wrong_key(raw: dict, _folder: Path) -> None:
    raw["prepare"]["windw"] = 3


def _suite_not_json(raw: dict, folder: Path) -> None:
    broken = folder / "broken_suite.json"
    broken.write_text('{"name": "churn_raw", "expectations": [')  # cut off mid-file
    raw["validation"]["raw_suite"] = str(broken)


def _no_such_table(raw: dict, _folder: Path) -> None:
    raw["source"]["table"] = "no_such_table"


CASES: dict[str, Case] = {
    "missing_column": Case(["expect_table_columns_to_match_set", "tenure_months"], _missing_column),
    "renamed_column": Case(["monthly_charge", "expect_table_columns_to_match_set"], _renamed_column),
    "extra_column": Case(["promo_code", "expect_table_columns_to_match_set"], _extra_column),
    "strings_in_numeric": Case(["total_charges", "n/a"], _strings_in_numeric),
    "all_null_column": Case(["satisfaction_score", "expect_column_values_to_not_be_null"], _all_null_column),
    "nulls_above_tolerance": Case(["monthly_charges", "expect_column_values_to_not_be_null"], _nulls_above_tolerance),
    "out_of_range": Case(["tenure_months", "expect_column_values_to_be_between", "-5"], _out_of_range),
    "unseen_category": Case(["region", "mars", "expect_column_values_to_be_in_set"], _unseen_category),
    "duplicate_keys": Case(["customer_id", "expect_column_values_to_be_unique"], _duplicate_keys),
    "empty_batch": Case(["no rows for"], _empty, outcome="skipped"),
    "duplicated_rows": Case(["customer_id", "expect_column_values_to_be_unique"], _duplicated_rows),
    "storm_of_repeats": Case(["customer_id", "expect_column_values_to_be_unique"], _storm_of_repeats),
    "fractions_in_integer_column": Case(["tenure_months", "expect_column_values_to_be_in_type_list"],
                                        _fractions_in_integer_column),
    "label_out_of_set": Case(["churned", "expect_column_values_to_be_in_set"], _label_out_of_set),
    "infinite_values": Case(["retrainer_numeric_values_finite", "total_charges", "inf"], _infinite_values),
    "mojibake_category": Case(["region", "nÃ¶rth", "expect_column_values_to_be_in_set"], _mojibake_category),
    "decimal_comma": Case(
        ["cannot be read as their declared types", "column 'monthly_charges' (float): 7 rows", "12,5"],
        after_load=_sql("UPDATE {table} SET monthly_charges = '12,5' WHERE rowid <= 7"), outcome="unreadable"),
    "event_time_as_other_text": Case(
        ["column 'event_time'", "stored in another form", "4 rows", "05:00"],
        after_load=_sql("UPDATE {table} SET event_time = strftime('%m/%d/%Y 05:00', event_time) WHERE rowid <= 4"),
        outcome="unreadable"),
    "timezone_offset_in_event_time": Case(
        ["event_time", "expect_column_values_to_be_between"],
        after_load=_sql("UPDATE {table} SET event_time = substr(event_time, 1, 19) || '+05:00'")),
    "params_wrong_key": Case(["prepare.windw: unknown key"], outcome="refused", params_edit=_wrong_key),
    "suite_not_json": Case(["broken_suite.json", "validation suite is not valid JSON"], outcome="refused",
                           params_edit=_suite_not_json),
    "source_table_missing": Case(["table 'no_such_table' does not exist"], outcome="refused",
                                 params_edit=_no_such_table, retried=True),
}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    root = tmp_path_factory.mktemp("matrix")
    params_file = write_project(root / "project", git=True)
    seed(params_file, end=AS_OF, days=16, rows_per_day=300)
    airflow = Airflow(root / "airflow", params_file)
    migrated = airflow.cli("db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    ok, output = airflow.dags_test({"as_of": AS_OF.isoformat()})
    assert ok, _tail(output)
    return airflow, load_params(params_file)


def test_the_matrix_has_twenty_kinds_of_bad_input():
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", list(CASES))
def test_bad_batch_is_stopped_named_and_preserved(matrix, case):
    airflow, params = matrix
    spec = CASES[case]
    day = AS_OF + timedelta(days=1 + list(CASES).index(case))
    table = f"bad_{case}"
    batch = spec.mutate(generate_day(day, 300, seed=7))
    engine = sa.create_engine(params.source_url)
    with engine.begin() as conn:
        batch.to_sql(table, conn, if_exists="replace", index=False)  # an empty frame still makes the table
        if spec.after_load is not None:
            spec.after_load(conn, table)
    engine.dispose()
    raw = yaml.safe_load(params.source_file.read_text())
    raw["source"]["table"] = table
    if spec.params_edit is not None:
        spec.params_edit(raw, params.root)
    case_params = params.root / f"params-{case}.yaml"
    case_params.write_text(yaml.safe_dump(raw, sort_keys=False))

    champion_before = _champion_version(params)
    versions_before = sorted(str(v.version) for v in _versions(params))
    ok, output = airflow.dags_test({"as_of": day.isoformat()}, env=dict(airflow.env, RETRAINER_PARAMS=str(case_params)))

    for fragment in spec.fragments:
        assert fragment in output, f"{case}: {fragment!r} not in the run's output\n{_tail(output)}"
    assert sorted(str(v.version) for v in _versions(params)) == versions_before  # nothing registered
    assert _champion_version(params) == champion_before
    quarantined = params.data_dir / "quarantine" / f"dt={day.isoformat()}"
    if spec.outcome == "skipped":
        assert ok, "an empty batch ends the run cleanly (skipped), it is not an error"
        assert not (params.data_dir / "raw" / f"dt={day.isoformat()}").exists()
        return
    assert not ok
    if not spec.retried:
        assert "up_for_retry" not in output, f"{case}: a bad input is not retried"
    if spec.outcome == "refused":
        # Nothing judged, nothing quarantined; the batch is still whole in the source or in raw/ (never lost).
        assert not quarantined.exists()
        _assert_kept_in_source_or_raw(params, table, day, len(batch))
        return
    assert not (params.data_dir / "raw" / f"dt={day.isoformat()}").exists()
    kept = pd.read_parquet(quarantined / "part.parquet")
    assert len(kept) == len(batch)  # the input is preserved, all of it
    assert set(kept.columns) == set(batch.columns)
    record = json.loads((quarantined / "QUARANTINED.json").read_text())
    assert record["kind"] == ("unreadable" if spec.outcome == "unreadable" else "gate")
    assert all(fragment in record["reason"] for fragment in spec.fragments)
    assert (quarantined / "report" / f"dt={day.isoformat()}" / "validation.json").exists()
    if spec.outcome == "unreadable":
        assert all(str(kept[c].dtype) in ("object", "string", "str") for c in kept.columns)  # kept as text


def _assert_kept_in_source_or_raw(params, table: str, day, rows: int) -> None:
    partition = params.data_dir / "raw" / f"dt={day.isoformat()}" / "part.parquet"
    if partition.exists():
        assert len(pd.read_parquet(partition)) == rows
        report = params.reports_dir / "validation" / f"dt={day.isoformat()}" / "validation.json"
        assert not report.exists() or not json.loads(report.read_text())["success"]  # never passed as judged
    else:
        in_source = pd.read_sql_query(f"SELECT count(*) AS n FROM {table}", params.source_url)["n"][0]  # noqa: S608
        assert in_source == rows


def _champion_version(params) -> str | None:
    from retrainer.tracking import champion_summary

    summary = champion_summary(params)
    return None if summary is None else summary["version"]
