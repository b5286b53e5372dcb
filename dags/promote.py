"""promote__<model>: make a model version the champion by hand (the approval step of `registry.promotion: manual`).

Trigger it from the UI with the version and the reason. The move is a check-and-set under the registry
lock; versions whose gate failed, that are older than the champion, or that a rollback demoted are
refused unless *Override* is set. Who (the triggering user) and why are recorded on the version and in
the registered model's champion history. Promoting the current champion changes nothing, so retries
are safe.

Wiring only: TaskFlow tasks, each a call of ``retrainer.register`` inside
``retrainer_airflow.tasks.registry_outcomes``. No step has a link to carry, the one reason a step is
an operator in ``training``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, get_current_context, task
from retrainer_airflow.per_model import DagModel, model_dags
from retrainer_notifier import notified_task_defaults, notify_champion_move  # plugins/: notifiers

from retrainer.names import DAG_TAG, EVENT_PROMOTION, PROMOTE_DAG


@model_dags(
    dag_id=PROMOTE_DAG,
    description="Approve a model version: move the champion alias to it (check-and-set, recorded)",
    schedule=None,  # manual only: a person decides
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=[DAG_TAG, "registry"],
    default_args=notified_task_defaults(1, timedelta(seconds=15)),
    params={
        "version": Param(
            1, type="integer", minimum=1, title="Model version", description="The version to make champion."
        ),
        "reason": Param(
            "",
            type="string",
            minLength=3,
            maxLength=500,
            title="Reason",
            description="Why this version is approved (recorded with your user name).",
        ),
        "expected_champion": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Expected current champion",
            description="Only move if this version is the champion now (leave empty to skip the check).",
        ),
        "override": Param(
            False,
            type="boolean",
            title="Override",
            description="Promote even if the version failed its gate, is older than the champion or was "
            "demoted by a rollback.",
        ),
    },
    doc_md=__doc__,
)
def promote(model: DagModel):
    @task
    def check() -> dict:
        from retrainer_airflow.tasks import registry_outcomes, task_params

        from retrainer.register import plan_promotion_request

        chosen = get_current_context()["params"]
        with registry_outcomes():
            plan = plan_promotion_request(
                task_params(), chosen["version"], expected_champion=chosen.get("expected_champion"),
                override=bool(chosen.get("override")),
            )
        print(f"v{plan['version']} will replace champion v{plan['champion']}"
              + (f" despite: {'; '.join(plan['problems'])}" if plan["problems"] else ""))
        return plan

    @task
    def move(plan: dict) -> dict:
        from retrainer_airflow.tasks import registry_outcomes, run_user, task_params

        from retrainer.register import promote_version

        context = get_current_context()
        chosen = context["params"]
        with registry_outcomes():
            # Check-and-set against the champion seen by `check`: a move in between fails this task.
            result = promote_version(
                task_params(),
                plan["version"],
                chosen["reason"],
                by=run_user(context),
                expected_champion=plan["champion"],
                override=bool(chosen.get("override")),
            )
        print(result.note)
        notify_champion_move(EVENT_PROMOTION, result.to_dict(), context)
        for entry in result.history[-5:]:
            print(f"  #{entry['seq']} {entry['at']} {entry['action']:<8} v{entry['previous']} -> "
                  f"v{entry['version']} by {entry['by']}: {entry['reason']}")
        return result.to_dict()

    move(check())

