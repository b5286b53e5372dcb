"""The MLflow stores, shared by train, evaluate, register, scoring, the monitor and the UI.

One place decides the tracking and registry URIs and the experiments; it is also the one home of the
tags the loop writes on runs and model versions (their names), and of the registry reads everyone
makes: the version holding an alias, the as-of date a version was trained for, the champion's move
history and the registry's status. The writes (registration, every move of ``champion``) are
``retrainer.register``'s.
"""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING, Any

from retrainer.config import Params
from retrainer.names import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

# Run and version tags. train writes RUN_KEY_TAG and AS_OF_TAG on its run, register copies them onto the
# version with the gate's result (GATE_TAG, also on the run), approval, run type and the historical flag;
# a rollback writes DEMOTED_TAG on the version it replaces; HISTORY_TAG is on the registered model.
RUN_KEY_TAG = "retrainer.run_key"
AS_OF_TAG = "retrainer.as_of"
GATE_TAG = "retrainer.gate"
APPROVAL_TAG = "retrainer.approval"
RUN_TYPE_TAG = "retrainer.run_type"
HISTORICAL_TAG = "retrainer.historical"
DEMOTED_TAG = "retrainer.demoted"
HISTORY_TAG = "retrainer.champion_history"
# On a training run: the process that made it (host:pid); on a run a later attempt ended (KILLED), who ended it.
ATTEMPT_TAG = "retrainer.attempt"
ENDED_BY_TAG = "retrainer.ended_by"
# The answer to a training run's approval task (registry.promotion: manual), on the version it was about:
# who answered (or "timeout"), why, and when; APPROVAL_TAG then says approved_manual / rejected_manual /
# rejected_timeout / stale.
APPROVAL_BY_TAG = "retrainer.approval_by"
APPROVAL_REASON_TAG = "retrainer.approval_reason"
APPROVAL_AT_TAG = "retrainer.approval_at"


def mlflow_client(params: Params) -> MlflowClient:
    """Point MLflow at the params' tracking store and return a client for it."""
    # No internet here and in many clusters: keep MLflow from phoning home or probing for Databricks.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    import mlflow

    mlflow.set_tracking_uri(params.tracking_uri)
    mlflow.set_registry_uri(params.tracking_uri)
    return mlflow.MlflowClient(tracking_uri=params.tracking_uri, registry_uri=params.tracking_uri)


def ensure_experiment(params: Params, name: str | None = None) -> str:
    """Experiment id for ``name`` (default: the training experiment), created with our artifact root."""
    client = mlflow_client(params)
    name = name or params.mlflow.experiment
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = None
    if "://" not in params.tracking_uri or params.tracking_uri.startswith("sqlite:"):
        # A local store keeps artifacts under the project, not under the process's working directory.
        location = (params.artifact_root / name).resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:
        # Another task created it in the meantime.
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def find_finished_run(params: Params, experiment_id: str, key: str):
    """The finished run tagged with ``key``, if a previous try already made it."""
    client = mlflow_client(params)
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{RUN_KEY_TAG}` = '{key}' and attributes.status = 'FINISHED'",
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    return runs[0] if runs else None


def attempt_id() -> str:
    """This process as ``host:pid``: which attempt made a training run (ATTEMPT_TAG)."""
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def _process_gone(attempt: str) -> bool:
    """Whether ``host:pid`` names a process of this host that no longer runs (dead, or a zombie)."""
    import socket

    host, _, pid = attempt.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another host's process: its liveness cannot be seen from here
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # killed but not yet reaped by its parent: a zombie runs nothing
        return open(f"/proc/{pid}/stat", encoding="ascii").read().rsplit(")", 1)[1].split()[0] == "Z"  # noqa: PTH123, SIM115
    except (OSError, IndexError):
        return False


def end_abandoned_runs(params: Params, experiment_id: str, key: str, context: dict[str, str]) -> list[str]:
    """Mark KILLED the RUNNING runs of run key ``key`` whose attempt is over; returns their ids.

    A train attempt killed by SIGKILL (or its worker lost) never ends its MLflow run: the retry ends it,
    tagging it ENDED_BY_TAG with the retry's attempt. A run's attempt is over when it ran in another
    process of the same Airflow task (same dag_id and run_id: Airflow never runs two tries of a task at
    once), or its process on this host is gone. A live run of another process is left alone.
    """
    client = mlflow_client(params)
    me = attempt_id()
    running = client.search_runs(
        [experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{key}' and attributes.status = 'RUNNING'"
    )
    same_task = {"airflow.dag_id": context.get("dag_id"), "airflow.run_id": context.get("run_id")}
    ended = []
    for run in running:
        tags = run.data.tags
        attempt = tags.get(ATTEMPT_TAG, "")
        if attempt == me:
            continue
        of_same_task = bool(same_task["airflow.run_id"]) and all(tags.get(k) == v for k, v in same_task.items())
        if not (of_same_task or (attempt and _process_gone(attempt))):
            continue
        retry = f"attempt {me}" + (f" (Airflow {context['dag_id']} {context['run_id']})" if of_same_task else "")
        client.set_tag(run.info.run_id, ENDED_BY_TAG, f"ended as KILLED by the retry, {retry}")
        client.set_terminated(run.info.run_id, status="KILLED")
        ended.append(run.info.run_id)
    return ended


# --------------------------------------------------------------------------------------------------
# Registry reads
# --------------------------------------------------------------------------------------------------


def current_alias(params: Params, alias: str) -> ModelVersion | None:
    """The model version holding ``alias``, or None when the model or the alias does not exist yet."""
    from mlflow.exceptions import MlflowException

    client = mlflow_client(params)
    try:
        return client.get_model_version_by_alias(params.model.registered_name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def alias_version(params: Params, alias: str) -> str | None:
    """The version number holding ``alias`` (``"3"``), or None."""
    return version_number(current_alias(params, alias))


def version_number(version: Any) -> str | None:
    """A model version's number as text, None for no version."""
    return None if version is None else str(version.version)


def version_as_of(params: Params, version: Any) -> str | None:
    """The as-of date a model version was trained for: its tag, else its run's tag."""
    if version is None:
        return None
    as_of = (version.tags or {}).get(AS_OF_TAG)
    if as_of:
        return as_of
    if version.run_id:
        run = mlflow_client(params).get_run(version.run_id)
        return run.data.tags.get(AS_OF_TAG)
    return None


def champion_history(params: Params) -> list[dict[str, Any]]:
    """Champion moves, oldest first (the last ``registry.history_length`` of them)."""
    from mlflow.exceptions import MlflowException

    try:
        model = mlflow_client(params).get_registered_model(params.model.registered_name)
    except MlflowException:
        return []
    raw = (model.tags or {}).get(HISTORY_TAG)
    return json.loads(raw) if raw else []


def champion_summary(params: Params) -> dict | None:
    """Name, version, aliases and primary metric of the current champion, or None when there is none."""
    champion = current_alias(params, CHAMPION)
    if champion is None:
        return None
    client = mlflow_client(params)
    metric = params.evaluation.primary_metric
    run = client.get_run(champion.run_id)
    return {
        "name": params.model.registered_name,
        "version": str(champion.version),
        "aliases": sorted(champion.aliases),
        "metric_name": f"holdout_{metric}",
        "metric_value": run.data.metrics.get(f"holdout_{metric}"),
        "run_id": champion.run_id,
        "as_of": run.data.tags.get(AS_OF_TAG),
        "previous_version": alias_version(params, PREVIOUS_CHAMPION),
        "challenger_version": alias_version(params, CHALLENGER),
    }


def registry_status(params: Params, limit: int = 10) -> dict[str, Any]:
    """Aliases, the newest ``limit`` versions with their gate/approval tags, and the champion history."""
    client = mlflow_client(params)
    name = params.model.registered_name
    versions = sorted(
        client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version), reverse=True
    )[:limit]
    aliases = {a: alias_version(params, a) for a in (CHAMPION, CHALLENGER, PREVIOUS_CHAMPION)}
    return {
        "name": name,
        "aliases": aliases,
        "versions": [
            {
                "version": str(v.version),
                # search results do not carry aliases in MLflow 3: take them from the alias lookups
                "aliases": sorted(a for a, held in aliases.items() if held == str(v.version)),
                "as_of": (v.tags or {}).get(AS_OF_TAG),
                "run_type": (v.tags or {}).get(RUN_TYPE_TAG),
                "gate": (v.tags or {}).get(GATE_TAG),
                "approval": (v.tags or {}).get(APPROVAL_TAG),
                "demoted": (v.tags or {}).get(DEMOTED_TAG),
                "run_id": v.run_id,
            }
            for v in versions
        ],
        "history": champion_history(params),
    }
