"""The training pipeline's steps with explicit inputs and small JSON-safe outputs.

The Airflow tasks, the CLI behind ``dvc.yaml`` and plain-Python runs all call these functions, so a
run outside Airflow does exactly what a DAG run does. Each step takes the as-of date and the previous
step's small output (paths, ids, hashes) and returns its own.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

from retrainer.config import Params
from retrainer.errors import GateFailed, NoData
from retrainer.names import TRAINING_DAG
from retrainer.quarantine import describe_gaps, quarantine, release, short_reason
from retrainer.run_context import day_interval, window_days, window_length
from retrainer.storage import run_dir, write_json_atomic

log = logging.getLogger(__name__)



def step_ingest(params: Params, as_of: date, window: int | None = None) -> dict:
    """Materialise the as-of partition (and missing days of the window); NoData when the day is empty."""
    from retrainer.ingest import ingest_window

    summary = ingest_window(params, as_of, window=window)
    for skipped in (s for s in summary["skipped_days"] if s["day"] != as_of.isoformat()):
        log.warning("%s is left out of the window of %s (%s): %s", skipped["day"], as_of.isoformat(),
                    skipped["status"], short_reason(skipped["reason"] or ""))
    unplaced = summary.get("unplaced_rows") or {}
    if unplaced.get("rows"):
        log.warning(
            "source table %r: %d rows have an event time that places them on no day (NULL or not a date), "
            "e.g. %s: they are in no partition", params.source.table, unplaced["rows"], unplaced["examples"],
        )
    if summary["as_of_rows"] == 0:
        raise NoData(
            f"source table {params.source.table!r} has no rows for {as_of.isoformat()}: "
            "nothing ingested, no model trained, champion unchanged"
        )
    return summary


def step_validate(params: Params, as_of: date, ingest_summary: dict) -> dict:
    """Run the raw-data suite on every partition this run ingested; quarantine what fails critically.

    Only the as-of day's failure stops the run (that day's data is bad); another day of the window that
    fails is quarantined and becomes a gap of the window (``step_prepare`` leaves it out and says so).

    A partition that is gone because an earlier try quarantined it is read again from the source: that
    is the replay after a fix (clearing the failed task in the UI, or a backfill of failed runs). A batch
    that passes releases its day from quarantine. Several new partitions (a first run, a window with
    holes) are validated together (retrainer.validate.window): the same verdicts, far fewer GX runs.
    """
    from retrainer.validate import PartitionToValidate, batches_released, validate_partitions

    results, failures = [], []
    to_validate: list[tuple[PartitionToValidate, bool]] = []
    for part in ingest_summary["new_partitions"]:
        day = date.fromisoformat(part["day"])
        was_replayed = not Path(part["path"]).exists()
        path, replay_failure = _partition_to_validate(params, day, Path(part["path"]))
        if replay_failure is not None:
            if day == as_of:
                failures.append(replay_failure["reason"])
            results.append(replay_failure["entry"])
            continue
        start, end = day_interval(day)
        report_dir = params.reports_dir / "validation" / f"dt={day.isoformat()}"
        to_validate.append((PartitionToValidate(path, report_dir, start, end, day.isoformat()), was_replayed))
    replayed = {target.label: was_replayed for target, was_replayed in to_validate}
    with batches_released() as free_batch:
        validated = validate_partitions(
            [target for target, _ in to_validate],
            params.path(params.validation.raw_suite),
            params.reports_dir / "validation" / f"window-as_of={as_of.isoformat()}",
            result_format=params.validation.result_format,
            build_docs=True,
            after_each=free_batch,  # each stack's frames are garbage now: give their memory back
            alone={as_of.isoformat()},  # the run's own day keeps its full report and Data Docs
        )
        for target, outcome in validated:
            entry, failure = _gate_entry(params, target, outcome, replayed[target.label])
            results.append(entry)
            if failure and target.label == as_of.isoformat():
                failures.append(failure)
            elif failure:  # another day of the window: quarantined, and a gap of this run's window
                log.warning("%s fails its gate and is quarantined; it is left out of the window of %s: %s",
                            target.label, as_of.isoformat(), short_reason(failure))
    for skipped in ingest_summary.get("skipped_days") or []:
        if skipped["status"] != "unreadable":
            continue
        # Quarantined by ingest as text with its report: the as-of day fails its gate, others are gaps.
        results.append(_unreadable_entry(params, skipped["day"], skipped["reason"], replayed=False))
        if skipped["day"] == as_of.isoformat():
            failures.append(skipped["reason"])
    summary = {"as_of": as_of.isoformat(), "partitions": results}
    write_json_atomic(params.reports_dir / "validation" / f"summary-as_of={as_of.isoformat()}.json", summary)
    if failures:
        raise GateFailed("data-quality gate failed:\n" + "\n".join(failures))
    return summary


def _partition_to_validate(params: Params, day: date, path: Path) -> tuple[Path, dict | None]:
    """The partition's path, ingested again from the source when an earlier try quarantined it."""
    from retrainer.ingest import UnreadableValues, ingest_day

    if path.exists():
        return path, None
    try:
        fresh = ingest_day(params, day)
    except UnreadableValues as exc:
        return path, {"reason": str(exc), "entry": _unreadable_entry(params, day.isoformat(), str(exc), replayed=True)}
    if fresh.path is None:
        raise NoData(f"replay of {day.isoformat()}: the source has no rows for it any more")
    return Path(fresh.path), None


def _gate_entry(params: Params, target, outcome, replayed: bool) -> tuple[dict, str | None]:
    """A validated day's summary entry; a failing day is quarantined (the failure's message returned)."""
    day = date.fromisoformat(target.label)
    entry = {
        "day": target.label,
        "success": outcome.success,
        "replayed": replayed,
        "report_json": outcome.report_json,
        "data_docs": outcome.data_docs_index,
        "warnings": [f.expectation_type + (f"({f.column})" if f.column else "") for f in outcome.warnings()],
    }
    if outcome.success:
        entry["released_from_quarantine"] = release(params, day)
        return entry, None
    message = outcome.message()
    target_dir = quarantine(params, day, [target.report_dir], message)
    entry["quarantined_to"] = str(target_dir)
    return entry, f"{message}\n  quarantined to: {target_dir}"


def _unreadable_entry(params: Params, day: str, reason: str | None, *, replayed: bool) -> dict:
    """The validation entry of a day ingest quarantined because its source rows could not be read."""
    marker = "quarantined to: "
    target = next((line.split(marker, 1)[1] for line in (reason or "").splitlines() if marker in line), None)
    report = params.reports_dir / "validation" / f"dt={day}" / "validation.json"
    return {"day": day, "success": False, "replayed": replayed, "unreadable": True, "report_json": str(report),
            "data_docs": None, "warnings": [], "quarantined_to": target}


def step_prepare(params: Params, as_of: date, dag_id: str = TRAINING_DAG, window: int | None = None) -> dict:
    """Build train/holdout sets in the run's keyed work folder (reused when the key matches)."""
    from retrainer.lineage import run_key
    from retrainer.prepare import prepare_window, window_manifest

    manifest = window_manifest(params, as_of, window)
    quarantined = [g for g in manifest["gaps"] if g["kind"].startswith("quarantined")]
    if quarantined:
        log.warning("window ending %s leaves out %d quarantined day(s), trains on the %d days with data:\n%s",
                    as_of.isoformat(), len(quarantined), len(manifest["partitions"]), describe_gaps(quarantined))
    key = run_key(dag_id, as_of.isoformat(), manifest["data_hash"], params)
    prepared = prepare_window(params, as_of, run_dir(params.data_dir, as_of, key), manifest=manifest)
    gate = gate_prepared(params, as_of, prepared.train_path, window_length(params, as_of, window))
    return {**prepared.to_dict(), "run_key": key, "prepared_gate": gate, "gaps": manifest["gaps"]}


def gate_prepared(params: Params, as_of: date, train_path: str, window: int) -> dict:
    """The second gate: the training set's columns, ranges, label balance and size, and no target leakage."""
    from retrainer.gates import leakage_problems, non_finite_problems
    from retrainer.validate import read_partition

    # Text as Arrow-backed strings, as the partition gate reads it: no Python object per cell.
    train = read_partition(Path(train_path))
    ds = params.dataset
    problems = non_finite_problems(train, list(ds.numeric_features), f"training set as_of={as_of.isoformat()}")
    problems += leakage_problems(
        train, list(ds.numeric_features), list(ds.categorical_features), ds.label, params.validation.leakage_max_auc
    )
    report: dict = {"leakage": problems, "suite": None}
    if params.validation.prepared_suite:
        from retrainer.validate import validate_frame

        first_day = window_days(as_of, window)[0]
        outcome = validate_frame(
            train,
            params.path(params.validation.prepared_suite),
            Path(train_path).parent / "validation",
            partition_label=f"train as_of={as_of.isoformat()}",
            interval_start=day_interval(first_day)[0],
            interval_end=day_interval(as_of)[1],
            result_format=params.validation.result_format,
            build_docs=False,
            extra_parameters={"min_rows": params.prepare.min_train_rows},
        )
        report["suite"] = {"success": outcome.success, "report_json": outcome.report_json}
        if not outcome.success:
            problems = [outcome.message(), *problems]
    if problems:
        raise GateFailed("prepared-data gate failed:\n" + "\n".join(problems))
    return report


def _prepared(payload: dict):
    from dataclasses import fields

    from retrainer.prepare import PreparedData

    return PreparedData.from_dict({f.name: payload[f.name] for f in fields(PreparedData)})


def step_train(params: Params, prepared: dict, context: dict[str, str]) -> dict:
    from retrainer.train import train_model

    return train_model(
        params, _prepared(prepared), prepared["run_key"], context, prepared.get("prepared_gate")
    ).to_dict()


def step_evaluate(params: Params, prepared: dict, trained: dict, out_path: Path | None = None) -> dict:
    """Score the challenger against the champion; the decision goes beside the prepared data unless
    ``out_path`` says otherwise (dvc.yaml does: a DVC stage must not write into another stage's output)."""
    from retrainer.evaluate import evaluate_challenger
    from retrainer.train import TrainedModel

    out = out_path or Path(prepared["manifest_path"]).parent / "decision.json"
    decision = evaluate_challenger(params, _prepared(prepared), TrainedModel.from_dict(trained), out)
    return {"decision_path": str(out), "passed": decision.passed, "promote": decision.promote, "table": decision.table()}


def step_register(params: Params, trained: dict, evaluated: dict, facts: dict | None = None) -> dict:
    """Register the model and act on the decision; ``facts`` (run_type, dag_id, run_id...) go on the version."""
    from retrainer.evaluate import Decision
    from retrainer.register import register_model
    from retrainer.train import TrainedModel

    decision = Decision.load(evaluated["decision_path"])
    return register_model(params, TrainedModel.from_dict(trained), decision, facts).to_dict()


def run_pipeline(params: Params, as_of: date, context: dict[str, str] | None = None) -> dict:
    """All steps in one process, as the DAG runs them: for `retrainer run`, benchmarks and checks."""
    ingest = step_ingest(params, as_of)
    validation = step_validate(params, as_of, ingest)
    prepared = step_prepare(params, as_of)
    trained = step_train(params, prepared, context or {"dag_id": "cli"})
    evaluated = step_evaluate(params, prepared, trained)
    registered = step_register(params, trained, evaluated, {"run_type": "cli", **(context or {"dag_id": "cli"})})
    return {
        "ingest": ingest,
        "validation": validation,
        "prepared": prepared,
        "trained": trained,
        "evaluated": evaluated,
        "registered": registered,
    }
