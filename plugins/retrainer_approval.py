"""The training run's approval (``registry.promotion: manual``) as Airflow human-in-the-loop tasks.

``ChampionApprovalOperator`` (task ``approve``) is Airflow's ``HITLOperator`` with the options
*Approve* / *Reject* and a *Reason* field: when the register step left the version
``awaiting_approval``, it writes the request (subject and Markdown page from the run's decision record,
``retrainer.approval``), announces it (:func:`notify_pending_approval`) and parks the task in Airflow's
``awaiting_input`` state; the request shows under *Required actions* in the UI. Otherwise (``promotion:
auto``, a failed gate...) it skips at once, and so does the next task.

Settings come from params.yaml when the task runs, not when the DAG file is parsed:

* ``registry.approval_timeout`` -> ``response_timeout``: no answer by then takes the default, *Reject*,
  and the answer says it timed out (the scheduler's ``awaiting_input`` sweep resolves it);
* ``registry.approvers`` -> ``assigned_users``. Who may answer is decided by Airflow's API server: the
  response endpoint (``PATCH /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}/-1/hitlDetails``)
  needs edit access to the DAG (SimpleAuthManager: role *user*, *op* or *admin*; a *viewer* gets 403),
  and when approvers are listed, the user must be one of them as well (403 otherwise).

``ApplyApprovalOperator`` (task ``apply_approval``) acts on the answer: ``retrainer.approval.apply_answer``
(approve: the promote DAG's check-and-set; reject / timeout: recorded). It is a task of its own so a
retry re-applies the same answer (safe) instead of asking the person again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import BaseOperator, Param

from retrainer.names import APPROVE, REJECT

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)
# The answer's form field (not "reason": the training DAG's own param of that name says why the run started).
COMMENT_PARAM = "comment"


def notify_pending_approval(context: Context, subject: str, url: str) -> None:
    """Announce a pending approval: the task log, and every notifier of params.yaml ``notifications``
    wanting ``approval_pending`` (``retrainer_notifier.notify``; never raises)."""
    from retrainer_notifier import notify

    from retrainer.names import EVENT_APPROVAL_PENDING

    dag_run = context["dag_run"]
    summary = f"approval needed in {dag_run.dag_id} (run {dag_run.run_id}): {subject}"
    log.warning("retrainer approval notification: Retrainer: %s\n%s", summary, url)
    notify(EVENT_APPROVAL_PENDING, {"summary": summary, "dag_id": dag_run.dag_id, "run_id": dag_run.run_id,
                                    "task_id": context["ti"].task_id, "url": url})


def approval_links(params: Any, evaluated: dict, registered: dict) -> dict[str, str | None]:
    """The request page's links: the MLflow runs and version, the Data Docs, the drift report, the lineage."""
    from retrainer_airflow.links import link_base_url
    from retrainer_operators import _lineage_page
    from retrainer_ui_data import (
        mlflow_run_link,
        mlflow_ui_url,
        mlflow_version_link,
        report_path,
        report_url,
        validation_report,
    )

    from retrainer.evaluate.decision import Decision
    from retrainer.names import model_of
    from retrainer.tracking import mlflow_client

    facts = evaluated["run"]
    decision = Decision.load(evaluated["evaluated"]["decision_path"])
    ui, base, client = mlflow_ui_url(params), link_base_url(), mlflow_client(params)
    lineage = _lineage_page(facts["dag_id"], facts["run_id"])
    model = model_of(facts["dag_id"])  # reports of a models/ deployment's model: under its own route

    def run_link(run_id: str | None) -> str | None:
        if not (ui and run_id):
            return None
        try:
            return mlflow_run_link(ui, client.get_run(run_id).info.experiment_id, run_id)
        except Exception:  # noqa: BLE001 - a missing link must not keep the request from being asked
            log.warning("no MLflow link for run %s", run_id, exc_info=True)
            return None

    return {
        "MLflow run of the challenger": run_link(decision.challenger_run_id) or lineage,
        "MLflow model version": mlflow_version_link(ui, registered["name"], registered["version"]),
        f"MLflow run of champion v{decision.champion_version}": run_link(decision.champion_run_id),
        "Data Docs of the as-of day": report_url(validation_report(params, facts["as_of"]), base, model),
        "Drift report that started this run": report_url(report_path(params, facts.get("trigger_report")), base, model),
        "Lineage of this run (Retrainer)": lineage,
        "This run in Airflow": facts.get("ui_url"),
    }


class ChampionApprovalOperator(HITLOperator):
    """Wait for a person to approve or reject the run's challenger as champion (Required actions)."""

    template_fields = (*HITLOperator.template_fields, "evaluated", "registered")
    ui_color = "#fdf3d8"

    def __init__(self, *, evaluated: Any, registered: Any, params: Any = None, **kwargs: Any):
        # ``params`` given here are the DAG's (merged in by Airflow): the form has only its own field.
        del params
        super().__init__(
            subject="Approve the challenger as champion?",  # replaced by the run's own when it asks
            options=[APPROVE, REJECT],
            defaults=[REJECT],  # what a timeout answers
            multiple=False,
            params={
                COMMENT_PARAM: Param(
                    "",
                    type="string",
                    title="Reason",
                    description="Why you approve or reject (recorded with your user name on the model version).",
                )
            },
            **kwargs,
        )
        self.evaluated = evaluated
        self.registered = registered

    def execute(self, context: Context) -> Any:
        from airflow.sdk.exceptions import AirflowSkipException
        from retrainer_airflow.links import ui_base_url
        from retrainer_airflow.tasks import task_params

        from retrainer.approval import approval_body, approval_subject, needs_approval
        from retrainer.evaluate.decision import Decision

        registered = self.registered
        if not needs_approval(registered):
            raise AirflowSkipException(f"no approval needed: {registered.get('note') or registered.get('status')}")
        params = task_params()
        decision = Decision.load(self.evaluated["evaluated"]["decision_path"])
        links = approval_links(params, self.evaluated, registered)
        self.subject = approval_subject(decision, registered)
        self.body = approval_body(
            decision, registered, links, timeout=params.registry.approval_timeout, approvers=params.registry.approvers
        )
        self.response_timeout = params.registry.approval_timeout
        self.assigned_users = [{"id": user, "name": user} for user in params.registry.approvers] or None
        url = self.generate_link_to_ui_from_context(context=context, base_url=ui_base_url())
        print(f"{self.subject}\nanswer under Required actions: {url}")
        notify_pending_approval(context, self.subject, url)
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """The answer as JSON-safe facts for ``apply_approval``: option, who, reason, when, timed out."""
        answered = super().execute_complete(context=context, event=event)
        user = answered.get("responded_by_user") or {}
        name, user_id = user.get("name"), user.get("id")
        by = None if not (name or user_id) else (name if name == user_id or not user_id else f"{name} (id {user_id})")
        at = answered.get("responded_at")
        answer = {
            "option": answered["chosen_options"][0],
            "by": by,
            "reason": str((answered.get("params_input") or {}).get(COMMENT_PARAM) or ""),
            "at": at.isoformat() if hasattr(at, "isoformat") else str(at or ""),
            "timed_out": bool(event.get("timedout")) or by is None,
        }
        print(f"answer: {answer['option']} by {by or 'nobody (timed out)'}"
              + (f": {answer['reason']}" if answer["reason"] else ""))
        return answer


class ApplyApprovalOperator(BaseOperator):
    """Act on the approval's answer: promote by check-and-set, or record the rejection (who and why)."""

    template_fields = ("evaluated", "registered", "answer")
    ui_color = "#f4ecf8"

    def __init__(self, *, evaluated: Any, registered: Any, answer: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.evaluated = evaluated
        self.registered = registered
        self.answer = answer

    def execute(self, context: Context) -> dict[str, Any]:
        from retrainer_airflow.tasks import registry_outcomes, task_params

        from retrainer.approval import Answer, apply_answer

        facts = self.evaluated["run"]
        with registry_outcomes():
            record = apply_answer(
                task_params(),
                self.registered,
                self.evaluated["evaluated"]["decision_path"],
                Answer.from_dict(self.answer),
                run=f"{facts['dag_id']}/{facts['run_id']}",
            )
        print(record["note"])
        if record.get("status") == "approved_manual":  # the champion moved
            from retrainer_notifier import notify

            from retrainer.names import EVENT_PROMOTION

            notify(EVENT_PROMOTION, {"summary": record["note"], "dag_id": facts["dag_id"], "run_id": facts["run_id"],
                                     **{k: record.get(k) for k in ("version", "recorded_by", "reason",
                                                                   "champion_before", "champion_after")}})
        return record
