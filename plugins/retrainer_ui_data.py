"""What the Airflow UI's "Retrainer" page (the control room) shows, gathered as plain data.

Every function takes ``params`` and returns JSON-safe dicts and lists; the plugin
``retrainer_control_room`` only renders them (templates under ``templates/retrainer/``) and checks who
may see or do what. It lives in ``plugins/`` beside the plugin (Airflow puts the folder on ``sys.path``):
it is the UI's, not the retraining loop's. No Airflow import, so it is tested without Airflow.

* :func:`model_card`: the model version behind an alias (``champion``, ``challenger``): metric, the days
  it was trained on, when and by which run it was promoted, and its gate decision table.
* :func:`promotion_history`: the champion moves the registry keeps (``retrainer.register``).
* :func:`gate_results`: the data-quality gate per recent partition (pass / warn / fail) from
  ``<reports>/validation/dt=<day>/validation.json`` and the quarantine.
* :func:`drift_history`: the drift checks of ``<reports>/drift/ledger.json`` and the retrains they started.
* :func:`quarantined`: quarantined partitions and the replay each one gets (:func:`replay_request`).
* :func:`run_lineage`: what one DAG run used and produced: partitions, validation, model version, decision
  (:func:`record_as_of`: the run's as-of date from its REST record, by ``retrainer.run_context``).

Reports are served by the plugin from the reports folder only: :func:`report_file` is the guard that
turns a requested path into a file under that folder, or refuses it. Nothing here reads the clock.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

from retrainer.config import Params
from retrainer.names import CHALLENGER, CHAMPION, TRAINING_DAG, dag_id
from retrainer.run_context import from_run_record
from retrainer.storage import md5_file, partition_dir
from retrainer.tracking import APPROVAL_TAG, AS_OF_TAG, DEMOTED_TAG, GATE_TAG, RUN_KEY_TAG

# Where people open the MLflow UI (make run's MLflow server); a tracking URI of http(s) is its own UI.
MLFLOW_UI_ENV = "RETRAINER_MLFLOW_UI_URL"
REPLAY_REASON = "replay"
# Mounted by the plugin: the page, the reports and the JSON endpoints live under this prefix.
URL_PREFIX = "/retrainer"
REPORTS_ROUTE = f"{URL_PREFIX}/reports/"
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Airflow's own run id and DAG id alphabets (no quotes: the ids go into MLflow filter strings).
_RUN_ID = re.compile(r"^[A-Za-z0-9_.:+~-]{1,250}$")
_DAG_ID = re.compile(r"^[A-Za-z0-9_.-]{1,250}$")


class ReportNotFound(LookupError):
    """The requested report is not a file inside the reports folder (or does not exist)."""


class NotQuarantined(LookupError):
    """A replay was asked for a day that has no quarantined partition."""


# --------------------------------------------------------------------------------------------------
# Reports and links
# --------------------------------------------------------------------------------------------------


def report_file(params: Params, relative: str) -> Path:
    """The file ``relative`` names inside the reports folder; ReportNotFound for anything else.

    Refused: empty or absolute paths, NUL bytes, ``..`` or hidden segments (lock and temp files),
    anything that resolves (symlinks included) outside the reports folder, folders, missing files.
    """
    root = params.reports_dir.resolve()
    text = str(relative or "")
    parts = [p for p in text.replace("\\", "/").split("/") if p]
    if not parts or "\x00" in text or text.startswith(("/", "\\")) or any(p == ".." or p.startswith(".") for p in parts):
        raise ReportNotFound(f"not a report path: {relative!r}")
    candidate = root.joinpath(*parts).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        raise ReportNotFound(f"no report {relative!r} under {root}")
    return candidate


def report_path(params: Params, path: str | Path | None) -> str | None:
    """``path`` (absolute, or relative to the project root) relative to the reports folder; None if outside."""
    if not path:
        return None
    full = params.path(path).resolve()
    root = params.reports_dir.resolve()
    return full.relative_to(root).as_posix() if full.is_relative_to(root) else None


def report_url(relative: str | None, base: str = "", model: str | None = None) -> str | None:
    """The URL the plugin serves a report at (``base``: the Airflow UI's base URL, or "" for a path), under
    ``/models/<model>`` for a model of a models/ deployment (its reports folder)."""
    if not relative:
        return None
    route = f"{URL_PREFIX}/models/{quote(model, safe='')}/reports/" if model else REPORTS_ROUTE
    return f"{base.rstrip('/')}{route}{quote(relative, safe='/=')}"


def mlflow_ui_url(params: Params) -> str | None:
    """The MLflow UI: $RETRAINER_MLFLOW_UI_URL, else the tracking server itself; None for a local store."""
    explicit = os.environ.get(MLFLOW_UI_ENV, "").strip()
    if explicit:
        return explicit.rstrip("/")
    uri = params.tracking_uri
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else None


def mlflow_run_link(ui: str | None, experiment_id: str | None, run_id: str | None) -> str | None:
    if not (ui and experiment_id and run_id):
        return None
    return f"{ui}/#/experiments/{quote(str(experiment_id))}/runs/{quote(str(run_id))}"


def mlflow_version_link(ui: str | None, name: str, version: str | None) -> str | None:
    if not (ui and version):
        return None
    return f"{ui}/#/models/{quote(name, safe='')}/versions/{quote(str(version))}"


def data_docs_page(params: Params, docs: str | Path | None) -> str | None:
    """The page to open for a partition's Data Docs (reports-relative): its newest validation result page,
    which GX renders as static HTML, else the site's index (whose list is drawn by scripts from a CDN)."""
    index = report_path(params, docs)
    if not index or not (params.reports_dir / index).is_file():
        return None
    site = (params.reports_dir / index).parent
    pages = sorted((site / "validations").rglob("*.html"), key=lambda p: (p.stat().st_mtime, str(p)))
    return report_path(params, pages[-1]) if pages else index


def validation_report(params: Params, as_of: str) -> str | None:
    """The Data Docs page of a validate task (reports-relative): the first failed partition of its run,
    else the as-of day's, else any; the run's validation.json when no Data Docs were built."""
    summary = params.reports_dir / "validation" / f"summary-as_of={as_of}.json"
    try:
        parts = json.loads(summary.read_text(encoding="utf-8")).get("partitions", [])
    except (OSError, ValueError):
        parts = []
    ordered = (
        [p for p in parts if not p.get("success")]
        + [p for p in parts if p.get("day") == as_of]
        + list(parts)
    )
    for part in ordered:
        page = data_docs_page(params, part.get("data_docs"))
        if page:
            return page
        relative = report_path(params, part.get("report_json"))
        if relative and (params.reports_dir / relative).is_file():
            return relative
    return data_docs_page(params, params.reports_dir / "validation" / f"dt={as_of}" / "data_docs" / "index.html")


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------


def _run_json(client: Any, run_id: str, artifact: str) -> dict | None:
    """A JSON artifact of an MLflow run, or None when the run has none."""
    try:
        with tempfile.TemporaryDirectory(prefix="retrainer-ui-") as tmp:
            local = client.download_artifacts(run_id, artifact, tmp)
            return json.loads(Path(local).read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - MLflow raises several types for a missing artifact
        return None


def _days(partitions: list[dict], split: str) -> dict[str, Any]:
    days = sorted(p["day"] for p in partitions if p.get("split") == split)
    return {"first": days[0], "last": days[-1], "count": len(days)} if days else {"first": None, "last": None, "count": 0}


def decision_view(decision: dict | None) -> dict | None:
    """The gate decision as a table (header, rows), its verdict and reasons."""
    if not decision:
        return None
    from retrainer.evaluate import Decision

    parsed = Decision.from_dict(decision)
    rows = parsed.rows()
    return {"header": list(rows[0]), "rows": [list(r) for r in rows[1:]], "verdict": parsed.verdict,
            "reasons": list(parsed.reasons), "passed": parsed.passed, "promote": parsed.promote}


def model_card(params: Params, alias: str) -> dict | None:
    """The version holding ``alias``: metric, training days, promotion, gate decision and links."""
    from retrainer.tracking import current_alias, mlflow_client

    mv = current_alias(params, alias)
    if mv is None:
        return None
    client = mlflow_client(params)
    run = client.get_run(mv.run_id)
    tags = mv.tags or {}
    run_tags = run.data.tags
    metric = f"holdout_{params.evaluation.primary_metric}"
    lineage = _run_json(client, mv.run_id, "lineage/lineage.json") or {}
    partitions = lineage.get("partitions", [])
    ui = mlflow_ui_url(params)
    name = params.model.registered_name
    promoted = None
    if tags.get("retrainer.champion_since"):
        promoted = {
            "at": tags["retrainer.champion_since"],
            "by": tags.get("retrainer.champion_by", ""),
            "action": tags.get("retrainer.champion_action", ""),
            "reason": tags.get("retrainer.champion_reason", ""),
        }
    return {
        "alias": alias,
        "name": name,
        "version": str(mv.version),
        "aliases": sorted(mv.aliases or []),
        "run_id": mv.run_id,
        "experiment_id": run.info.experiment_id,
        "metric_name": metric,
        "metric_value": run.data.metrics.get(metric),
        "higher_is_better": params.higher_is_better,
        "task": run_tags.get("retrainer.task", params.dataset.task),
        "estimator": run.data.params.get("estimator", ""),
        # Multiclass: the holdout f1 of each class (the gate judges the macro figure).
        "per_class_f1": {k.removeprefix("holdout_f1."): v for k, v in sorted(run.data.metrics.items())
                         if k.startswith("holdout_f1.")},
        "as_of": tags.get(AS_OF_TAG) or run_tags.get(AS_OF_TAG),
        "train_days": _days(partitions, "train"),
        "holdout_days": _days(partitions, "holdout"),
        "trained_by": {k: run_tags.get(f"airflow.{k}", "") for k in ("dag_id", "run_id", "reason", "run_type")},
        "gate": tags.get(GATE_TAG),
        "approval": tags.get(APPROVAL_TAG),
        "demoted": tags.get(DEMOTED_TAG),
        "promoted": promoted,
        "decision": decision_view(_run_json(client, mv.run_id, "evaluation/decision.json")),
        "links": {
            "mlflow_run": mlflow_run_link(ui, run.info.experiment_id, mv.run_id),
            "mlflow_version": mlflow_version_link(ui, name, str(mv.version)),
        },
    }


def promotion_history(params: Params) -> list[dict]:
    """Champion moves (auto promotions, manual promotions, rollbacks), newest first."""
    from retrainer.tracking import champion_history

    return list(reversed(champion_history(params)))


# --------------------------------------------------------------------------------------------------
# Data-quality gate and quarantine
# --------------------------------------------------------------------------------------------------


def _dated_folders(folder: Path) -> list[tuple[str, Path]]:
    out = []
    if folder.is_dir():
        for entry in folder.iterdir():
            day = entry.name[3:] if entry.name.startswith("dt=") else ""
            if entry.is_dir() and _DAY.match(day):
                out.append((day, entry))
    return sorted(out)


def _failed(report: dict) -> list[dict]:
    return [
        {
            "expectation": f.get("expectation_type", ""),
            "column": f.get("column"),
            "severity": f.get("severity", ""),
            "examples": [str(e) for e in (f.get("unexpected_examples") or [])[:5]],
        }
        for f in report.get("failed", [])
    ]


def gate_results(params: Params, limit: int = 14) -> list[dict]:
    """The raw-data gate of the newest ``limit`` validated days, newest first: pass, warn or fail."""
    out = []
    for day, folder in reversed(_dated_folders(params.reports_dir / "validation")):
        report_json = folder / "validation.json"
        try:
            report = json.loads(report_json.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        status = "fail" if not report.get("success") else ("warn" if report.get("warning_failures") else "pass")
        docs = data_docs_page(params, report.get("data_docs_index"))
        out.append(
            {
                "day": day,
                "status": status,
                "evaluated": report.get("evaluated"),
                "critical_failures": report.get("critical_failures", 0),
                "warning_failures": report.get("warning_failures", 0),
                "failed": _failed(report),
                "quarantined": partition_dir(params.data_dir, date.fromisoformat(day), area="quarantine").is_dir(),
                "data_docs": docs,
                "report": report_path(params, report_json),
            }
        )
        if len(out) >= limit:
            break
    return out


def quarantined(params: Params) -> list[dict]:
    """Quarantined partitions, oldest first, each with why, its report and the replay it would get."""
    base = params.data_dir / "quarantine"
    out = []
    for day, folder in _dated_folders(base):
        meta_file = folder / "QUARANTINED.json"
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        batches = 1 + len(list(base.glob(f"dt={day}.superseded-*")))
        data = folder / "part.parquet"
        digest = md5_file(data)[:8] if data.is_file() else "nodata"
        copy = folder / "report" / f"dt={day}" / "validation.json"
        try:
            failed = _failed(json.loads(copy.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            failed = []
        docs = params.reports_dir / "validation" / f"dt={day}" / "data_docs" / "index.html"
        reason = str(meta.get("reason", ""))
        out.append(
            {
                "day": day,
                "reason": reason.splitlines()[0] if reason else "",
                "failed": failed,
                "batches": batches,
                "md5": digest,
                "data_docs": data_docs_page(params, docs),
                "replay_run_id": replay_run_id(day, batches, digest),
            }
        )
    return out


def replay_run_id(day: str, batches: int, digest: str) -> str:
    """One run id per quarantined batch: a double click cannot start two replays of the same batch,
    and a replay that fails again quarantines a new batch, which gets its own id."""
    return f"replay__{day}__{batches}-{digest}"


def replay_request(params: Params, day: str, user: str, training_dag: str = TRAINING_DAG) -> dict:
    """The `training` run that replays the quarantined ``day``: REST body and run id.

    A new run with ``as_of`` = the day, not a clear of the failed run: the quarantine can come from any
    run (a training run's window, a landing-triggered run, a backfill), the failed run keeps its logs
    and tries as evidence, and ``step_validate`` reads a quarantined day again from the source.
    """
    if not _DAY.match(str(day or "")):
        raise NotQuarantined(f"not a date (YYYY-MM-DD): {day!r}")
    entry = next((q for q in quarantined(params) if q["day"] == day), None)
    if entry is None:
        raise NotQuarantined(f"{day} has no quarantined partition under {params.data_dir / 'quarantine'}")
    note = f"replay of quarantined {day} (batch {entry['batches']}, md5 {entry['md5']}) requested by {user} from the control room"
    return {
        "dag_id": training_dag,
        "body": {
            "dag_run_id": entry["replay_run_id"],
            "logical_date": None,
            "conf": {"as_of": day, "reason": REPLAY_REASON, "note": note[:500]},
            "note": note[:1000],
        },
    }


# --------------------------------------------------------------------------------------------------
# Drift
# --------------------------------------------------------------------------------------------------


def drift_history(params: Params, limit: int = 60) -> dict:
    """The newest ``limit`` drift checks (oldest first, for a chart) and the retrains they triggered."""
    from retrainer.monitor import load_ledger

    ledger = load_ledger(params)
    checks = sorted(ledger["checks"], key=lambda c: c["as_of"])[-limit:]
    triggers = {t["as_of"]: t for t in ledger["triggers"]}
    points = []
    for check in checks:
        trigger = triggers.get(check["as_of"])
        points.append(
            {
                "as_of": check["as_of"],
                "drifted_share": float(check.get("drifted_share") or 0.0),
                "drifted_columns": sorted(check.get("drifted_columns") or {}),
                "decision": check.get("decision", ""),
                "signal": bool(check.get("signal")),
                "inconclusive": bool(check.get("inconclusive")),
                "champion_version": check.get("champion_version"),
                "triggered": bool(trigger) or bool(check.get("triggered")),
                "training_run_id": (trigger or {}).get("training_run_id") or check.get("training_run_id"),
                "report": report_path(params, check.get("report_html")),
                "note": check.get("note", ""),
            }
        )
    return {"threshold": params.drift.drift_share, "checks": points}


# --------------------------------------------------------------------------------------------------
# One DAG run
# --------------------------------------------------------------------------------------------------


def _validation_entries(params: Params, partitions: list[dict]) -> list[dict]:
    out = []
    for part in partitions:
        out.append(
            {
                "day": part.get("day"),
                "success": part.get("success"),
                "warnings": list(part.get("warnings") or []),
                "replayed": part.get("replayed"),
                "quarantined_to": part.get("quarantined_to"),
                "data_docs": data_docs_page(params, part.get("data_docs")),
                "report": report_path(params, part.get("report_json")),
            }
        )
    return out


def _validation_summary(params: Params, as_of: str | None) -> list[dict]:
    if not as_of or not _DAY.match(as_of):
        return []
    summary = params.reports_dir / "validation" / f"summary-as_of={as_of}.json"
    try:
        return _validation_entries(params, json.loads(summary.read_text(encoding="utf-8")).get("partitions", []))
    except (OSError, ValueError):
        return []


def record_as_of(run: dict) -> str | None:
    """The as-of date (ISO) of a DAG run as the REST API returns it; None when the record names no day."""
    context = from_run_record(run)
    return context.as_of.isoformat() if context else None


def run_lineage(params: Params, dag_id: str, run_id: str, as_of: str | None = None) -> dict:
    """What the DAG run ``dag_id``/``run_id`` used and produced, from MLflow and the reports.

    Training runs: the partitions of its window (day, split, md5), the validation of the partitions it
    ingested, the model version and registration status, the gate decision and what triggered it.
    Drift checks: the checked window's decision and report. Runs that stopped before MLflow (a failed
    gate) still show the validation of ``as_of`` (the run's as-of date, from its conf or interval).
    """
    if not _DAG_ID.match(str(dag_id or "")) or not _RUN_ID.match(str(run_id or "")):
        raise LookupError(f"not a DAG run id: {dag_id!r} / {run_id!r}")
    from retrainer.tracking import mlflow_client

    client = mlflow_client(params)
    ui = mlflow_ui_url(params)
    out: dict[str, Any] = {"dag_id": dag_id, "run_id": run_id, "as_of": as_of, "kind": "none", "partitions": [],
                           "validation": [], "gaps": [], "model": None, "decision": None, "drift": None,
                           "trigger": None, "mlflow_run": None}
    experiments = [e for e in (client.get_experiment_by_name(n) for n in (params.mlflow.experiment, params.drift.experiment)) if e]
    runs = client.search_runs(
        [e.experiment_id for e in experiments],
        filter_string=f"tags.`airflow.run_id` = '{run_id}' and tags.`airflow.dag_id` = '{dag_id}'",
        max_results=5,
        order_by=["attributes.start_time DESC"],
    ) if experiments else []
    run = runs[0] if runs else None
    if run is None:
        out["validation"] = _validation_summary(params, as_of)
        return out
    tags = run.data.tags
    out["as_of"] = tags.get(AS_OF_TAG) or as_of
    out["mlflow_run"] = {"run_id": run.info.run_id, "link": mlflow_run_link(ui, run.info.experiment_id, run.info.run_id)}
    if tags.get("retrainer.check") == "drift":
        out["kind"] = "drift"
        out["drift"] = {
            "decision": tags.get("retrainer.decision"),
            "summary": tags.get("retrainer.summary"),
            "champion_version": tags.get("retrainer.champion_version"),
            "drifted_share": run.data.metrics.get("drifted_share"),
            "report": report_path(params, tags.get("retrainer.report")),
        }
        return out
    out["kind"] = "training"
    lineage = _run_json(client, run.info.run_id, "lineage/lineage.json") or {}
    out["partitions"] = [
        {k: p.get(k) for k in ("day", "split", "rows", "md5", "path")} for p in lineage.get("partitions", [])
    ]
    # The window's days without data, each with why (quarantined: failed gate or unreadable rows).
    out["gaps"] = [{k: g.get(k) for k in ("day", "kind", "reason")} for g in lineage.get("gaps") or []]
    validation = (lineage.get("validation") or {}).get("partitions") or []
    out["validation"] = _validation_entries(params, validation) if validation else _validation_summary(params, out["as_of"])
    trigger = lineage.get("trigger") or {}
    if trigger.get("reason") or trigger.get("report"):
        out["trigger"] = {"reason": trigger.get("reason"), "report": report_path(params, trigger.get("report"))}
    out["decision"] = decision_view(_run_json(client, run.info.run_id, "evaluation/decision.json"))
    from retrainer.register import version_for_run

    mv = version_for_run(params, run.info.run_id, tags.get(RUN_KEY_TAG))
    if mv is not None:
        vtags = mv.tags or {}
        out["model"] = {
            "name": params.model.registered_name,
            "version": str(mv.version),
            "gate": vtags.get(GATE_TAG),
            "approval": vtags.get(APPROVAL_TAG),
            "champion_since": vtags.get("retrainer.champion_since"),
            "link": mlflow_version_link(ui, params.model.registered_name, str(mv.version)),
        }
    return out


# --------------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------------


def overview(params: Params, gate_days: int = 14, drift_checks: int = 60, model: str | None = None) -> dict:
    """Everything the page of ``model`` (None: a single params file) shows; a section that cannot be read
    (MLflow down, a broken ledger) carries its error instead of taking the whole page down."""
    sections: dict[str, Callable[[], Any]] = {
        "champion": lambda: model_card(params, CHAMPION),
        "challenger": lambda: model_card(params, CHALLENGER),
        "history": lambda: promotion_history(params),
        "gates": lambda: gate_results(params, gate_days),
        "drift": lambda: drift_history(params, drift_checks),
        "quarantine": lambda: quarantined(params),
    }
    out: dict[str, Any] = {"model_name": params.model.registered_name, "model": model,
                           "training_dag": dag_id(TRAINING_DAG, model),
                           "primary_metric": params.evaluation.primary_metric, "task": params.dataset.task,
                           "errors": {}}
    for name, read in sections.items():
        try:
            out[name] = read()
        except Exception as exc:  # noqa: BLE001 - shown on the page next to the section
            out[name] = None
            out["errors"][name] = f"{type(exc).__name__}: {exc}"
    return out
