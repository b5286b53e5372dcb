"""The demo around the loop: seeding the demo source, the champion's summary, and ``make drift-demo``.

The drift demo injects drift into the days after the champion's as-of date and follows what the suite
does: ``drift_monitor`` for each day until it decides to retrain, then the drift-triggered training
run and the model version it tagged.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrainer.names import DRIFT_MONITOR_DAG, TRAINING_DAG, dag_id
from retrainer_launcher.airflow_api import set_paused, trigger_run, wait_for_dag, wait_for_run
from retrainer_launcher.common import Out, StackError, params_location, say
from retrainer_launcher.models import label, stack_models

if TYPE_CHECKING:
    from retrainer_launcher.local import Stack

SEED_DAYS = 60
DEMO_DRIFT_FEATURES = "monthly_charges,num_support_calls"


# --------------------------------------------------------------------------------------------------
# The demo source and the champion
# --------------------------------------------------------------------------------------------------


def source_is_empty(source_url: str, table: str) -> bool:
    """True if the source table is missing or has no rows (a missing SQLite file counts as empty)."""
    if source_url.startswith("sqlite:///") and source_url != "sqlite:///:memory:":
        if not Path(source_url[len("sqlite:///") :]).exists():
            return True
    import sqlalchemy as sa

    engine = sa.create_engine(source_url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(table):
                return True
            return (
                conn.execute(sa.select(sa.literal(1)).select_from(sa.table(table)).limit(1)).first() is None
            )
    finally:
        engine.dispose()


def seed_source(root: Path, env: dict[str, str], days: int = SEED_DAYS, out: Out = say) -> bool:
    """Seed every model's demo source table with ``retrainer.cli --model NAME seed --days N`` if it is
    empty (a table two models share is seeded once); True if any was seeded."""
    models = stack_models(Path(env.get("RETRAINER_PARAMS") or params_location(root)), out)
    if importlib.util.find_spec("retrainer.cli") is None:
        out("NOTE: retrainer.cli is not there yet: skipping `retrainer.cli seed` (the source stays empty)")
        return False
    seeded, seen = False, set()
    for name, params in models.items():
        where = (params.source_url, params.source.table)
        if where in seen:
            continue
        seen.add(where)
        if not source_is_empty(params.source_url, params.source.table):
            out(f"source {params.source.table} already has rows: not seeding")
            continue
        out(f"seeding the demo source {params.source.table} of {label(name, params)} ({days} days ending today, UTC) ...")
        subprocess.run(  # noqa: S603 - fixed argv, no shell
            [sys.executable, "-m", "retrainer.cli", *_model_args(name), "seed", "--days", str(days)],
            env={**os.environ, **env},
            cwd=root,
            check=True,
            stdin=subprocess.DEVNULL,
        )
        seeded = True
    return seeded


def _model_args(name: str | None) -> list[str]:
    return ["--model", name] if name else []


def champion_summary(params: Any, out: Out = say) -> dict | None:
    """``retrainer.tracking.champion_summary(params)``, or None (with a note) if it is not available."""
    try:
        from retrainer.tracking import champion_summary as summary
    except ImportError as exc:
        out(f"(no model summary: {exc})")
        return None
    try:
        return summary(params)
    except Exception as exc:  # noqa: BLE001 - the Airflow part of the summary must still print
        out(f"(no model summary: {type(exc).__name__}: {exc})")
        return None


# --------------------------------------------------------------------------------------------------
# make drift-demo
# --------------------------------------------------------------------------------------------------


@dataclass
class _Demo:
    """What the steps of one drift demo share."""

    stack: Stack
    params: Any
    token: str
    timeout: float
    out: Out
    name: str | None = None  # the model (None: one params file)

    def dag(self, kind: str) -> str:
        return dag_id(kind, self.name)


def _cli(root: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run(  # noqa: S603 - our own interpreter and CLI, arguments from this module
        [sys.executable, "-m", "retrainer.cli", *args], env={**os.environ, **env}, cwd=root, check=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    )


def _inject_drift(demo: _Demo, env: dict[str, str], days: list[date], features: str, magnitude: float) -> None:
    """Seed ``days`` into the demo source with abrupt drift of ``features``; ingest and validate them."""
    stack, out, model = demo.stack, demo.out, _model_args(demo.name)
    first, last = days[0].isoformat(), days[-1].isoformat()
    _cli(stack.root, env, *model, "seed", "--start", first, "--end", last,
         "--drift-start", first, "--drift-kind", "abrupt", "--drift-features", features,
         "--drift-magnitude", str(magnitude))
    ingested = stack.home / "drift-demo-ingest.json"
    out("ingesting and validating those days (as the training DAG would) ...")
    _cli(stack.root, env, *model, "ingest", "--as-of", last, "--out", str(ingested))
    _cli(stack.root, env, *model, "validate", "--ingest", str(ingested), "--out", str(stack.home / "drift-demo-validation.json"))


def _monitor_day(demo: _Demo, day: date) -> dict | None:
    """Run drift_monitor for ``day``; its summary if it decided to retrain (or already had), else None."""
    api, out, monitor = demo.stack.api, demo.out, demo.dag(DRIFT_MONITOR_DAG)
    run_id = f"drift_demo__{day.isoformat()}__{datetime.now(UTC).strftime('%H%M%S')}"
    out(f"\n{monitor} for {day}:")
    trigger_run(api, demo.token, monitor, {"as_of": day.isoformat()}, note="make drift-demo", run_id=run_id)
    run = wait_for_run(api, demo.token, monitor, run_id, demo.timeout, out=out)
    summary_file = demo.params.drift_reports_dir / day.isoformat() / "summary.json"
    if run.get("state") != "success" or not summary_file.exists():
        raise StackError(f"{monitor} run {run_id} ended {run.get('state')}; see its task logs in the UI")
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    out(f"  {summary['summary_line']}")
    out(f"  {summary['decision']['note']}")
    if summary["decision"]["retrain"]:
        return summary
    if summary["decision"]["action"] == "already_triggered":
        # An earlier demo already started the retrain for this day: follow that run.
        return {**summary, "trigger_run_id": f"drift__{day.isoformat()}"}
    return None


def _monitor_until_retrain(demo: _Demo, days: list[date]) -> dict | None:
    """drift_monitor for each day in turn until one decides to retrain: that day's summary, or None."""
    for day in days:
        triggered = _monitor_day(demo, day)
        if triggered is not None:
            return triggered
    return None


def _report(demo: _Demo, triggered: dict, run: dict, version: dict | None) -> None:
    """The demo's closing lines: the drift report, the check, the training run, the tagged version."""
    params, stack, out = demo.params, demo.stack, demo.out
    training_run = triggered["trigger_run_id"]
    experiment = _experiment_id(params, params.drift.experiment)
    out("\n================ drift demo ================")
    out(f"report         {params.path(triggered['report_html'])}  (JSON: {params.path(triggered['report_json'])})")
    out(f"drift check    {stack.api}/dags/{demo.dag(DRIFT_MONITOR_DAG)}  (MLflow: {stack.mlflow}/#/experiments/{experiment}/runs/"
        f"{triggered.get('mlflow_run_id', '')})")
    training = demo.dag(TRAINING_DAG)
    out(f"training run   {training} / {training_run}: {run.get('state')}  ({stack.api}/dags/{training}/runs/{training_run})")
    if version:
        tags = ", ".join(f"{k}={v}" for k, v in sorted(version["tags"].items()) if k in ("airflow.reason", "airflow.trigger_report"))
        out(f"model version  {version['name']} v{version['version']} aliases {version['aliases'] or '-'}: {tags}")
        out(f"               {stack.mlflow}/#/models/{version['name']}/versions/{version['version']}")
    else:
        out("model version  none registered by that run (see its task logs)")


def cmd_drift_demo(
    stack: Stack,
    features: str = DEMO_DRIFT_FEATURES,
    magnitude: float = 1.5,
    timeout: float = 900.0,
    out: Out = say,
) -> bool:
    """Inject drift into the days after the champion's as-of date and follow what the suite does.

    Seeds those days into the demo source with abrupt drift of ``features``, ingests and validates
    them (``retrainer ingest`` / ``validate``), runs ``drift_monitor`` for each day in turn until it
    decides to retrain (drift must persist for ``drift.persistence.required`` checks), then follows
    the drift-triggered ``training`` run and prints the report, the run and the tagged model version.
    Several models: the first (by name) is the one drifted.
    """
    name, params = next(iter(stack_models(stack.params_path, out).items()))
    model = champion_summary(params, out)
    if not model or not model.get("as_of"):
        raise StackError("no champion yet: run `make run` first, then `make drift-demo`")
    env, token = stack.env(), stack.token()
    first = date.fromisoformat(model["as_of"]) + timedelta(days=1)
    days = [first + timedelta(days=i) for i in range(max(1, params.drift.persistence.required))]
    out(f"champion {model['name']} v{model['version']} (as of {model['as_of']}); injecting abrupt drift of "
        f"{features} (magnitude {magnitude}) into {days[0]}..{days[-1]} of the demo source")
    demo = _Demo(stack, params, token, timeout, out, name)
    _inject_drift(demo, env, days, features, magnitude)

    for dag in (demo.dag(DRIFT_MONITOR_DAG), demo.dag(TRAINING_DAG)):
        wait_for_dag(stack.api, token, dag, 300.0, out)
        set_paused(stack.api, token, dag, paused=False)
    triggered = _monitor_until_retrain(demo, days)
    if triggered is None:
        out("\nno retrain was decided (see the decisions above); nothing triggered")
        return False

    training_run = triggered["trigger_run_id"]
    out(f"\nfollowing the drift-triggered {demo.dag(TRAINING_DAG)} run {training_run} ...")
    run = wait_for_run(stack.api, token, demo.dag(TRAINING_DAG), training_run, timeout, out=out)
    version = _version_of_run(params, training_run)
    _report(demo, triggered, run, version)
    return run.get("state") == "success" and bool(version)


def _version_of_run(params: Any, airflow_run_id: str) -> dict | None:
    from retrainer.tracking import mlflow_client

    client = mlflow_client(params)
    found = client.search_model_versions(
        f"name = '{params.model.registered_name}' and tags.`airflow.run_id` = '{airflow_run_id}'"
    )
    if not found:
        return None
    version = max(found, key=lambda v: int(v.version))
    return {"name": version.name, "version": str(version.version), "aliases": sorted(version.aliases), "tags": dict(version.tags)}


def _experiment_id(params: Any, name: str) -> str:
    from retrainer.tracking import mlflow_client

    experiment = mlflow_client(params).get_experiment_by_name(name)
    return experiment.experiment_id if experiment else ""
