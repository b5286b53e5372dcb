"""One drift check for an as-of date: measure, decide, report, log to MLflow, record in the ledger.

The check compares the most recent ``drift.window_days`` of ingested partitions (current) with the
champion's reference: data drift per feature (``retrainer.drift``), the prediction drift of the
champion's batch scores when they exist, and performance drift when enough rows carry labels.
Nothing here reads the clock: the as-of date is an input.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrainer.config import PREDICTION_COLUMN, Params
from retrainer.errors import GateFailed
from retrainer.monitor.champion import Champion, current_champion, feature_specs
from retrainer.monitor.decision import CheckOutcome, RetrainDecision, decide
from retrainer.monitor.ledger import TRIGGER_REASON, load_ledger, record_check
from retrainer.monitor.paths import relative, report_folder
from retrainer.monitor.performance import performance_check
from retrainer.monitor.reference import Reference, champion_reference
from retrainer.monitor.window import DAY_COLUMN, CurrentWindow, batch_predictions, current_window
from retrainer.storage import write_json_atomic

if TYPE_CHECKING:
    from retrainer.drift import ColumnSpec, DriftTable


@dataclass(frozen=True)
class _Inputs:
    """What one check compares: the champion's reference against the current window."""

    day: str
    champion: Champion
    reference: Reference
    current: CurrentWindow
    predictions: Any  # the champion's batch scores of the window (pandas), or None
    specs: list[ColumnSpec]


@dataclass(frozen=True)
class _Measured:
    """What the check found; ``inconclusive`` says why nothing was measured, if so."""

    table: DriftTable | None = None
    prediction: dict[str, Any] | None = None
    performance: dict[str, Any] | None = None
    inconclusive: str | None = None


def check_key(params: Params, as_of: str, champion: Champion, reference: Reference, window: CurrentWindow) -> str:
    """Same date, champion, reference, window data, drift params and drift/monitor code: same key."""
    from retrainer.lineage import PACKAGE_DIR

    sources = [*sorted((PACKAGE_DIR / "drift").glob("*.py")), *sorted((PACKAGE_DIR / "monitor").glob("*.py"))]
    code = hashlib.sha256(b"".join(path.read_bytes() for path in sources)).hexdigest()
    parts = [as_of, champion.version, reference.meta.get("md5", ""), window.data_hash,
             json.dumps(params.drift.model_dump(), sort_keys=True), code[:12]]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def run_check(params: Params, as_of: date, window: int | None = None, context: Mapping[str, str] | None = None) -> dict:
    """One drift check for ``as_of``: report, MLflow run, ledger record and the retrain decision.

    Returns a small JSON-safe summary (paths, scores of drifted columns, the decision, and the
    conf of the training run to trigger when the decision is to retrain).
    """
    champion = current_champion(params)
    reference = champion_reference(params, champion)
    current = current_window(params, as_of, window)
    predictions = batch_predictions(params, current.days, champion)
    inputs = _Inputs(as_of.isoformat(), champion, reference, current, predictions,
                     feature_specs(params, with_prediction=False))
    folder = report_folder(params, inputs.day)
    html, report_json, summary_path = folder / "report.html", folder / "report.json", folder / "summary.json"

    measured = _measure(params, inputs)
    outcome = _outcome(params, inputs.day, measured)
    ledger = load_ledger(params)
    decision = decide(ledger["checks"], ledger["triggers"], outcome, params.drift)
    if measured.table is not None:
        _write_report(params, inputs, measured.table, decision, html, report_json)

    summary = _summary(params, inputs, measured, outcome, decision, html, report_json)
    summary["summary_json"] = relative(params, summary_path)
    write_json_atomic(summary_path, summary)
    summary["mlflow_run_id"] = log_check(params, summary, [html, report_json, summary_path], context or {})
    write_json_atomic(summary_path, summary)  # now with the MLflow run id
    record_check(params, _ledger_record(summary, outcome, measured, decision))
    return summary


def _measure(params: Params, inputs: _Inputs) -> _Measured:
    """Data drift, prediction drift and performance of the window; or why the window is too small."""
    from retrainer.drift import DriftInputError, drift_table

    cfg, current, reference = params.drift, inputs.current, inputs.reference
    if current.rows < cfg.min_current_rows:
        return _Measured(inconclusive=(
            f"{current.rows} rows in the window {current.days[0]}..{current.days[-1]} "
            f"(days with data: {len(current.partitions)}) < drift.min_current_rows {cfg.min_current_rows}"
        ))
    prediction = None
    try:
        table = drift_table(reference.profile, current.table, inputs.specs, cfg.drift_share,
                            reference_frame=reference.load_frame, workers=cfg.workers)
        if inputs.predictions is not None:
            pred_spec = feature_specs(params, with_prediction=True)[-1:]
            pred_table = drift_table(reference.profile, inputs.predictions, pred_spec, cfg.drift_share,
                                     reference_frame=reference.load_frame)
            prediction = pred_table.columns[0].to_dict() | {"rows": len(inputs.predictions)}
    except DriftInputError as exc:
        raise GateFailed(f"drift check for {inputs.day}: {exc}") from None
    performance = performance_check(params, inputs.champion, current, inputs.predictions)
    return _Measured(table, prediction, performance)


def _outcome(params: Params, day: str, measured: _Measured) -> CheckOutcome:
    """The input of the decision: what today's check found."""
    table, performance, prediction = measured.table, measured.performance, measured.prediction
    critical = sorted(c.column for c in (table.drifted if table else []) if c.column in params.drift.critical_columns)
    return CheckOutcome(
        as_of=day,
        drifted_share=table.drifted_share if table else 0.0,
        drifted_columns={c.column: c.score for c in table.drifted} if table else {},
        critical_drifted=critical,
        performance_degraded=None if not performance else performance.get("degraded"),
        performance_note="" if not performance else performance.get("note", ""),
        prediction_drifted=None if prediction is None else bool(prediction["drifted"]),
        inconclusive=measured.inconclusive,
    )


def _write_report(params: Params, inputs: _Inputs, table: DriftTable, decision: RetrainDecision,
                  html: Path, report_json: Path) -> None:
    """Evidently's report (HTML and JSON): the full-data answers, plots from a day-stratified sample."""
    from retrainer.drift import drift_report, save_report, stratified_sample

    champion, reference, current = inputs.champion, inputs.reference, inputs.current
    metadata = {
        "as_of": inputs.day,
        "champion": f"{champion.name} v{champion.version}",
        "reference_rows": reference.profile.rows,
        "current_rows": current.rows,
        "current_days": f"{current.days[0]}..{current.days[-1]}",
        "scores": "computed on all rows; plots from a day-stratified sample",
        "decision": decision.action,
    }
    sample_rows = params.drift.report_sample_rows
    current_sample = stratified_sample(current.table, sample_rows, params.project.seed, by=DAY_COLUMN)
    snapshot = drift_report(reference.load_sample(), current_sample, table, inputs.specs, metadata)
    save_report(snapshot, html, report_json)


def _summary(params: Params, inputs: _Inputs, measured: _Measured, outcome: CheckOutcome,
             decision: RetrainDecision, html: Path, report_json: Path) -> dict:
    """The check's JSON-safe summary (``summary.json``, the MLflow run's tags and the task's result)."""
    from retrainer.drift import summary_line

    day, table, reference, current = inputs.day, measured.table, inputs.reference, inputs.current
    if table:
        line = summary_line(table, decision.action)
    else:
        line = f"drift: not checked ({measured.inconclusive}); decision: inconclusive"
    trigger_conf = {"reason": TRIGGER_REASON, "report": relative(params, html), "as_of": day}
    return {
        "as_of": day,
        "check_key": check_key(params, day, inputs.champion, reference, current),
        "champion": asdict(inputs.champion),
        "reference": {k: reference.meta.get(k) for k in ("rows", "source_rows", "sampled", "md5", "dvc_file", "source")}
        | {"folder": relative(params, reference.folder)},
        "current": {"rows": current.rows, "days": current.days, "missing_days": current.missing_days,
                    "gaps": current.gaps, "data_hash": current.data_hash},
        "drift": table.to_dict() if table else None,
        "prediction_drift": measured.prediction,
        "performance": measured.performance,
        "outcome": asdict(outcome),
        "decision": decision.to_dict(),
        "summary_line": line,
        "report_html": relative(params, html) if table else None,
        "report_json": relative(params, report_json) if table else None,
        "trigger_conf": trigger_conf if decision.retrain else None,
        "trigger_run_id": f"drift__{day}" if decision.retrain else None,
    }


def _ledger_record(summary: dict, outcome: CheckOutcome, measured: _Measured, decision: RetrainDecision) -> dict:
    """The check's line in the ledger: what the next checks' decisions read."""
    performance = measured.performance
    return {
        "as_of": summary["as_of"],
        "champion_version": summary["champion"]["version"],
        "drifted_share": outcome.drifted_share,
        "drifted_columns": outcome.drifted_columns,
        "critical_drifted": outcome.critical_drifted,
        "performance": None if not performance else {k: performance.get(k) for k in ("metric", "value", "floor", "degraded")},
        "prediction_drifted": outcome.prediction_drifted,
        "signal": decision.signal,
        "signal_reasons": decision.reasons,
        "inconclusive": bool(measured.inconclusive),
        "decision": decision.action,
        "note": decision.note,
        "report_html": summary["report_html"],
        "summary_json": summary["summary_json"],
        "mlflow_run_id": summary["mlflow_run_id"],
    }


def log_check(params: Params, summary: dict, artifacts: Sequence[Path], context: Mapping[str, str]) -> str:
    """One MLflow run per check in the monitoring experiment; a rerun with the same key reuses it."""
    from mlflow.entities import Metric, Param, RunTag

    from retrainer.tracking import AS_OF_TAG, ensure_experiment, mlflow_client

    client = mlflow_client(params)
    experiment_id = ensure_experiment(params, params.drift.experiment)
    decision = summary["decision"]
    tags = {
        "retrainer.check": "drift",
        "retrainer.check_key": summary["check_key"],
        AS_OF_TAG: summary["as_of"],
        "retrainer.champion_version": summary["champion"]["version"],
        "retrainer.decision": decision["action"],
        "retrainer.signal": str(decision["signal"]).lower(),
        "retrainer.summary": summary["summary_line"][:5000],
        **{f"airflow.{k}": str(v) for k, v in context.items() if v not in (None, "")},
    }
    if summary["report_html"]:
        tags["retrainer.report"] = summary["report_html"]
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`retrainer.check_key` = '{summary['check_key']}'", max_results=1
    )
    if found:
        run_id = found[0].info.run_id
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    else:
        run = client.create_run(experiment_id, tags=tags, run_name=f"drift-{summary['as_of']}")
        run_id = run.info.run_id
        metrics = {"drifted_share": summary["outcome"]["drifted_share"], "retrain": float(decision["retrain"])}
        if summary["drift"]:
            metrics["drifted_columns"] = float(sum(c["drifted"] for c in summary["drift"]["columns"]))
            metrics.update({f"drift_score.{c['column']}": c["score"] for c in summary["drift"]["columns"]})
        perf = summary["performance"] or {}
        if perf.get("value") is not None:
            metrics[f"performance.{perf['metric']}"] = perf["value"]
        if perf.get("floor") is not None:
            metrics[f"performance.{perf['metric']}_floor"] = perf["floor"]
        if summary["prediction_drift"]:
            metrics[f"drift_score.{PREDICTION_COLUMN}"] = summary["prediction_drift"]["score"]
        cfg = params.drift
        logged = {
            "as_of": summary["as_of"],
            "champion_version": summary["champion"]["version"],
            "window_days": len(summary["current"]["days"]),
            "current_rows": summary["current"]["rows"],
            "reference_rows": summary["reference"]["rows"],
            "drift_share": cfg.drift_share,
            "critical_columns": ",".join(cfg.critical_columns) or "-",
            "persistence": f"{cfg.persistence.required}/{cfg.persistence.checks}",
            "cooldown_days": cfg.cooldown_days,
        }
        # Stamped with the as-of day, so MLflow's charts of these metrics run along the checked dates.
        stamp = int(datetime.combine(date.fromisoformat(summary["as_of"]), datetime.min.time(), UTC).timestamp() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), stamp, 0) for k, v in metrics.items() if v == v],  # NaN is not logged
            params=[Param(k, str(v)) for k, v in logged.items()],
        )
    for path in artifacts:
        if path.exists():
            client.log_artifact(run_id, str(path), artifact_path="drift")
    if not found:
        client.set_terminated(run_id)
    return run_id
