"""The registry DAGs run by Airflow itself (`airflow dags test`): training makes the champion, an older
as-of date is registered as historical, `promote` refuses and then (overridden) approves it, `batch_scoring`
scores a day with the champion and the challenger in shadow, `rollback` restores the previous champion,
and scoring the day again replaces that version's rows instead of duplicating them.

The tests share one project and run in order, like tests/e2e/test_training_dag.py.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from retrainer.config import load_params
from retrainer.names import CHALLENGER, CHAMPION
from retrainer.tracking import DEMOTED_TAG, champion_history, current_alias, mlflow_client
from tests.conftest import AS_OF, seed, write_project
from tests.e2e.test_training_dag import Airflow

pytestmark = pytest.mark.e2e
OLDER = AS_OF - timedelta(days=1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e-registry")
    params_file = write_project(root / "project")
    seed(params_file, end=AS_OF, days=16, rows_per_day=300)
    airflow = Airflow(root / "airflow", params_file)
    migrated = airflow.cli("db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    return airflow, load_params(params_file)


def run_dag(airflow: Airflow, dag_id: str, conf: dict) -> tuple[bool, str]:
    done = airflow.cli("dags", "test", dag_id, "-c", json.dumps(conf))
    output = done.stdout + done.stderr
    (airflow.home / f"last_{dag_id}.log").write_text(output)
    return done.returncode == 0 and " successful [" in output, output


def _tail(output: str) -> str:
    return "\n".join(ln for ln in output.splitlines() if "Skipping registering" not in ln)[-6000:]


def _alias(params, alias: str) -> str | None:
    mv = current_alias(params, alias)
    return None if mv is None else str(mv.version)


def _prediction_counts(params, day) -> list[tuple]:
    engine = sa.create_engine(params.scoring_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select model_version, model_role, count(*) from predictions where scored_day = :day "
                "group by 1, 2 order by 1"
            ),
            {"day": day.isoformat()},
        ).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def test_training_makes_the_champion_and_logs_the_decision_table(stack):
    airflow, params = stack
    ok, output = run_dag(airflow, "training", {"as_of": AS_OF.isoformat()})
    assert ok, _tail(output)
    assert "gate decision:" in output and "roc_auc floor" in output and "v1 promoted to champion" in output
    assert (_alias(params, CHAMPION), _alias(params, CHALLENGER)) == ("1", "1")


def test_an_older_as_of_is_registered_as_historical(stack):
    airflow, params = stack
    ok, output = run_dag(airflow, "training", {"as_of": OLDER.isoformat()})
    assert ok, _tail(output)
    assert "historical" in output and "data as new as the champion's" in output
    assert (_alias(params, CHAMPION), _alias(params, CHALLENGER)) == ("1", "1")
    tags = mlflow_client(params).get_model_version(params.model.registered_name, "2").tags
    assert tags["retrainer.historical"] == "true" and tags["retrainer.as_of"] == OLDER.isoformat()


def test_promote_refuses_a_historical_version_without_override(stack):
    airflow, params = stack
    ok, output = run_dag(airflow, "promote", {"version": 2, "reason": "looks good"})
    assert not ok
    assert "not promoting" in output and "older than champion v1" in output
    assert "up_for_retry" not in output  # a refusal is final, not retried
    assert _alias(params, CHAMPION) == "1"


def test_promote_with_override_moves_the_champion_and_records_why(stack):
    airflow, params = stack
    ok, output = run_dag(airflow, "promote", {"version": 2, "reason": "e2e approval", "override": True})
    assert ok, _tail(output)
    assert _alias(params, CHAMPION) == "2"
    last = champion_history(params)[-1]
    assert (last["action"], last["version"], last["previous"]) == ("promote", "2", "1")
    assert last["reason"].startswith("e2e approval [override:") and "via promote/" in last["by"]


def test_batch_scoring_scores_with_the_champion_and_the_challenger_in_shadow(stack):
    airflow, params = stack
    ok, output = run_dag(airflow, "batch_scoring", {"day": AS_OF.isoformat(), "shadow": True})
    assert ok, _tail(output)
    assert _prediction_counts(params, AS_OF) == [(1, "shadow", 300), (2, "champion", 300)]
    manifest = json.loads((params.path(params.scoring.output_dir) / f"dt={AS_OF.isoformat()}" / "_scoring.json").read_text())
    assert manifest["champion"]["version"] == "2" and manifest["shadow"]["version"] == "1"
    assert 0 <= manifest["comparison"]["agreement"] <= 1
    assert "shadow vs champion" in output


def test_rollback_restores_the_previous_champion_and_rescoring_replaces_rows(stack):
    airflow, params = stack
    ok, output = run_dag(airflow, "rollback", {"reason": "e2e rollback"})
    assert ok, _tail(output)
    assert _alias(params, CHAMPION) == "1" and "champion rolled back to v1 (from v2)" in output
    tags = mlflow_client(params).get_model_version(params.model.registered_name, "2").tags
    assert "e2e rollback" in tags[DEMOTED_TAG]

    ok, output = run_dag(airflow, "batch_scoring", {"day": AS_OF.isoformat(), "shadow": True})
    assert ok, _tail(output)
    # v1 scored the day again, now as champion: its rows were replaced, not added; v2's stay as they were.
    assert _prediction_counts(params, AS_OF) == [(1, "champion", 300), (2, "champion", 300)]
    assert "no shadow scoring" in output
