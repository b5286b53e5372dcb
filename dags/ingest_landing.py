"""ingest_landing__<model>: files dropped into a model's landing folder retrain it for the days they cover.

One DAG per model file (``ingest_landing`` for a single params.yaml; see ``dags/training.py``), each
watching the model's own ``landing.folder`` and triggering the model's own ``training``.

    wait_for_files (deferrable FileSensor: waits in the triggerer, holds no worker slot)
      -> claim_files   move each file atomically into staging/<content hash>/ (or quarantine)
      -> ingest_files  split rows by day into data/raw/dt=.../part.parquet (DVC), ledger entry
      -> trigger_training[day]  one `training` run per covered day, conf {"as_of", "reason": "new_data"}
      -> check_quarantine        fails the run, naming each file, if any file had to be quarantined

Why TriggerDagRunOperator and not an Asset that `training` is scheduled on: an asset event carries
no logical date and several events can be folded into one run, while every `training` run must
train as of one explicit day. A trigger per day gives one run per day, with a run id naming the day
and the partition's content hash, so a retried trigger finds its run instead of making a second one.
The ingest task still updates the model's Asset ``retrainer_raw_partitions__<model>`` (days in its extra), for DAGs
that react to new data in general.

Runs back to back (``@continuous``, one at a time): each run waits for the next files. Wiring only;
the logic is in ``retrainer.landing``, called from TaskFlow tasks (no step has a link to carry, the
one reason a step is an operator in ``training``) between Airflow's own sensor and trigger operators.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.providers.standard.sensors.filesystem import FileSensor
from airflow.sdk import get_current_context, task
from retrainer_airflow.per_model import DagModel, for_model, model_dags
from retrainer_airflow.tasks import landing_glob
from retrainer_notifier import notified_task_defaults  # plugins/: task log + optional webhook

from retrainer.names import DAG_TAG, DVC_POOL, INGEST_LANDING_DAG, TRAINING_DAG


@model_dags(
    dag_id=INGEST_LANDING_DAG,
    description="Wait for files in the landing folder, stage them, write daily partitions, trigger training",
    schedule="@continuous",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # required by @continuous; also keeps one claimer of the landing folder
    tags=[DAG_TAG],
    default_args=notified_task_defaults(2, timedelta(seconds=10)),
    user_defined_macros=for_model(lambda model: {"landing_glob": partial(landing_glob, model.name)}),
    doc_md=__doc__,
)
def ingest_landing(model: DagModel):
    RAW_PARTITIONS = model.raw_partitions  # noqa: N806 - the model's asset, named as in the other DAG files

    wait_for_files = FileSensor(
        task_id="wait_for_files",
        filepath="{{ landing_glob() }}",
        fs_conn_id="fs_default",
        deferrable=True,
        poke_interval=5,
        # After a quiet half day the run ends as skipped and the next one starts waiting.
        timeout=timedelta(hours=12).total_seconds(),
        soft_fail=True,
    )

    @task
    def claim_files() -> dict:
        from retrainer_airflow.tasks import task_params

        from retrainer.landing import claim_files as claim

        claimed = claim(task_params())
        for item in claimed["claimed"]:
            print(f"claimed {item['name']} -> {item['path']}")
        for item in claimed["quarantined"]:
            print(f"QUARANTINED {item['name']} -> {item['to']}: {item['reason']}")
        for name in claimed["still_being_written"]:
            print(f"{name} is still being written: left for the next run")
        return claimed

    @task(pool=DVC_POOL, outlets=[RAW_PARTITIONS])
    def ingest_files(claimed: dict) -> list[dict]:
        """Returns one trigger (run id, conf) per covered day; the whole summary goes to XCom "summary"."""
        from retrainer_airflow.tasks import task_params

        from retrainer.landing import describe, ingest_staged

        summary = ingest_staged(task_params())
        print(describe(summary))
        context = get_current_context()
        context["outlet_events"][RAW_PARTITIONS].extra = {"days": summary["days"]}
        # Files quarantined at claim time (duplicates, unsupported types) count as well.
        summary["quarantined"] = claimed["quarantined"] + summary["quarantined"]
        context["ti"].xcom_push(key="summary", value=summary)
        return summary["triggers"]

    # Runs when the triggers ran or had nothing to trigger (no day ingested): none_failed_min_one_success.
    @task(trigger_rule="none_failed_min_one_success")
    def check_quarantine() -> None:
        from airflow.sdk.exceptions import AirflowFailException

        summary = get_current_context()["ti"].xcom_pull(task_ids="ingest_files", key="summary") or {}
        quarantined = summary.get("quarantined", [])
        if quarantined:  # AirflowFailException: no retry, the same files would fail again
            lines = "\n".join(f"- {q['name']} -> {q['to']}\n  {q['reason']}" for q in quarantined)
            raise AirflowFailException(f"{len(quarantined)} landing file(s) quarantined, not ingested:\n{lines}")
        print(f"no file quarantined; days ingested: {', '.join(summary.get('days', [])) or 'none'}")

    claimed = claim_files()
    wait_for_files >> claimed
    triggers = ingest_files(claimed)
    trigger_training = TriggerDagRunOperator.partial(
        task_id="trigger_training",
        trigger_dag_id=model.dag_id(TRAINING_DAG),
        logical_date=None,  # like a UI trigger: the run's as-of date comes from its conf
        skip_when_already_exists=True,
        wait_for_completion=False,
    ).expand_kwargs(triggers)
    # Report quarantined files after the good days were triggered.
    [triggers, trigger_training] >> check_quarantine()
