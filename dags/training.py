"""training__<model>: ingest -> validate -> prepare -> train -> evaluate -> register (-> approve ->
apply_approval with ``registry.promotion: manual``) for one as-of date.

One DAG per model file (``models/<name>.yaml``; ``training`` for a single params.yaml), built by
``retrainer_airflow.per_model.model_dags``: the body below is written once, for a model.

Wiring only: every task body calls one step of ``retrainer.pipeline`` inside
``retrainer_airflow.tasks.airflow_outcomes``; heavy libraries are imported inside the tasks, so parsing
this file stays fast. Tasks exchange paths, ids and decisions via XCom.

Why two kinds of task: a step that produces something a person opens is an operator of
``plugins/retrainer_operators.py``, because only an operator can carry an extra link on its task
instance (TaskFlow tasks cannot): validate (Data Docs), train (MLflow run), register (MLflow model
version). ingest, prepare and evaluate produce nothing to link to, so they stay TaskFlow tasks. Both
kinds return dicts pushed key by key (``multiple_outputs``), so the XCom shapes are the same.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, Param, get_current_context, task
from retrainer_airflow.per_model import DagModel, for_model, model_dags
from retrainer_approval import ApplyApprovalOperator, ChampionApprovalOperator  # plugins/: human in the loop
from retrainer_notifier import deadline_alerts, notified_task_defaults  # plugins/: notifiers, deadlines
from retrainer_operators import RegisterOperator, TrainOperator, ValidateOperator  # plugins/: steps + links

from retrainer.names import DAG_TAG, DVC_POOL, TRAINING_DAG


@model_dags(
    dag_id=TRAINING_DAG,
    description="Retrain the tabular model on the window ending at the run's as-of date",
    # A data-interval timetable, not "@daily" (a trigger timetable in Airflow 3): each scheduled or
    # backfilled run covers the completed day [D, D+1) and trains as of D.
    schedule=for_model(lambda model: CronDataIntervalTimetable(model.cron("training"), timezone="UTC")),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=4,
    tags=[DAG_TAG],
    default_args=notified_task_defaults(2, timedelta(seconds=20), exponential=True),
    deadline=for_model(lambda model: deadline_alerts(TRAINING_DAG, model.params)),  # params.yaml deadlines.training
    params={
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date",
            pattern=r"^\d{4}-\d{2}-\d{2}$",
            title="As-of date",
            description="Train on the window ending this day (YYYY-MM-DD). Empty: the run's data interval, "
            "or the trigger day for manual runs.",
        ),
        "window_days": Param(
            None,
            type=["null", "integer"],
            minimum=2,
            maximum=3660,
            title="Window length (days)",
            description="Override prepare.window_days from params.yaml for this run.",
        ),
        "force": Param(
            False,
            type="boolean",
            title="Force a new model",
            description="Train a new model even if this date, data, code and config were already trained.",
        ),
        "note": Param("", type="string", maxLength=500, title="Note", description="Recorded on the MLflow run."),
        "reason": Param(
            None,
            type=["null", "string"],
            maxLength=64,
            pattern="^[A-Za-z0-9_-]*$",
            title="Reason",
            description="Why this run was started (manual, drift, new_data...); recorded on the model.",
        ),
        "report": Param(
            None,
            type=["null", "string"],
            maxLength=1000,
            # No ".." segment: the path must stay inside the reports folder (checked again in the task).
            pattern=r"^(?!(.*[/\\])?\.\.([/\\]|$))[^\x00]*$",
            title="Trigger report",
            description="Path of the report that triggered this run (set by drift_monitor), inside reports/.",
        ),
    },
    doc_md=__doc__,
)
def training(model: DagModel):
    # New raw partitions: the model's drift_monitor runs when its asset is updated (extra: the as-of day).
    RAW_PARTITIONS = model.raw_partitions  # noqa: N806 - the asset, named as in the other DAG files

    @task(pool=DVC_POOL, outlets=[RAW_PARTITIONS])
    def ingest() -> dict:
        from datetime import date

        from retrainer_airflow.tasks import airflow_outcomes, run_facts, task_params

        from retrainer.pipeline import step_ingest

        with airflow_outcomes():
            params = task_params()
            facts = run_facts(get_current_context(), params)
            summary = step_ingest(params, date.fromisoformat(facts["as_of"]), window=facts["window_days"])
        print(f"as_of={facts['as_of']}: {summary['as_of_rows']} rows ({summary['as_of_status']}), "
              f"{len(summary['new_partitions'])} partitions written or refreshed")
        get_current_context()["outlet_events"][RAW_PARTITIONS].extra = {"as_of": facts["as_of"]}
        return {"run": facts, "ingest": summary}

    @task
    def prepare(validated: dict) -> dict:
        from retrainer_airflow.tasks import airflow_outcomes, task_params

        from retrainer.pipeline import step_prepare
        from retrainer.run_context import RunContext

        facts = validated["run"]
        run = RunContext.from_dict(facts)
        with airflow_outcomes():
            # run.key_scope: a forced run gets its own run key (a new model, not the one last trained).
            prepared = step_prepare(task_params(), run.as_of, dag_id=run.key_scope, window=run.window_days)
        print(f"train rows {prepared['train_rows']}, holdout rows {prepared['holdout_rows']}, "
              f"data hash {prepared['data_hash']}, run key {prepared['run_key']}")
        return {"run": facts, "prepared": prepared}

    @task
    def evaluate(trained: dict) -> dict:
        from retrainer_airflow.tasks import airflow_outcomes, task_params

        from retrainer.pipeline import step_evaluate

        with airflow_outcomes():
            evaluated = step_evaluate(task_params(), trained["prepared"], trained["trained"])
        print("gate decision:\n" + evaluated["table"])
        return {"run": trained["run"], "trained": trained["trained"], "evaluated": evaluated}

    validated = ValidateOperator(task_id="validate", ingested=ingest(), pool=DVC_POOL).output
    trained = TrainOperator(task_id="train", prepared=prepare(validated)).output
    evaluated = evaluate(trained)
    registered = RegisterOperator(task_id="register", evaluated=evaluated).output
    # registry.promotion: manual: a person approves or rejects under Required actions (else both skip).
    answer = ChampionApprovalOperator(task_id="approve", evaluated=evaluated, registered=registered).output
    ApplyApprovalOperator(task_id="apply_approval", evaluated=evaluated, registered=registered, answer=answer)
