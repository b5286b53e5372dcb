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

Wiring only: the logic is ``retrainer.monitor`` and ``retrainer.drift``. ``check`` is an operator of
``plugins/retrainer_operators.py`` because its task links to the drift report (only an operator can
carry an extra link); the other steps have nothing to link to and are TaskFlow tasks or Airflow's
operators. To see it react, inject drift into the demo source: ``make drift-demo`` (see the README).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Asset, AssetOrTimeSchedule, CronDataIntervalTimetable, Param, dag, task
from retrainer_notifier import deadline_alerts, notified_task_defaults, notify  # plugins/: notifiers
from retrainer_operators import DriftCheckOperator  # plugins/: the check, with a link to its report

from retrainer.names import (
    DAG_TAG,
    DRIFT_MONITOR_DAG,
    EVENT_DRIFT_RETRAIN,
    RAW_PARTITIONS_ASSET,
    TRAINING_DAG,
)

# Updated by ingest_landing and by training's ingest whenever partitions are written.
RAW_PARTITIONS = Asset(RAW_PARTITIONS_ASSET)


@dag(
    dag_id=DRIFT_MONITOR_DAG,
    description="Evidently drift check of recent data against the champion's training data; retrain on drift",
    schedule=AssetOrTimeSchedule(
        timetable=CronDataIntervalTimetable("30 1 * * *", timezone="UTC"), assets=RAW_PARTITIONS
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    # Checks read and append the ledger in date order; one at a time keeps the history simple.
    max_active_runs=1,
    tags=[DAG_TAG, "monitoring"],
    default_args=notified_task_defaults(2, timedelta(seconds=20), exponential=True),
    deadline=deadline_alerts(DRIFT_MONITOR_DAG),  # params.yaml deadlines.drift_monitor
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
    @task.short_circuit
    def should_retrain(checked: dict) -> bool:
        if checked["retrain"]:
            print(f"retrain: triggering {TRAINING_DAG} with conf {checked['trigger_conf']}")
        else:
            print(f"no retrain ({checked['action']}): nothing triggered")
        return bool(checked["retrain"])

    @task
    def record_trigger(checked: dict) -> dict:
        from retrainer_airflow.tasks import task_params

        from retrainer.monitor import record_trigger as record

        trigger = record(
            task_params(),
            checked["as_of"],
            checked["trigger_run_id"],
            checked["trigger_conf"]["report"],
            checked["champion_version"],
        )
        print(f"recorded drift-triggered {TRAINING_DAG} run {trigger['training_run_id']} for {trigger['as_of']}")
        notify(EVENT_DRIFT_RETRAIN, {"summary": f"{checked['summary_line']}: {TRAINING_DAG} run "
                                     f"{trigger['training_run_id']} started", "dag_id": DRIFT_MONITOR_DAG, **trigger})
        return trigger

    # The check runs in an operator of plugins/retrainer_operators.py: its task links to the Evidently report.
    checked = DriftCheckOperator(task_id="check").output
    trigger_training = TriggerDagRunOperator(
        task_id="trigger_training",
        trigger_dag_id=TRAINING_DAG,
        trigger_run_id=checked["trigger_run_id"],
        conf=checked["trigger_conf"],
        # No logical date: the training run's as-of date comes from the conf.
        logical_date=None,
        skip_when_already_exists=True,
        wait_for_completion=False,
        note=f"started by {DRIFT_MONITOR_DAG}: retrain on drift",
    )
    should_retrain(checked) >> trigger_training >> record_trigger(checked)


drift_monitor()
