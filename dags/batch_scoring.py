"""batch_scoring__<model>: score each new partition with the champion (and the challenger in shadow).

One DAG per model file (``batch_scoring`` for a single params.yaml; see ``dags/training.py``).

A run covers one day: the data interval's day for scheduled runs and backfills, or the *Day* param.
It waits until that day's partition is in the training area with a passing validation report (a
quarantined day is skipped), scores it with ``models:/<name>@champion``, and, when *Shadow* is on and
the challenger is a different version, with ``@challenger`` too, comparing the two. Predictions land
as Parquet (``data/predictions/dt=.../<model>-v<N>.parquet``) and in the SQL table ``scoring.table``,
with the model version on every row; a rerun replaces that day's rows of that version.

Wiring only: TaskFlow tasks, each a call of ``retrainer.scoring`` inside
``retrainer_airflow.tasks.registry_outcomes`` (which rule skips a day is ``scoring.readiness``'s). No
step has a link to carry, the one reason a step is an operator in ``training``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, Param, PokeReturnValue, get_current_context, task
from retrainer_airflow.per_model import DagModel, for_model, model_dags
from retrainer_notifier import deadline_alerts, notified_task_defaults  # plugins/: notifiers, deadlines

from retrainer.names import BATCH_SCORING_DAG, CHAMPION, DAG_TAG


@model_dags(
    dag_id=BATCH_SCORING_DAG,
    description="Score each day's validated partition with the champion (and the challenger in shadow)",
    # 02:00 UTC: the interval [D-1 02:00, D 02:00) scores day D-1, which the midnight training run ingested.
    schedule=for_model(lambda model: CronDataIntervalTimetable(model.cron("scoring"), timezone="UTC")),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=2,
    tags=[DAG_TAG, "scoring"],
    default_args=notified_task_defaults(2, timedelta(seconds=20), exponential=True),
    deadline=for_model(lambda model: deadline_alerts(BATCH_SCORING_DAG, model.params)),  # params.yaml deadlines.batch_scoring
    params={
        "day": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Day",
            description="Score this day's partition (YYYY-MM-DD). Empty: the run's data interval, or the "
            "trigger day for manual runs.",
        ),
        "shadow": Param(
            None,
            type=["null", "boolean"],
            title="Shadow-score with the challenger",
            description="Empty: scoring.shadow from params.yaml.",
        ),
    },
    doc_md=__doc__,
)
def batch_scoring(model: DagModel):
    @task.sensor(poke_interval=300, timeout=6 * 3600, mode="reschedule", soft_fail=True)
    def partition_ready() -> PokeReturnValue:
        from airflow.sdk.exceptions import AirflowSkipException
        from retrainer_airflow.tasks import registry_outcomes, task_params

        from retrainer.run_context import from_airflow
        from retrainer.scoring import readiness

        context = get_current_context()
        with registry_outcomes():
            params = task_params()
            day = from_airflow(context).as_of  # the Day param, else the data interval, else the trigger day
        ready = readiness(params, day, context["params"].get("shadow"))
        print(f"partition dt={ready['day']}: {ready['status']}")
        if ready["skip"]:
            raise AirflowSkipException(ready["skip"])
        return PokeReturnValue(is_done=ready["ready"], xcom_value={"day": ready["day"], "shadow": ready["shadow"]})

    @task
    def score_champion(ready: dict) -> dict:
        from datetime import date

        from retrainer_airflow.tasks import registry_outcomes, task_params

        from retrainer.scoring import score_partition, summary_table

        run_id = get_current_context()["dag_run"].run_id
        with registry_outcomes():
            result = score_partition(task_params(), date.fromisoformat(ready["day"]), scoring_run=run_id)
        print(summary_table({CHAMPION: result}))
        return result

    @task
    def score_shadow(ready: dict, champion: dict) -> dict:
        from datetime import date

        from retrainer_airflow.tasks import registry_outcomes, task_params

        from retrainer.scoring import score_shadow as shadow_score
        from retrainer.scoring import summary_table

        if not ready["shadow"]:
            print("shadow scoring is off for this run")
            return {"skipped": True, "note": "shadow scoring off"}
        run_id = get_current_context()["dag_run"].run_id
        with registry_outcomes():
            result = shadow_score(task_params(), date.fromisoformat(ready["day"]), champion, scoring_run=run_id)
        print(summary_table(result))
        return result

    ready = partition_ready()
    score_shadow(ready, score_champion(ready))
