"""rollback__<model>: move the champion back in one step, to the previous champion or to a chosen version.

The replaced version is tagged as demoted, so no training run promotes it again automatically; the
next training run evaluates its challenger against the restored champion. Who and why are recorded.
The same is `retrainer rollback --reason ... [--to-version N]` on the command line.

Wiring only: TaskFlow tasks, each a call of ``retrainer.register`` inside
``retrainer_airflow.tasks.registry_outcomes``. No step has a link to carry, the one reason a step is
an operator in ``training``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, get_current_context, task
from retrainer_airflow.per_model import DagModel, model_dags
from retrainer_notifier import notified_task_defaults, notify_champion_move  # plugins/: notifiers

from retrainer.names import DAG_TAG, EVENT_ROLLBACK, PREVIOUS_CHAMPION, ROLLBACK_DAG


@model_dags(
    dag_id=ROLLBACK_DAG,
    description="Move the champion alias back (to champion-previous or a chosen version), recorded",
    schedule=None,  # manual only: a person decides
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=[DAG_TAG, "registry"],
    default_args=notified_task_defaults(1, timedelta(seconds=15)),
    params={
        "to_version": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Roll back to version",
            description=f"Leave empty to restore the previous champion (alias {PREVIOUS_CHAMPION}).",
        ),
        "reason": Param(
            "",
            type="string",
            minLength=3,
            maxLength=500,
            title="Reason",
            description="Why the champion is rolled back (recorded with your user name).",
        ),
    },
    doc_md=__doc__,
)
def rollback(model: DagModel):
    @task
    def plan() -> dict:
        from retrainer_airflow.tasks import registry_outcomes, task_params

        from retrainer.register import plan_rollback

        chosen = get_current_context()["params"]
        with registry_outcomes():
            planned = plan_rollback(task_params(), chosen.get("to_version"))
        print(f"champion v{planned['from']} will be replaced by v{planned['to']}")
        return planned

    @task
    def move(planned: dict) -> dict:
        from retrainer_airflow.tasks import registry_outcomes, run_user, task_params

        from retrainer.register import rollback as move_back

        context = get_current_context()
        with registry_outcomes():
            # Check-and-set against the planned champion; a retry that finds it done changes nothing.
            result = move_back(
                task_params(),
                context["params"]["reason"],
                by=run_user(context),
                to_version=planned["to"],
                expected_champion=planned["from"],
            )
        print(result.note)
        notify_champion_move(EVENT_ROLLBACK, result.to_dict(), context)
        return result.to_dict()

    move(plan())

