"""drift_monitor: is the recent data still like the champion's training data? If not, retrain.

Daily (the completed day before 01:30 UTC), and whenever new raw partitions land (the
``retrainer_raw_partitions`` asset). One run checks one as-of date:

``check``
    Evidently 0.7 ``DataDriftPreset`` of the last ``drift.window_days`` of ingested partitions
    against the champion's training data (reference built once per champion version, DVC-tracked),
    plus prediction drift of batch-scoring outputs and performance on labelled rows when available.
    Writes the HTML and JSON report to ``reports/drift/<date>/``, logs an MLflow run to the
    monitoring experiment, records the check in ``reports/drift/ledger.json``, and logs one line:
    drifted share, drifted columns with scores, decision.
``should_retrain``
    Short-circuits unless the decision is ``retrain`` (drift signal seen in K of the last M checks,
    and no drift-triggered retrain within the cooldown; all in params.yaml ``drift``).
``trigger_training``
    Triggers ``training`` with conf ``{reason: drift, report: <path>, as_of: <date>}`` (run id
    ``drift__<date>``: a rerun never starts a second one).
``record_trigger``
    Notes the trigger in the ledger; the cooldown counts from it.

Wiring only: the logic is ``retrainer.monitor`` and ``retrainer.drift``. To see it react, inject
drift into the demo source: ``make drift-demo`` (see the README).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    CronDataIntervalTimetable,
    Param,
    dag,
    get_current_context,
    task,
)

# Updated by ingest_landing and by training's ingest whenever partitions are written.
RAW_PARTITIONS = Asset("retrainer_raw_partitions")
TRAINING_DAG_ID = "training"


@dag(
    dag_id="drift_monitor",
    description="Evidently drift check of recent data against the champion's training data; retrain on drift",
    schedule=AssetOrTimeSchedule(
        timetable=CronDataIntervalTimetable("30 1 * * *", timezone="UTC"), assets=RAW_PARTITIONS
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    # Checks read and append the ledger in date order; one at a time keeps the history simple.
    max_active_runs=1,
    tags=["retrainer", "monitoring"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=20), "retry_exponential_backoff": True},
    params={
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date",
            title="As-of date",
            description="Check the window ending this day (YYYY-MM-DD). Empty: the newest day of the "
            "triggering data, the run's data interval, or the trigger day.",
        ),
        "window_days": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=366,
            title="Window length (days)",
            description="Override drift.window_days from params.yaml for this check.",
        ),
    },
    doc_md=__doc__,
)
def drift_monitor():
    @task
    def check() -> dict:
        from datetime import date

        from retrainer.airflow_support import airflow_outcomes, monitor_facts, task_params
        from retrainer.monitor import run_check

        with airflow_outcomes():
            facts = monitor_facts(get_current_context())
            params = task_params()
            summary = run_check(
                params,
                date.fromisoformat(facts["as_of"]),
                window=facts["window_days"],
                context={k: facts[k] for k in ("dag_id", "run_id", "run_type")},
            )
        print(summary["summary_line"])
        print(f"decision: {summary['decision']['action']} ({summary['decision']['note']})")
        for reason in summary["decision"]["reasons"]:
            print(f"signal: {reason}")
        if summary["report_html"]:
            print(f"report: {params.path(summary['report_html'])} (JSON: {params.path(summary['report_json'])})")
        print(f"MLflow: experiment {params.drift.experiment!r}, run {summary['mlflow_run_id']}")
        return {
            "as_of": summary["as_of"],
            "action": summary["decision"]["action"],
            "retrain": summary["decision"]["retrain"],
            "summary_line": summary["summary_line"],
            "report_html": summary["report_html"],
            "summary_json": summary["summary_json"],
            "mlflow_run_id": summary["mlflow_run_id"],
            "champion_version": summary["champion"]["version"],
            "trigger_conf": summary["trigger_conf"],
            "trigger_run_id": summary["trigger_run_id"],
        }

    @task.short_circuit
    def should_retrain(checked: dict) -> bool:
        if checked["retrain"]:
            print(f"retrain: triggering {TRAINING_DAG_ID} with conf {checked['trigger_conf']}")
        else:
            print(f"no retrain ({checked['action']}): nothing triggered")
        return bool(checked["retrain"])

    @task
    def record_trigger(checked: dict) -> dict:
        from retrainer.airflow_support import task_params
        from retrainer.monitor import record_trigger as record

        trigger = record(
            task_params(),
            checked["as_of"],
            checked["trigger_run_id"],
            checked["trigger_conf"]["report"],
            checked["champion_version"],
        )
        print(f"recorded drift-triggered {TRAINING_DAG_ID} run {trigger['training_run_id']} for {trigger['as_of']}")
        return trigger

    checked = check()
    trigger_training = TriggerDagRunOperator(
        task_id="trigger_training",
        trigger_dag_id=TRAINING_DAG_ID,
        trigger_run_id=checked["trigger_run_id"],
        conf=checked["trigger_conf"],
        # No logical date: the training run's as-of date comes from the conf.
        logical_date=None,
        skip_when_already_exists=True,
        wait_for_completion=False,
        note="started by drift_monitor: retrain on drift",
    )
    should_retrain(checked) >> trigger_training >> record_trigger(checked)


drift_monitor()
