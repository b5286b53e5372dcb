"""The thin layer between Airflow task bodies (DAG tasks and the plugins' operators) and the library.

It finds the params of a task's model (from its DAG id), reads run facts out of the Airflow context (the one rule is
:func:`retrainer.run_context.from_airflow`; these are its JSON-safe views for XCom), and turns the
library's errors into the task outcome a user expects: bad config or bad data fails at once (a retry
would give the same answer), an empty day skips the rest of the run, a flaky source is retried.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from retrainer.config import ConfigError, Params
from retrainer.names import model_of
from retrainer_airflow.links import run_ui_url
from retrainer_airflow.per_model import PROJECT_ROOT as PROJECT_ROOT  # re-exported: where a task looks
from retrainer_airflow.per_model import deployment


def current_model(context: Mapping[str, Any] | None = None) -> str | None:
    """The model of the running task (or of ``context``): its DAG id's ``__<name>`` suffix (None: a bare
    id, one params file, or a DAG that is not one of Retrainer's)."""
    if context is None:
        from airflow.sdk import get_current_context

        try:
            context = get_current_context()
        except RuntimeError:  # not inside a task (a parse, a callback): the only model, if there is one
            return None
    dag_run = context.get("dag_run")
    return model_of(dag_run.dag_id) if dag_run is not None else None


def model_params(model: str | None) -> Params:
    """The params of ``model`` (None: the only one) in the deployment in force (per_model.deployment)."""
    found = deployment()
    return found.load(model if found.multi else None)


def task_params() -> Params:
    """The params of the running task's model: models/<name>.yaml over the shared file for a DAG id
    ``<dag>__<name>``; the one params file ($RETRAINER_PARAMS, else the project's) for a bare id."""
    found = deployment()
    return found.load(current_model() if found.multi else None)


def landing_glob(model: str | None = None) -> str:
    """The landing folder's glob of ``model`` for the `ingest_landing` file sensor (a template macro: the
    params file is read when the task runs, not when the DAG file is parsed). Creates the folder."""
    from retrainer.landing import ensure_folders
    from retrainer.landing import landing_glob as glob_of

    params = model_params(model)
    ensure_folders(params)
    return glob_of(params)


def run_facts(context: Mapping[str, Any], params: Params | None = None) -> dict[str, Any]:
    """The explicit inputs of a training run (retrainer.run_context.from_airflow, every input checked),
    as JSON-safe facts for XCom, with the run's page in the Airflow UI."""
    from retrainer.run_context import from_airflow

    params = params if params is not None else task_params()
    run = from_airflow(context, params)
    return {"ui_url": run_ui_url(run.dag_id, run.run_id), **run.to_dict()}


@contextmanager
def airflow_outcomes() -> Iterator[None]:
    """Map library errors onto Airflow outcomes (fail without retry, or skip)."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from retrainer.errors import GateFailed, InsufficientData, ModelCheckFailed, NoData, SuiteInvalid

    try:
        yield
    except NoData as exc:
        raise AirflowSkipException(str(exc)) from None
    except (ConfigError, GateFailed, InsufficientData, ModelCheckFailed, SuiteInvalid) as exc:
        raise AirflowFailException(str(exc)) from None


def run_user(context: Mapping[str, Any]) -> str:
    """Who started the run (the UI / API user), for the registry's audit trail."""
    dag_run = context["dag_run"]
    user = getattr(dag_run, "triggering_user_name", None)
    return f"{user or 'airflow'} via {dag_run.dag_id}/{dag_run.run_id}"


@contextmanager
def registry_outcomes() -> Iterator[None]:
    """Registry refusals (unknown version, failed gate, no reason, lost check-and-set) and a missing model
    fail or skip at once: a retry would give the same answer. A busy lock or a flaky store is retried."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from retrainer.errors import ChampionMoved, NoModel, PartitionNotReady, PromotionRefused

    try:
        yield
    except (ConfigError, PromotionRefused, ChampionMoved) as exc:
        raise AirflowFailException(str(exc)) from None
    except (NoModel, PartitionNotReady) as exc:
        raise AirflowSkipException(str(exc)) from None


def monitor_facts(context: Mapping[str, Any]) -> dict[str, Any]:
    """The explicit inputs of a drift check (retrainer.run_context.from_airflow; a check may cover one day)."""
    from retrainer.run_context import from_airflow

    run = from_airflow(context, min_window=1)
    return {"as_of": run.as_of.isoformat(), "window_days": run.window_days, "dag_id": run.dag_id,
            "run_id": run.run_id, "run_type": run.run_type}
