"""A bad day is isolated, through the real `training` DAG (`airflow dags test`), a real SQLite source, GX,
DVC repo and MLflow store:

1. day D fails its raw gate (out-of-range values) and is quarantined: the run as of D fails;
2. day D+1's rows cannot be read (a decimal comma in a REAL column): it is quarantined as text with a
   report, and the run as of D+1 fails;
3. the run as of D+2 succeeds and trains without both days, naming the gaps and why in its task log,
   its lineage record and the control room's lineage view;
4. the source is fixed and both days are replayed (the control room's replay request): they pass, leave
   the quarantine, and the next run's window has them back.

The tests share one project and run in order.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import pytest
import sqlalchemy as sa

from retrainer.config import load_params
from retrainer.datagen import IncidentSpec, seed_source
from retrainer.quarantine import quarantine_record
from retrainer.run_context import day_interval
from tests.conftest import AS_OF, REPO_ROOT, seed, write_project
from tests.e2e.test_training_dag import Airflow, _tail, _versions

sys.path.insert(0, str(REPO_ROOT / "plugins"))  # as Airflow does for the plugins folder
import retrainer_ui_data as ui  # noqa: E402

pytestmark = pytest.mark.e2e

GATE_DAY = AS_OF  # fails the raw gate
UNREADABLE_DAY = AS_OF + timedelta(days=1)  # its rows cannot be read
NEXT_DAY = AS_OF + timedelta(days=2)


def _decimal_comma(params, day, rows: int) -> None:
    """Text in a REAL column of ``rows`` rows of ``day`` (SQLite keeps it), as a CSV import with commas leaves."""
    start, end = day_interval(day)
    source = sa.table(params.source.table, sa.column("monthly_charges"), sa.column("event_time"), sa.column("rowid"))
    picked = sa.select(source.c.rowid).where(source.c.event_time >= start, source.c.event_time < end).limit(rows)
    engine = sa.create_engine(params.source_url)
    with engine.begin() as conn:
        conn.execute(sa.update(source).where(source.c.rowid.in_(picked)).values(monthly_charges="12,5"))
    engine.dispose()


def _trained_run(params, as_of):
    from retrainer.tracking import AS_OF_TAG, ensure_experiment, mlflow_client

    client = mlflow_client(params)
    runs = client.search_runs([ensure_experiment(params)], filter_string=f"tags.`{AS_OF_TAG}` = '{as_of.isoformat()}'",
                              order_by=["attributes.start_time DESC"])
    return client, runs[0]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("isolation")
    params_file = write_project(root / "project", {"prepare": {"window_days": 10}}, git=True)
    seed(params_file, end=NEXT_DAY, days=14, rows_per_day=300,
         incidents=[IncidentSpec(day=GATE_DAY, kind="out_of_range")])
    params = load_params(params_file)
    _decimal_comma(params, UNREADABLE_DAY, 7)
    airflow = Airflow(root / "airflow", params_file)
    migrated = airflow.cli("db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    return airflow, params


def test_the_runs_as_of_the_bad_days_fail_and_quarantine_them(stack):
    airflow, params = stack
    ok, output = airflow.dags_test({"as_of": GATE_DAY.isoformat()})
    assert not ok and "data-quality gate failed" in output and "tenure_months" in output, _tail(output)
    assert quarantine_record(params, GATE_DAY)["kind"] == "gate"

    ok, output = airflow.dags_test({"as_of": UNREADABLE_DAY.isoformat()})
    assert not ok, _tail(output)
    assert "column 'monthly_charges' (float): 7 rows, e.g. ['12,5']" in output, _tail(output)
    assert quarantine_record(params, UNREADABLE_DAY)["kind"] == "unreadable"
    assert _versions(params) == []
    # The control room lists both, each with a replay.
    listed = {q["day"]: q for q in ui.quarantined(params)}
    assert {GATE_DAY.isoformat(), UNREADABLE_DAY.isoformat()} <= set(listed)


def test_the_next_run_trains_without_the_bad_days_and_names_the_gaps(stack):
    airflow, params = stack
    ok, output = airflow.dags_test({"as_of": NEXT_DAY.isoformat()})
    assert ok, _tail(output)
    for day, kind in ((GATE_DAY, "quarantined"), (UNREADABLE_DAY, "quarantined")):
        assert f"{day.isoformat()} is left out of the window of {NEXT_DAY.isoformat()} ({kind})" in output, _tail(output)
    assert "leaves out 2 quarantined day(s)" in output
    assert [str(v.version) for v in _versions(params)] == ["1"]

    client, run = _trained_run(params, NEXT_DAY)
    lineage = json.loads(open(client.download_artifacts(run.info.run_id, "lineage/lineage.json")).read())
    gaps = {g["day"]: g for g in lineage["gaps"]}
    assert gaps[GATE_DAY.isoformat()]["kind"] == "quarantined_gate" and "tenure_months" in gaps[GATE_DAY.isoformat()]["reason"]
    assert gaps[UNREADABLE_DAY.isoformat()]["kind"] == "quarantined_unreadable"
    assert "monthly_charges" in gaps[UNREADABLE_DAY.isoformat()]["reason"]
    assert {GATE_DAY.isoformat(), UNREADABLE_DAY.isoformat()}.isdisjoint(p["day"] for p in lineage["partitions"])
    # The control room's lineage view of that DAG run shows the same gaps.
    view = ui.run_lineage(params, "training", run.data.tags["airflow.run_id"])
    assert {g["day"]: g["kind"] for g in view["gaps"]} == {
        GATE_DAY.isoformat(): "quarantined_gate", UNREADABLE_DAY.isoformat(): "quarantined_unreadable"}


def test_replays_of_the_fixed_days_bring_them_back_for_the_next_run(stack):
    airflow, params = stack
    # The source is fixed: both days written again, clean.
    seed_source(params.source_url, params.source.table, GATE_DAY, UNREADABLE_DAY, 300, params.project.seed)
    for day in (GATE_DAY, UNREADABLE_DAY):
        replay = ui.replay_request(params, day.isoformat(), "e2e")
        ok, output = airflow.dags_test(replay["body"]["conf"])
        assert ok, _tail(output)
        assert quarantine_record(params, day) is None
        assert not (params.data_dir / "quarantine" / f"dt={day.isoformat()}").exists()
    assert ui.quarantined(params) == []

    ok, output = airflow.dags_test({"as_of": NEXT_DAY.isoformat()})
    assert ok, _tail(output)
    assert "left out of the window" not in output
    client, run = _trained_run(params, NEXT_DAY)
    lineage = json.loads(open(client.download_artifacts(run.info.run_id, "lineage/lineage.json")).read())
    assert lineage["gaps"] == []
    assert {GATE_DAY.isoformat(), UNREADABLE_DAY.isoformat()} <= {p["day"] for p in lineage["partitions"]}
