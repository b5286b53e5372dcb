"""What a run works on: its as-of date, its window, its type and why it was started.

One function turns each way a run can be described into a :class:`RunContext`:

* :func:`from_airflow`: a task's Airflow context (trigger-form params, conf, triggering asset events,
  data interval, trigger time), used by every DAG, the operators and the failure notifier;
* :func:`from_run_record`: a DAG run as the REST API returns it (the control room's lineage view);
* :func:`for_cli`: a call of ``retrainer run`` / ``dvc repro``.

The as-of date follows one rule everywhere (:func:`resolve_as_of`), and so does the window
(:func:`window_length`): never ``now()``, so a backfill of day D does exactly what the run of D did.
Nothing here imports Airflow: the Airflow context is read as a mapping of plain attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retrainer.config import Params

CLI_DAG_ID = "cli"
# Keys of a trigger's params/conf that name the run's day (batch_scoring's form calls it "day").
AS_OF_KEYS = ("as_of", "day")


def resolve_as_of(requested: str | None, data_interval_start: datetime | None, run_after: datetime | None) -> date:
    """The as-of date of a run: an explicit request, else the scheduled interval's day, else the trigger day.

    Asset- and API-triggered runs have no data interval, so without an explicit date they use the day
    they were triggered for; scheduled runs and backfills use their interval, so all behave alike.
    """
    if requested:
        try:
            return date.fromisoformat(str(requested)[:10])
        except ValueError:
            raise ValueError(f"as_of must be a date YYYY-MM-DD, got {requested!r}") from None
    if data_interval_start is not None:
        return data_interval_start.date()
    if run_after is not None:
        return run_after.date()
    raise ValueError("no as_of given and the run has neither a data interval nor a trigger time")


def day_interval(day: date) -> tuple[datetime, datetime]:
    """The half-open interval [day 00:00, next day 00:00) a daily partition covers."""
    start = datetime.combine(day, time.min)
    return start, start + timedelta(days=1)


def window_days(as_of: date, window: int) -> list[date]:
    """The ``window`` days ending at ``as_of`` (inclusive), oldest first."""
    return [as_of - timedelta(days=offset) for offset in range(window - 1, -1, -1)]


def window_length(params: Params, as_of: date, requested: int | None = None) -> int:
    """The window of a run: an explicit request, else the weekly full-retrain window on its weekday,
    else ``prepare.window_days``. Decided by the as-of date alone, so a backfill reproduces it."""
    return requested or params.schedule.window_for(as_of, params.prepare.window_days)


def run_type_name(run_type: Any) -> str:
    """``backfill``, ``scheduled``, ``manual``...: the value of Airflow's DagRunType (a str enum whose
    ``str()`` is ``DagRunType.BACKFILL`` in the task SDK), or of its plain-string form."""
    if run_type is None:
        return ""
    value = getattr(run_type, "value", run_type)
    return str(value).split(".")[-1].lower()


@dataclass(frozen=True)
class RunContext:
    """The explicit inputs of one run. ``window_days`` is the requested override (None: the rule)."""

    as_of: date
    dag_id: str
    run_id: str
    run_type: str = ""
    reason: str = ""
    window_days: int | None = None
    force: bool = False
    note: str = ""
    trigger_report: str = ""
    try_number: str = ""

    def window(self, params: Params) -> int:
        """The window length this run works on (the one rule: :func:`window_length`)."""
        return window_length(params, self.as_of, self.window_days)

    @property
    def key_scope(self) -> str:
        """The DAG part of the run key (retrainer.lineage.run_key): a forced run gets a key of its own,
        so it trains a new model instead of reusing the one its date, data and config already made."""
        return f"{self.dag_id}:{self.run_id}" if self.force else self.dag_id

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe facts for XCom, MLflow tags and reports (``as_of`` as an ISO date)."""
        return {**asdict(self), "as_of": self.as_of.isoformat()}

    @classmethod
    def from_dict(cls, facts: Mapping[str, Any]) -> RunContext:
        """Back from :meth:`to_dict` (extra keys, such as the UI link, are ignored)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in facts.items() if k in names}
        return cls(**{**values, "as_of": date.fromisoformat(str(facts["as_of"])[:10])})


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


def _requested(values: Mapping[str, Any]) -> Any:
    return next((values[k] for k in AS_OF_KEYS if values.get(k)), None)


def from_airflow(
    context: Mapping[str, Any], params: Params | None = None, *, check: bool = True, min_window: int = 2
) -> RunContext:
    """The run context of an Airflow task, from its trigger-form params, conf and schedule.

    The as-of date is, in this order: the *As-of date* (or *Day*) param or conf key, the newest day of
    the asset events that triggered the run, the data interval's day, the trigger day. With ``check``
    every input is checked (retrainer.inputs): SQL text, ``..`` paths and the like raise UnsafeInput;
    the failure notifier passes ``check=False`` so a bad input never hides the failure it reports.
    ``min_window`` is the shortest window the DAG's form allows (a drift check may look at one day).
    """
    from retrainer import inputs

    dag_run = context["dag_run"]
    conf = dict(getattr(dag_run, "conf", None) or {})
    merged = {**dict(context.get("params") or {}), **{k: v for k, v in conf.items() if v is not None}}
    requested = _requested(merged)
    window = merged.get("window_days")
    reason, note, report = merged.get("reason"), merged.get("note"), merged.get("report")
    if check:
        requested = inputs.check_as_of(requested)
        reason = inputs.check_reason(reason)
        note = inputs.check_note(note)
        window = inputs.check_window_days(window, min_window)
        if params is not None:
            # Checked for safety, recorded as given (the path people and the drift DAG know it by).
            inputs.check_report_path(report, params.reports_dir, params.root)
    event_days = asset_event_days(context)
    as_of = resolve_as_of(
        requested or (max(event_days) if event_days else None),
        context.get("data_interval_start"),
        getattr(dag_run, "run_after", None) or context.get("logical_date"),
    )
    run_type = run_type_name(getattr(dag_run, "run_type", None))
    return RunContext(
        as_of=as_of,
        dag_id=dag_run.dag_id,
        run_id=dag_run.run_id,
        run_type=run_type,
        reason=str(reason or run_type or "manual"),
        window_days=window,
        force=bool(merged.get("force", False)),
        note=str(note or ""),
        trigger_report=str(report or ""),
        try_number=str(getattr(context.get("ti"), "try_number", "") or ""),
    )


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def from_run_record(run: Mapping[str, Any]) -> RunContext | None:
    """The run context of a DAG run as the REST API returns it (``GET /api/v2/dags/{id}/dagRuns/{run}``);
    None when the record names no usable day."""
    conf = dict(run.get("conf") or {})
    try:
        as_of = resolve_as_of(
            _requested(conf),
            _parse_time(run.get("data_interval_start")),
            _parse_time(run.get("run_after")) or _parse_time(run.get("logical_date")),
        )
    except ValueError:
        return None
    run_type = run_type_name(run.get("run_type"))
    return RunContext(
        as_of=as_of,
        dag_id=str(run.get("dag_id") or ""),
        run_id=str(run.get("dag_run_id") or run.get("run_id") or ""),
        run_type=run_type,
        reason=str(conf.get("reason") or run_type or "manual"),
        window_days=conf.get("window_days") if isinstance(conf.get("window_days"), int) else None,
        force=bool(conf.get("force", False)),
        note=str(conf.get("note") or ""),
        trigger_report=str(conf.get("report") or ""),
    )


def for_cli(as_of: date, *, dag_id: str = CLI_DAG_ID, reason: str = CLI_DAG_ID, window_days: int | None = None) -> RunContext:
    """The run context of a run outside Airflow (``retrainer run``, ``dvc repro``)."""
    return RunContext(as_of=as_of, dag_id=dag_id, run_id=dag_id, run_type=CLI_DAG_ID, reason=reason,
                      window_days=window_days)
