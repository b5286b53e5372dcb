"""Retrainer's operators, each with a link from its task instance to what it produced.

``ValidateOperator``, ``TrainOperator`` and ``RegisterOperator`` run the `training` DAG's validate, train
and register steps; ``DriftCheckOperator`` runs `drift_monitor`'s check. Their bodies are the library's
steps (``retrainer.pipeline``, ``retrainer.monitor``), exactly as the TaskFlow tasks they replace: same
task ids, inputs (templated, so an upstream ``XComArg`` resolves at run time), return values and logs.
An operator exists here only for its link (TaskFlow tasks cannot carry extra links): a step with
nothing to link to stays a TaskFlow task in its DAG file.

Like the TaskFlow tasks they replace (``-> dict``), they push their result both as ``return_value`` and
key by key (``multiple_outputs``): drift_monitor's trigger reads ``check``'s ``trigger_run_id`` XCom.

Extra links (Airflow 3): at the end of a try the task runner asks each link for its URL and stores it
as an XCom the UI reads. Each operator pushes the URL under its link's ``link_key`` while it runs, so
the link works for a failed gate too (validate links to the failing partition's Data Docs):

* Data Docs: the GX Data Docs page of the partition, served by the control-room plugin;
* MLflow run / MLflow model version: the MLflow UI ($RETRAINER_MLFLOW_UI_URL, or an http tracking
  server), else the run's lineage panel in the control room;
* Drift report: Evidently's HTML report, served by the control-room plugin.

Nothing heavy is imported here: the library is imported inside ``execute``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator, BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.types import TaskInstanceKey

log = logging.getLogger(__name__)


class _PushedLink(BaseOperatorLink):
    """A link whose URL the operator pushed as an XCom under ``link_key`` (empty: no link)."""

    link_key: ClassVar[str] = ""

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        # Called by the task runner at the end of the try; the UI then reads the stored result.
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_value(ti_key=ti_key, key=self.link_key) or ""


class DataDocsLink(_PushedLink):
    name = "Data Docs"
    link_key = "retrainer_link_data_docs"


class MlflowRunLink(_PushedLink):
    name = "MLflow run"
    link_key = "retrainer_link_mlflow_run"


class MlflowModelVersionLink(_PushedLink):
    name = "MLflow model version"
    link_key = "retrainer_link_mlflow_version"


class DriftReportLink(_PushedLink):
    name = "Drift report"
    link_key = "retrainer_link_drift_report"


def _push_link(context: Context, link: type[_PushedLink], url: str | None) -> None:
    """Store the URL of ``link`` for this try; a link that cannot be made never fails the task."""
    try:
        context["ti"].xcom_push(key=link.link_key, value=url or "")
    except Exception:  # noqa: BLE001 - the task's own outcome matters more than its link
        log.exception("could not store the %r link", link.name)


def _lineage_page(dag_id: str, run_id: str) -> str:
    from urllib.parse import quote

    from retrainer_airflow.links import link_base_url
    from retrainer_ui_data import URL_PREFIX

    return f"{link_base_url()}{URL_PREFIX}/runs/{quote(dag_id, safe='')}/{quote(run_id, safe='')}"


class ValidateOperator(BaseOperator):
    """The raw-data gate of every partition ingest wrote; quarantine and fail on critical failures."""

    template_fields = ("ingested",)
    operator_extra_links = (DataDocsLink(),)
    ui_color = "#e8f4ea"

    def __init__(self, *, ingested: Any, **kwargs: Any):
        super().__init__(**{"multiple_outputs": True, **kwargs})
        self.ingested = ingested

    def execute(self, context: Context) -> dict:
        from datetime import date

        from retrainer_airflow.links import link_base_url
        from retrainer_airflow.tasks import airflow_outcomes, current_model, task_params
        from retrainer_ui_data import report_url, validation_report

        from retrainer.pipeline import step_validate

        as_of = self.ingested["run"]["as_of"]
        params = None
        try:
            with airflow_outcomes():
                params = task_params()
                summary = step_validate(params, date.fromisoformat(as_of), self.ingested["ingest"])
        finally:
            if params is not None:
                _push_link(context, DataDocsLink,
                           report_url(validation_report(params, as_of), link_base_url(), current_model(context)))
        for part in summary["partitions"]:
            print(f"{part['day']}: passed, report {part['report_json']}, warnings {part['warnings'] or 'none'}")
        return {"run": self.ingested["run"], "validation": summary}


class TrainOperator(BaseOperator):
    """Fit the model on the prepared window and log it to MLflow (reused when the run key matches)."""

    template_fields = ("prepared",)
    operator_extra_links = (MlflowRunLink(),)
    ui_color = "#e8eef8"

    def __init__(self, *, prepared: Any, **kwargs: Any):
        super().__init__(**{"multiple_outputs": True, **kwargs})
        self.prepared = prepared

    def execute(self, context: Context) -> dict:
        from retrainer_airflow.tasks import airflow_outcomes, task_params
        from retrainer_ui_data import mlflow_run_link, mlflow_ui_url

        from retrainer.pipeline import step_train
        from retrainer.tracking import mlflow_client

        facts = self.prepared["run"]
        keys = ("dag_id", "run_id", "run_type", "try_number", "reason", "note", "trigger_report", "ui_url")
        run_context = {k: facts[k] for k in keys}
        with airflow_outcomes():
            params = task_params()
            trained = step_train(params, self.prepared["prepared"], run_context)
        experiment_id = mlflow_client(params).get_run(trained["run_id"]).info.experiment_id
        url = mlflow_run_link(mlflow_ui_url(params), experiment_id, trained["run_id"])
        _push_link(context, MlflowRunLink, url or _lineage_page(facts["dag_id"], facts["run_id"]))
        metric = params.evaluation.primary_metric
        print(f"MLflow run {trained['run_id']} ({'reused' if trained['reused'] else 'new'}): "
              f"holdout {metric} {trained['metrics'].get(f'holdout_{metric}', float('nan')):.4f}")
        return {**self.prepared, "trained": trained}


class RegisterOperator(BaseOperator):
    """Register the model version, point `challenger` at it and act on the gate decision."""

    template_fields = ("evaluated",)
    operator_extra_links = (MlflowModelVersionLink(),)
    ui_color = "#f4ecf8"

    def __init__(self, *, evaluated: Any, **kwargs: Any):
        super().__init__(**{"multiple_outputs": True, **kwargs})
        self.evaluated = evaluated

    def execute(self, context: Context) -> dict:
        from retrainer_airflow.tasks import airflow_outcomes, task_params
        from retrainer_ui_data import mlflow_ui_url, mlflow_version_link

        from retrainer.pipeline import step_register

        evaluated = self.evaluated
        with airflow_outcomes():
            params = task_params()
            registered = step_register(params, evaluated["trained"], evaluated["evaluated"], evaluated["run"])
        url = mlflow_version_link(mlflow_ui_url(params), registered["name"], registered["version"])
        facts = evaluated["run"]
        _push_link(context, MlflowModelVersionLink, url or _lineage_page(facts["dag_id"], facts["run_id"]))
        print(f"{registered['name']} v{registered['version']} aliases {registered['aliases']} "
              f"({registered['status']}): {registered['note']}")
        if registered["status"] == "promoted":
            from retrainer_notifier import notify

            from retrainer.names import EVENT_PROMOTION

            notify(EVENT_PROMOTION, {
                "summary": f"{registered['name']} v{registered['version']} is champion "
                           f"(was {'v' + registered['champion_before'] if registered['champion_before'] else 'none'})",
                "dag_id": facts["dag_id"], "run_id": facts["run_id"], "as_of": facts.get("as_of"),
                "name": registered["name"], "version": registered["version"], "note": registered["note"],
                "url": url or None,
            })
        return registered


class DriftCheckOperator(BaseOperator):
    """One drift check of the recent window against the champion's training data (retrainer.monitor)."""

    operator_extra_links = (DriftReportLink(),)
    ui_color = "#fbf1e4"

    def __init__(self, **kwargs: Any):
        super().__init__(**{"multiple_outputs": True, **kwargs})

    def execute(self, context: Context) -> dict:
        from datetime import date

        from retrainer_airflow.links import link_base_url
        from retrainer_airflow.tasks import airflow_outcomes, current_model, monitor_facts, task_params
        from retrainer_ui_data import report_path, report_url

        from retrainer.monitor import run_check

        with airflow_outcomes():
            facts = monitor_facts(context)
            params = task_params()
            summary = run_check(
                params,
                date.fromisoformat(facts["as_of"]),
                window=facts["window_days"],
                context={k: facts[k] for k in ("dag_id", "run_id", "run_type")},
            )
        _push_link(context, DriftReportLink,
                   report_url(report_path(params, summary["report_html"]), link_base_url(), current_model(context)))
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
