"""drift_monitor__<model>: is the recent data still like the champion's training data? If not, retrain.

One DAG per model file (``drift_monitor`` for a single params.yaml; see ``dags/training.py``). Daily
(the completed day before 01:30 UTC, ``schedule.drift_cron``), and whenever the model's new raw
partitions land (its ``retrainer_raw_partitions__<model>`` asset). One run checks one as-of date:

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
    Triggers the model's ``training`` with conf ``{reason: drift, report: <path>, as_of: <date>}`` (run id
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
from airflow.sdk import AssetOrTimeSchedule, CronDataIntervalTimetable, Param, task
from retrainer_airflow.per_model import DagModel, for_model, model_dags
from retrainer_notifier import deadline_alerts, notified_task_defaults, notify  # plugins/: notifiers
from retrainer_operators import DriftCheckOperator  # plugins/: the check, with a link to its report

from retrainer.names import DAG_TAG, DRIFT_MONITOR_DAG, EVENT_DRIFT_RETRAIN, TRAINING_DAG


@model_dags(
    dag_id=DRIFT_MONITOR_DAG,
    description="Evidently drift check of recent data against the champion's training data; retrain on drift",
    # The model's raw partitions: updated by its ingest_landing and its training's ingest.
    schedule=for_model(lambda model: AssetOrTimeSchedule(
        timetable=CronDataIntervalTimetable(model.cron("drift"), timezone="UTC"), assets=model.raw_partitions
    )),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    # Checks read and append the ledger in date order; one at a time keeps the history simple.
    max_active_runs=1,
    tags=[DAG_TAG, "monitoring"],
    default_args=notified_task_defaults(2, timedelta(seconds=20), exponential=True),
    deadline=for_model(lambda model: deadline_alerts(DRIFT_MONITOR_DAG, model.params)),  # params.yaml deadlines.drift_monitor
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
def drift_monitor(model: DagModel):
    TRAINING_DAG_ID = model.dag_id(TRAINING_DAG)  # noqa: N806 - this model's training DAG

    @task.short_circuit
    def should_retrain(checked: dict) -> bool:
        if checked["retrain"]:
            print(f"retrain: triggering {TRAINING_DAG_ID} with conf {checked['trigger_conf']}")
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
        print(f"recorded drift-triggered {TRAINING_DAG_ID} run {trigger['training_run_id']} for {trigger['as_of']}")
        notify(EVENT_DRIFT_RETRAIN, {"summary": f"{checked['summary_line']}: {TRAINING_DAG_ID} run "
                                     f"{trigger['training_run_id']} started", "dag_id": model.dag_id(DRIFT_MONITOR_DAG),
                                     **trigger})
        return trigger

    # The check runs in an operator of plugins/retrainer_operators.py: its task links to the Evidently report.
    checked = DriftCheckOperator(task_id="check").output
    trigger_training = TriggerDagRunOperator(
        task_id="trigger_training",
        trigger_dag_id=TRAINING_DAG_ID,
        trigger_run_id=checked["trigger_run_id"],
        conf=checked["trigger_conf"],
        # No logical date: the training run's as-of date comes from the conf.
        logical_date=None,
        skip_when_already_exists=True,
        wait_for_completion=False,
        note=f"started by {model.dag_id(DRIFT_MONITOR_DAG)}: retrain on drift",
    )
    should_retrain(checked) >> trigger_training >> record_trigger(checked)
