"""training: ingest -> validate -> prepare -> train -> evaluate -> register for one as-of date.

Wiring only: every task body calls one step of ``retrainer.pipeline``; heavy libraries are imported
inside the tasks, so parsing this file stays fast. Tasks exchange paths, ids and decisions via XCom.
validate, train and register are the operators of ``plugins/retrainer_operators.py``: the same steps,
with links from the task instance to the Data Docs, the MLflow run and the MLflow model version.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, get_current_context, task
from retrainer_notifier import notified_task_defaults  # plugins/: task log + optional webhook
from retrainer_operators import RegisterOperator, TrainOperator, ValidateOperator  # plugins/: steps + links

DVC_POOL = "dvc"  # one slot: DVC work on the repository is serialized
# New raw partitions: drift_monitor runs when this asset is updated (extra: the as-of day).
RAW_PARTITIONS = Asset("retrainer_raw_partitions")


@dag(
    dag_id="training",
    description="Retrain the tabular model on the window ending at the run's as-of date",
    # A data-interval timetable, not "@daily" (a trigger timetable in Airflow 3): each scheduled or
    # backfilled run covers the completed day [D, D+1) and trains as of D.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=4,
    tags=["retrainer"],
    default_args=notified_task_defaults(2, timedelta(seconds=20), exponential=True),
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
def training():
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
        from datetime import date

        from retrainer_airflow.tasks import airflow_outcomes, task_params

        from retrainer.pipeline import step_prepare

        facts = validated["run"]
        # A forced run gets its own key, so it trains a new model instead of reusing the last one.
        key_scope = f"{facts['dag_id']}:{facts['run_id']}" if facts["force"] else facts["dag_id"]
        with airflow_outcomes():
            prepared = step_prepare(
                task_params(), date.fromisoformat(facts["as_of"]), dag_id=key_scope, window=facts["window_days"]
            )
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
    RegisterOperator(task_id="register", evaluated=evaluate(trained))


training()
