"""MLflow set-up shared by train, evaluate and register: one place decides URIs and experiments."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from retrainer.config import Params

if TYPE_CHECKING:
    from mlflow import MlflowClient

RUN_KEY_TAG = "retrainer.run_key"


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
