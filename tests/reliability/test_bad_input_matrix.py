"""The bad-input matrix: each bad batch goes through the real `training` DAG (`airflow dags test`).

Every case must stop at the gate (or end at ingest, for an empty batch) with a message naming the
problem, register no model version, leave the champion alone and keep the input in quarantine.

Batches whose *schema* is wrong (a missing, renamed or extra column, text in a numeric column) cannot
live in the typed demo table, so each case writes its batch to a table of its own and runs with a
params file pointing the source at it; everything else (stores, data folder) is shared.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

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


# case -> (mutation, fragments the failure message must contain)
CASES: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], list[str]]] = {
    "missing_column": (_missing_column, ["expect_table_columns_to_match_set", "tenure_months"]),
    "renamed_column": (_renamed_column, ["monthly_charge", "expect_table_columns_to_match_set"]),
    "extra_column": (_extra_column, ["promo_code", "expect_table_columns_to_match_set"]),
    "strings_in_numeric": (_strings_in_numeric, ["total_charges", "n/a"]),
    "all_null_column": (_all_null_column, ["satisfaction_score", "expect_column_values_to_not_be_null"]),
    "nulls_above_tolerance": (_nulls_above_tolerance, ["monthly_charges", "expect_column_values_to_not_be_null"]),
    "out_of_range": (_out_of_range, ["tenure_months", "expect_column_values_to_be_between", "-5"]),
    "unseen_category": (_unseen_category, ["region", "mars", "expect_column_values_to_be_in_set"]),
    "duplicate_keys": (_duplicate_keys, ["customer_id", "expect_column_values_to_be_unique"]),
    "empty_batch": (_empty, ["no rows for"]),
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


@pytest.mark.parametrize("case", list(CASES))
def test_bad_batch_is_stopped_named_and_preserved(matrix, case):
    airflow, params = matrix
    mutate, fragments = CASES[case]
    day = AS_OF + timedelta(days=1 + list(CASES).index(case))
    table = f"bad_{case}"
    batch = mutate(generate_day(day, 300, seed=7))
    engine = sa.create_engine(params.source_url)
    with engine.begin() as conn:
        batch.to_sql(table, conn, if_exists="replace", index=False)  # an empty frame still makes the table
    engine.dispose()
    raw = yaml.safe_load(params.source_file.read_text())
    raw["source"]["table"] = table
    case_params = params.root / f"params-{case}.yaml"
    case_params.write_text(yaml.safe_dump(raw, sort_keys=False))

    champion_before = _champion_version(params)
    versions_before = sorted(str(v.version) for v in _versions(params))
    ok, output = airflow.dags_test({"as_of": day.isoformat()}, env=dict(airflow.env, RETRAINER_PARAMS=str(case_params)))

    for fragment in fragments:
        assert fragment in output, f"{case}: {fragment!r} not in the run's output\n{_tail(output)}"
    assert sorted(str(v.version) for v in _versions(params)) == versions_before
    assert _champion_version(params) == champion_before
    assert not (params.data_dir / "raw" / f"dt={day.isoformat()}").exists()
    if case == "empty_batch":
        assert ok, "an empty batch ends the run cleanly (skipped), it is not an error"
        return
    assert not ok
    quarantined = params.data_dir / "quarantine" / f"dt={day.isoformat()}"
    kept = pd.read_parquet(quarantined / "part.parquet")
    assert len(kept) == len(batch)  # the input is preserved, all of it
    assert set(kept.columns) == set(batch.columns)
    reason = json.loads((quarantined / "QUARANTINED.json").read_text())["reason"]
    assert all(fragment in reason for fragment in fragments if fragment != "no rows for")
    assert (quarantined / "report" / f"dt={day.isoformat()}" / "validation.json").exists()


def _champion_version(params) -> str | None:
    from retrainer.tracking import champion_summary

    summary = champion_summary(params)
    return None if summary is None else summary["version"]
