"""The thin layer between Airflow task bodies and the library.

It finds params.yaml for a task, reads run facts out of the Airflow context, and turns the library's
errors into the task outcome a user expects: bad config or bad data fails at once (a retry would
give the same answer), an empty day skips the rest of the run, a flaky source is retried.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from retrainer.config import PARAMS_ENV, ConfigError, Params, load_params

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def task_params() -> Params:
    """params.yaml for a task: $RETRAINER_PARAMS, else the project's own params.yaml (not the CWD's)."""
    return load_params(os.environ.get(PARAMS_ENV) or PROJECT_ROOT / "params.yaml")


def run_type_name(run_type: Any) -> str:
    """``backfill``, ``scheduled``, ``manual``...: the value of Airflow's DagRunType (a str enum whose
    ``str()`` is ``DagRunType.BACKFILL`` in the task SDK), or of its plain-string form."""
    if run_type is None:
        return ""
    value = getattr(run_type, "value", run_type)
    return str(value).split(".")[-1].lower()


def landing_glob() -> str:
    """The landing folder's glob for the `ingest_landing` file sensor (a template macro: the params
    file is read when the task runs, not when the DAG file is parsed). Creates the folder."""
    from retrainer.landing import ensure_folders
    from retrainer.landing import landing_glob as glob_of

    params = task_params()
    ensure_folders(params)
    return glob_of(params)


def run_facts(context: Mapping[str, Any], params: Params | None = None) -> dict[str, Any]:
    """The explicit inputs of a training run, from its trigger-form params, conf and schedule.

    Every input is checked (retrainer.inputs): SQL text, ``..`` paths and the like raise UnsafeInput.
    """
    from retrainer import inputs
    from retrainer.pipeline import resolve_as_of

    dag_run = context["dag_run"]
    run_params = dict(context.get("params") or {})
    conf = dict(getattr(dag_run, "conf", None) or {})
    merged = {**run_params, **{k: v for k, v in conf.items() if v is not None}}
    params = params if params is not None else task_params()
    merged["as_of"] = inputs.check_as_of(merged.get("as_of"))
    merged["reason"] = inputs.check_reason(merged.get("reason"))
    merged["note"] = inputs.check_note(merged.get("note"))
    # Checked for safety, recorded as given (the path people and the drift DAG know it by).
    inputs.check_report_path(merged.get("report"), params.reports_dir, params.root)
    merged["window_days"] = inputs.check_window_days(merged.get("window_days"))
    as_of = resolve_as_of(
        merged.get("as_of"),
        context.get("data_interval_start"),
        getattr(dag_run, "run_after", None) or context.get("logical_date"),
    )
    run_type = run_type_name(getattr(dag_run, "run_type", None))
    ti = context["ti"]
    return {
        "ui_url": run_ui_url(dag_run.dag_id, dag_run.run_id),
        "as_of": as_of.isoformat(),
        "window_days": merged.get("window_days"),
        "force": bool(merged.get("force", False)),
        "note": str(merged.get("note") or ""),
        "reason": str(merged.get("reason") or run_type or "manual"),
        "trigger_report": str(merged.get("report") or ""),
        "dag_id": dag_run.dag_id,
        "run_id": dag_run.run_id,
        "run_type": run_type,
        "try_number": str(getattr(ti, "try_number", "")),
    }


def ui_base_url() -> str:
    """The Airflow UI's base URL, from [api] base_url (or host/port), without a trailing slash."""
    from airflow.sdk.configuration import conf

    base = conf.get("api", "base_url", fallback="") or ""
    if not base:
        host = conf.get("api", "host", fallback="localhost")
        base = f"http://{'localhost' if host in ('0.0.0.0', '') else host}:{conf.get('api', 'port', fallback='8080')}"  # noqa: S104
    return base.rstrip("/")


def link_base_url() -> str:
    """The prefix of links into the Airflow UI and its plugins: [api] base_url when it is set, else ""
    (a path on the server the user is on: host names such as localhost and 127.0.0.1 do not share the
    login cookie, so an absolute URL made from [api] host could land on a logged-out host)."""
    from airflow.sdk.configuration import conf

    return (conf.get("api", "base_url", fallback="") or "").rstrip("/")


def run_ui_url(dag_id: str, run_id: str) -> str:
    """The run's page in the Airflow UI, from [api] base_url (or host/port)."""
    from urllib.parse import quote

    return f"{ui_base_url()}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"


@contextmanager
def airflow_outcomes() -> Iterator[None]:
    """Map library errors onto Airflow outcomes (fail without retry, or skip)."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from retrainer.pipeline import GateFailed, NoData
    from retrainer.prepare import InsufficientData
    from retrainer.train import ModelCheckFailed

    try:
        yield
    except NoData as exc:
        raise AirflowSkipException(str(exc)) from None
    except (ConfigError, GateFailed, InsufficientData, ModelCheckFailed) as exc:
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

    from retrainer.register import ChampionMoved, PromotionRefused
    from retrainer.scoring import NoModel, PartitionNotReady

    try:
        yield
    except (ConfigError, PromotionRefused, ChampionMoved) as exc:
        raise AirflowFailException(str(exc)) from None
    except (NoModel, PartitionNotReady) as exc:
        raise AirflowSkipException(str(exc)) from None


def asset_event_days(context: Mapping[str, Any]) -> list[str]:
    """Days named by the asset events that triggered this run (``extra`` keys as_of, day or days)."""
    events = context.get("triggering_asset_events") or {}
    days: list[str] = []
    for asset_events in events.values():
        for event in asset_events:
            extra = dict(getattr(event, "extra", None) or {})
            days += [str(extra[k])[:10] for k in ("as_of", "day") if extra.get(k)]
            days += [str(d)[:10] for d in extra.get("days") or []]
    return days


def monitor_facts(context: Mapping[str, Any]) -> dict[str, Any]:
    """The explicit inputs of a drift check: as-of date (param, newest asset-event day, data
    interval or trigger day, in that order), window override and where the run came from."""
    from retrainer.pipeline import resolve_as_of

    dag_run = context["dag_run"]
    merged = {**dict(context.get("params") or {}), **{k: v for k, v in dict(getattr(dag_run, "conf", None) or {}).items() if v is not None}}
    event_days = asset_event_days(context)
    as_of = resolve_as_of(
        merged.get("as_of") or (max(event_days) if event_days else None),
        context.get("data_interval_start"),
        getattr(dag_run, "run_after", None) or context.get("logical_date"),
    )
    return {
        "as_of": as_of.isoformat(),
        "window_days": merged.get("window_days"),
        "dag_id": dag_run.dag_id,
        "run_id": dag_run.run_id,
        "run_type": str(getattr(getattr(dag_run, "run_type", None), "value", getattr(dag_run, "run_type", "")) or ""),
    }
