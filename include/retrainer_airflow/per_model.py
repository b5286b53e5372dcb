"""Every DAG kind built once per model of the deployment (the dynamic-DAG-from-config pattern).

A DAG file writes its DAG once, as a function of the model, under :func:`model_dags` instead of
``airflow.sdk.dag``::

    @model_dags(dag_id=TRAINING_DAG, schedule=for_model(lambda model: model.cron("training")), ...)
    def training(model: DagModel):
        ...

and gets one DAG per model file: id ``training__<name>``, tagged ``model:<name>``, with the model's own
assets and schedule. A deployment of one params file keeps the bare id ``training``. Parsing reads the
YAML files only (retrainer.deployment); tasks find their model again from their DAG id
(:func:`retrainer_airflow.tasks.task_params`).

A model file that fails validation builds no DAG; ``dags/model_files.py`` turns it into an import error
naming the file and the key, so the other models' DAGs keep parsing (Airflow records import errors per
DAG file, and an exception in a generator would drop every model's DAGs of that file). With one params
file the DAGs are built even when it is invalid, as before: their runs fail naming the key.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrainer import names
from retrainer.config import Params, ScheduleConfig
from retrainer.deployment import Deployment, find_deployment

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def deployment() -> Deployment:
    """The deployment in force: $RETRAINER_PARAMS (a folder of model files or one file), else the
    project's models/ (not the CWD's), else its params.yaml."""
    return find_deployment(PROJECT_ROOT)


@dataclass(frozen=True)
class DagModel:
    """One model as its DAGs see it at parse time: its name (None: a single params file) and params
    (None: that single file is invalid; its runs will say why)."""

    name: str | None
    params: Params | None

    def dag_id(self, kind: str) -> str:
        return names.dag_id(kind, self.name)

    @property
    def tags(self) -> list[str]:
        return [names.model_tag(self.name)] if self.name else []

    @functools.cached_property
    def raw_partitions(self) -> Any:
        """The model's raw-partitions Asset (updated by its ingest steps; its drift_monitor runs on it)."""
        from airflow.sdk import Asset

        return Asset(name=names.raw_partitions_asset(self.name))

    def cron(self, dag: str) -> str:
        """The model's cron schedule of ``dag`` (training, drift, scoring) from its ``schedule`` section."""
        schedule = self.params.schedule if self.params is not None else ScheduleConfig()
        return getattr(schedule, f"{dag}_cron")


def dag_models(found: Deployment | None = None) -> list[DagModel]:
    """The models whose DAGs are built: every valid, isolated model file (one entry for one params file)."""
    found = found or deployment()
    loaded, _errors = found.load_all()
    if not found.multi:
        return [DagModel(None, loaded.get(None))]
    return [DagModel(name, params) for name, params in loaded.items()]


def model_file_errors(found: Deployment | None = None) -> dict[Path, str]:
    """The model files that build no DAG, with why (file and key named)."""
    return (found or deployment()).load_all()[1]


@dataclass(frozen=True)
class for_model:  # noqa: N801 - used like a function in @model_dags arguments
    """A @model_dags argument whose value depends on the model: ``for_model(lambda model: ...)``."""

    value: Callable[[DagModel], Any]


def model_dags(*, dag_id: str, schedule: Any, tags: list[str] | None = None, **dag_kwargs: Any) -> Callable:
    """Like ``airflow.sdk.dag``, for every model: ``dag_id`` is the DAG kind (suffixed per model), the
    model's tag joins ``tags``, :class:`for_model` values (``schedule`` among them) are computed per model,
    and the decorated function takes the model. ``schedule`` is required (None: manual only). Returns the function; the DAGs are registered with Airflow as they are built."""
    from airflow.sdk import dag

    def build(body: Callable[[DagModel], Any]) -> Callable[[DagModel], Any]:
        for model in dag_models():
            kwargs = {k: (v.value(model) if isinstance(v, for_model) else v) for k, v in dag_kwargs.items()}
            timetable = schedule.value(model) if isinstance(schedule, for_model) else schedule
            run = _zero_arg(body, model)
            dag(dag_id=model.dag_id(dag_id), schedule=timetable, tags=[*(tags or []), *model.tags], **kwargs)(run)()
        return body

    return build


def _zero_arg(body: Callable[[DagModel], Any], model: DagModel) -> Callable[[], Any]:
    # Not functools.wraps: the @dag decorator would read the body's signature as DAG params.
    def run() -> Any:
        return body(model)

    run.__name__ = run.__qualname__ = body.__name__
    run.__doc__, run.__module__ = body.__doc__, body.__module__
    return run
