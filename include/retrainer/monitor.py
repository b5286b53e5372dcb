"""The `drift_monitor` DAG's library: one drift check for an as-of date, and the retrain decision.

A check compares the most recent ``drift.window_days`` of ingested partitions (current) with the
training data of the current ``champion`` (reference):

* **Reference, once per champion.** Built from the champion run's training set (its
  ``train.parquet``, else the training partitions its lineage manifest lists, restored from DVC if
  needed), stored under ``<drift.reference_dir>/<model>/v<version>/`` as ``reference.parquet``
  (DVC-tracked), a :class:`~retrainer.drift.ReferenceProfile` and a sample for the report's plots.
  Later checks against the same champion only load the profile.
* **Data drift** per feature with Evidently's method and threshold (``retrainer.drift``), the
  **prediction drift** of the champion's batch-scoring outputs (``retrainer.scoring``) when they exist,
  and **performance drift** when enough rows of the window carry labels (the champion's metric on
  them against its holdout metric; the batch scores of those rows when present, else the champion
  scores them here).
* **Outputs**: Evidently's HTML and JSON report and our ``summary.json`` under
  ``<reports_dir>/drift/<date>/``, an MLflow run in the monitoring experiment, and a check record in
  the ledger ``<reports_dir>/drift/ledger.json``.
* **Decision**: :func:`decide` is a pure function of the ledger's history, today's outcome and the
  ``drift`` params: a drift signal (drifted share, a critical column, performance) must persist
  (``required`` of the last ``checks`` checks) and no drift-triggered retrain may have happened
  within ``cooldown_days``.

Nothing here reads the clock: the as-of date is an input.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from retrainer.config import PREDICTION_COLUMN, DriftConfig, Params
from retrainer.errors import GateFailed, NoChampion
from retrainer.storage import md5_file, partition_file, run_dir, write_json_atomic, write_with

if TYPE_CHECKING:
    import pyarrow as pa

    from retrainer.drift import ColumnSpec, ReferenceProfile

LEDGER_FILE = "ledger.json"
TRIGGER_REASON = "drift"
DAY_COLUMN = "__day__"
Action = Literal["retrain", "no_drift", "unconfirmed", "cooldown", "already_triggered", "inconclusive"]


# --------------------------------------------------------------------------- the decision (pure)


@dataclass(frozen=True)
class CheckOutcome:
    """What today's check found: the input of :func:`decide`."""

    as_of: str
    drifted_share: float
    drifted_columns: dict[str, float]
    critical_drifted: list[str] = field(default_factory=list)
    performance_degraded: bool | None = None  # None: not judged (too few labels)
    performance_note: str = ""
    prediction_drifted: bool | None = None  # None: no batch-scoring outputs
    inconclusive: str | None = None  # why no judgement was possible, if so


@dataclass(frozen=True)
class RetrainDecision:
    action: Action
    retrain: bool
    signal: bool
    reasons: list[str]  # what signalled drift today
    note: str  # why this action
    drift_seen: int  # checks with a drift signal among those considered for persistence
    checks_considered: int
    last_trigger: str | None = None
    cooldown_until: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def drift_signals(outcome: CheckOutcome, policy: DriftConfig) -> list[str]:
    """Why today's check signals drift (empty: it does not)."""
    reasons = []
    if outcome.inconclusive:
        return reasons
    if outcome.drifted_share >= policy.drift_share:
        reasons.append(f"drifted share {outcome.drifted_share:.2f} >= drift_share {policy.drift_share}")
    if outcome.critical_drifted:
        reasons.append(f"critical columns drifted: {', '.join(outcome.critical_drifted)}")
    if outcome.performance_degraded:
        reasons.append(f"performance below its floor: {outcome.performance_note}")
    if outcome.prediction_drifted and policy.prediction_drift_is_critical:
        reasons.append("prediction drift (drift.prediction_drift_is_critical)")
    return reasons


def decide(
    checks: Sequence[Mapping[str, Any]],
    triggers: Sequence[Mapping[str, Any]],
    today: CheckOutcome,
    policy: DriftConfig,
) -> RetrainDecision:
    """Retrain or not, from the history of checks and triggers, today's outcome and the policy.

    ``checks`` are earlier check records (``as_of``, ``signal``, ``inconclusive``); a record for
    today's date is ignored (a rerun replaces it). ``triggers`` are earlier drift-triggered retrains
    (``as_of``). Retrain when today signals drift, drift was seen in at least
    ``persistence.required`` of the last ``persistence.checks`` conclusive checks (today included),
    and no drift-triggered retrain happened fewer than ``cooldown_days`` days from today.
    """
    day = date.fromisoformat(today.as_of)
    reasons = drift_signals(today, policy)
    signal = bool(reasons)
    if today.inconclusive:
        return RetrainDecision("inconclusive", False, False, [], today.inconclusive, 0, 0)

    earlier = sorted(
        (c for c in checks if c["as_of"] < today.as_of and not c.get("inconclusive")), key=lambda c: c["as_of"]
    )
    window = earlier[len(earlier) - (policy.persistence.checks - 1):] if policy.persistence.checks > 1 else []
    seen = sum(bool(c.get("signal")) for c in window) + int(signal)
    considered = len(window) + 1
    required = policy.persistence.required

    trigger_days = sorted(date.fromisoformat(t["as_of"]) for t in triggers)
    last = max((t for t in trigger_days if t <= day), default=None)
    base = dict(drift_seen=seen, checks_considered=considered, last_trigger=last.isoformat() if last else None)

    if not signal:
        return RetrainDecision("no_drift", False, False, [], "no drift signal", **base)
    if seen < required:
        note = f"drift seen in {seen} of the last {considered} checks; {required} of {policy.persistence.checks} needed"
        return RetrainDecision("unconfirmed", False, True, reasons, note, **base)
    if day in trigger_days:
        note = f"a drift-triggered retrain was already started for {today.as_of}"
        return RetrainDecision("already_triggered", False, True, reasons, note, **base)
    blocking = [t for t in trigger_days if abs((day - t).days) < policy.cooldown_days]
    if blocking:
        nearest = max(blocking)
        until = (nearest + timedelta(days=policy.cooldown_days)).isoformat()
        note = (
            f"drift confirmed ({seen} of {considered} checks) but a drift-triggered retrain ran for "
            f"{nearest.isoformat()}: cooldown of {policy.cooldown_days} days lasts until {until}"
        )
        return RetrainDecision("cooldown", False, True, reasons, note, cooldown_until=until, **base)
    note = f"drift confirmed in {seen} of the last {considered} checks, no retrain within {policy.cooldown_days} days"
    return RetrainDecision("retrain", True, True, reasons, note, **base)


# --------------------------------------------------------------------------- the ledger


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive flock beside ``path`` (released by the kernel even if the holder dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def ledger_path(params: Params) -> Path:
    return params.drift_reports_dir / LEDGER_FILE


def load_ledger(params: Params) -> dict[str, list[dict]]:
    """``{"checks": [...], "triggers": [...]}``; empty lists when no check ran yet."""
    path = ledger_path(params)
    if not path.exists():
        return {"checks": [], "triggers": []}
    try:
        ledger = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: the drift ledger is not valid JSON ({exc}); fix or move it away") from None
    return {"checks": list(ledger.get("checks", [])), "triggers": list(ledger.get("triggers", []))}


def _update_ledger(params: Params, key: str, record: dict) -> None:
    """Insert or replace (by as_of) one record, under the ledger lock, atomically.

    A check record always says whether a drift-triggered retrain was started for its date, so a
    rerun of the check does not hide the trigger.
    """
    path = ledger_path(params)
    with _locked(path):
        ledger = load_ledger(params)
        entries = [e for e in ledger[key] if e["as_of"] != record["as_of"]]
        entries.append(record)
        ledger[key] = sorted(entries, key=lambda e: e["as_of"])
        started = {t["as_of"]: t["training_run_id"] for t in ledger["triggers"]}
        for check in ledger["checks"]:
            check["triggered"] = check["as_of"] in started
            check["training_run_id"] = started.get(check["as_of"])
        write_json_atomic(path, ledger)


def record_check(params: Params, record: dict) -> None:
    _update_ledger(params, "checks", record)


def record_trigger(params: Params, as_of: str, training_run_id: str, report: str, champion_version: str) -> dict:
    """Note a drift-triggered training run in the ledger (the cooldown counts from its as-of date)."""
    trigger = {
        "as_of": as_of,
        "training_run_id": training_run_id,
        "report": report,
        "champion_version": champion_version,
        "reason": TRIGGER_REASON,
    }
    _update_ledger(params, "triggers", trigger)
    return trigger


# --------------------------------------------------------------------------- the champion and its reference


@dataclass(frozen=True)
class Champion:
    name: str
    version: str
    run_id: str
    as_of: str
    run_key: str
    holdout_metric: float | None
    metric_name: str


def current_champion(params: Params) -> Champion:
    """The model version holding the `champion` alias, with its run's lineage; NoChampion if none."""
    from retrainer.names import CHAMPION
    from retrainer.tracking import RUN_KEY_TAG, current_alias, mlflow_client

    version = current_alias(params, CHAMPION)
    if version is None:
        raise NoChampion(
            f"model {params.model.registered_name!r} has no champion yet: nothing to check drift against "
            "(train one with the `training` DAG first)"
        )
    run = mlflow_client(params).get_run(version.run_id)
    metric = params.evaluation.primary_metric
    return Champion(
        name=params.model.registered_name,
        version=str(version.version),
        run_id=version.run_id,
        as_of=run.data.tags.get("retrainer.as_of", ""),
        run_key=run.data.tags.get(RUN_KEY_TAG, ""),
        holdout_metric=run.data.metrics.get(f"holdout_{metric}"),
        metric_name=metric,
    )


def feature_specs(params: Params, with_prediction: bool = False) -> list[ColumnSpec]:
    from retrainer.drift import NUMERIC, ColumnSpec, column_specs

    cfg = params.drift
    specs = column_specs(params.dataset.numeric_features, params.dataset.categorical_features, cfg.methods, cfg.thresholds)
    if with_prediction:
        specs.append(
            ColumnSpec(PREDICTION_COLUMN, NUMERIC, cfg.methods.get(PREDICTION_COLUMN), cfg.thresholds.get(PREDICTION_COLUMN))
        )
    return specs


def reference_folder(params: Params, champion: Champion) -> Path:
    return params.reference_dir / champion.name / f"v{champion.version}"


def _profile_signature(params: Params, specs: Sequence[ColumnSpec]) -> str:
    """What a cached profile must match: its columns and kinds (methods and thresholds apply later)."""
    from retrainer.drift import PROFILE_FORMAT

    described = [PROFILE_FORMAT, [(s.name, s.kind) for s in specs], params.drift.reference_max_rows]
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Reference:
    folder: Path
    profile: ReferenceProfile
    meta: dict[str, Any]

    @property
    def data_path(self) -> Path:
        return self.folder / "reference.parquet"

    @property
    def sample_path(self) -> Path:
        return self.folder / "sample.parquet"

    def load_frame(self) -> pa.Table:
        import pyarrow.parquet as pq

        return pq.read_table(self.data_path)

    def load_sample(self):
        import pandas as pd

        return pd.read_parquet(self.sample_path)


def _training_frame(params: Params, champion: Champion) -> tuple[pa.Table, dict[str, Any]]:
    """The champion's training rows: its train.parquet, else its manifest's training partitions."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from retrainer.tracking import mlflow_client

    ds = params.dataset
    columns = [ds.event_time, *ds.features, ds.label]
    if champion.as_of and champion.run_key:
        work = run_dir(params.data_dir, date.fromisoformat(champion.as_of), champion.run_key)
        train = work / "train.parquet"
        if train.exists():
            return pq.read_table(train, columns=columns), {"source": _relative(params, train), "source_md5": md5_file(train)}

    # The training set is gone (another machine, a cleaned work folder): rebuild it from the
    # partitions the champion's lineage manifest lists, restoring them from the DVC remote.
    client = mlflow_client(params)
    try:
        manifest_file = client.download_artifacts(champion.run_id, "lineage/manifest.json")
    except Exception as exc:  # noqa: BLE001 - MLflow raises several types for a missing artifact
        raise GateFailed(
            f"champion v{champion.version} (run {champion.run_id}): neither its train.parquet nor its "
            f"lineage/manifest.json is available to rebuild the drift reference: {exc}"
        ) from exc
    manifest = json.loads(Path(manifest_file).read_text(encoding="utf-8"))
    parts = [p for p in manifest["partitions"] if p["split"] == "train"]
    missing = [params.path(p["path"]) for p in parts if not params.path(p["path"]).exists()]
    if missing:
        from retrainer import versioning

        versioning.fetch(params.root, missing, params.dvc.remote_name)
    tables, changed = [], []
    for part in parts:
        path = params.path(part["path"])
        if md5_file(path) != part["md5"]:
            changed.append(part["day"])
        tables.append(pq.read_table(path, columns=columns))
    table = pa.concat_tables(tables, promote_options="permissive")
    return table, {"source": "manifest partitions", "partitions": [p["day"] for p in parts], "changed_since": changed}


def _with_day(table: pa.Table, event_time: str) -> pa.Table:
    import pyarrow as pa
    import pyarrow.compute as pc

    days = pc.strftime(pc.cast(table.column(event_time), pa.timestamp("us")), format="%Y-%m-%d")
    return table.append_column(DAY_COLUMN, days)


_MODELS: dict[tuple[str, str, str], Any] = {}


def _score_with_model(params: Params, champion: Champion, frame) -> Any:
    """The champion's probability of the positive class for each row of ``frame`` (a pandas frame)."""
    from retrainer.train import feature_frame

    key = (params.tracking_uri, champion.name, champion.version)
    if key not in _MODELS:
        import mlflow

        from retrainer.tracking import mlflow_client

        mlflow_client(params)  # point MLflow at our store before loading
        _MODELS.clear()
        _MODELS[key] = mlflow.sklearn.load_model(f"models:/{champion.name}/{champion.version}")
    return _MODELS[key].predict_proba(feature_frame(frame, params))[:, 1]


def champion_reference(params: Params, champion: Champion) -> Reference:
    """The champion's reference (built and DVC-tracked on first use, then loaded from its cache)."""
    from retrainer.drift import ReferenceProfile, stratified_sample

    folder = reference_folder(params, champion)
    specs = feature_specs(params, with_prediction=True)
    signature = _profile_signature(params, specs)
    with _locked(folder / "reference"):
        meta_path = folder / "meta.json"
        if meta_path.exists() and (folder / "profile.json").exists() and (folder / "sample.parquet").exists():
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if meta.get("signature") == signature and meta.get("run_id") == champion.run_id:
                return Reference(folder, ReferenceProfile.load(folder), meta)

        import pyarrow as pa
        import pyarrow.parquet as pq

        table, origin = _training_frame(params, champion)
        table = _with_day(table, params.dataset.event_time)
        source_rows = table.num_rows
        seed = params.project.seed + int(champion.version)
        if table.num_rows > params.drift.reference_max_rows:
            sampled = stratified_sample(table, params.drift.reference_max_rows, seed, by=DAY_COLUMN)
            table = pa.Table.from_pandas(sampled, preserve_index=False)
        frame = table.to_pandas()
        frame[PREDICTION_COLUMN] = _score_with_model(params, champion, frame)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        data_path = folder / "reference.parquet"
        folder.mkdir(parents=True, exist_ok=True)
        write_with(data_path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
        tracked = _track(params, data_path)
        profile = ReferenceProfile.from_frame(table, specs, workers=params.drift.workers)
        sample = stratified_sample(table, params.drift.report_sample_rows, seed, by=DAY_COLUMN)
        write_with(folder / "sample.parquet", lambda tmp: sample.to_parquet(tmp, index=False))
        meta = {
            "champion": champion.name,
            "version": champion.version,
            "run_id": champion.run_id,
            "as_of": champion.as_of,
            "rows": table.num_rows,
            "source_rows": source_rows,
            "sampled": table.num_rows < source_rows,
            "signature": signature,
            "md5": md5_file(data_path),
            "dvc_file": tracked,
            **origin,
        }
        profile.meta = meta
        profile.save(folder)
        write_json_atomic(meta_path, meta)
        return Reference(folder, profile, meta)


def _track(params: Params, path: Path) -> str | None:
    """DVC-track (and push) the reference; its path relative to the repo, or None outside the root."""
    if not path.resolve().is_relative_to(params.root.resolve()):
        return None
    from retrainer import versioning

    versioning.ensure_repo(params.root, params.dvc.remote_name, params.dvc_remote_url)
    return versioning.track(params.root, path, remote_name=params.dvc.remote_name).dvc_file


# --------------------------------------------------------------------------- the current window


@dataclass(frozen=True)
class CurrentWindow:
    table: Any  # pyarrow Table with the features, label, entity id, event time and __day__
    days: list[str]
    missing_days: list[str]
    partitions: list[dict[str, str]]  # day, md5

    @property
    def rows(self) -> int:
        return self.table.num_rows

    @property
    def data_hash(self) -> str:
        canonical = json.dumps([(p["day"], p["md5"]) for p in self.partitions])
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def current_window(params: Params, as_of: date, window: int | None = None) -> CurrentWindow:
    """The ingested partitions of the ``window`` days ending at ``as_of`` (missing days are listed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from retrainer.run_context import window_days

    ds = params.dataset
    columns = [ds.entity_id, ds.event_time, *ds.features, ds.label]
    days = window_days(as_of, window or params.drift.window_days)
    tables, present, partitions = [], [], []
    for day in days:
        path = partition_file(params.data_dir, day)
        if not path.exists():
            continue
        have = pq.read_schema(path).names
        absent = [c for c in columns if c not in have]
        if absent:
            raise GateFailed(f"partition {path} lacks columns {absent}: it cannot be checked for drift")
        table = pq.read_table(path, columns=columns, read_dictionary=list(ds.categorical_features))
        tables.append(table.append_column(DAY_COLUMN, pa.array([day.isoformat()] * table.num_rows)))
        present.append(day.isoformat())
        partitions.append({"day": day.isoformat(), "md5": md5_file(path)})
    if tables:
        table = pa.concat_tables(tables, promote_options="permissive")
    else:
        table = pa.table({c: pa.array([], type=pa.null()) for c in [*columns, DAY_COLUMN]})
    missing = [d.isoformat() for d in days if d.isoformat() not in present]
    return CurrentWindow(table, [d.isoformat() for d in days], missing, partitions)


def batch_predictions(params: Params, days: Sequence[str], champion: Champion):
    """The champion's batch-scoring outputs for ``days`` (``retrainer.scoring``), or None when there are none.

    Read from ``<scoring.output_dir>/dt=YYYY-MM-DD/<model>-v<champion version>.parquet`` (shadow scores
    of other versions are ignored); columns renamed to the data set's entity id and event time, and
    the probability ``score`` kept as :data:`PREDICTION_COLUMN`.
    """
    import pandas as pd

    from retrainer.scoring import day_dir

    ds = params.dataset
    frames = []
    for day in days:
        path = day_dir(params, date.fromisoformat(day)) / f"{champion.name}-v{champion.version}.parquet"
        if not path.exists():
            continue
        frame = pd.read_parquet(path)
        absent = [c for c in ("entity_id", "event_time", "score") if c not in frame.columns]
        if absent:
            raise GateFailed(f"batch-scoring output {path} lacks columns {absent}")
        frames.append(
            frame[["entity_id", "event_time", "score"]].rename(
                columns={"entity_id": ds.entity_id, "event_time": ds.event_time, "score": PREDICTION_COLUMN}
            )
        )
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else None


# --------------------------------------------------------------------------- performance


def metrics_from_proba(y, proba) -> dict[str, float]:
    """The same metrics as ``retrainer.train.score``, from labels and predicted probabilities."""
    import numpy as np
    from sklearn import metrics

    y = np.asarray(y, dtype=int)
    proba = np.asarray(proba, dtype=float)
    predicted = (proba >= 0.5).astype(int)
    single_class = len(np.unique(y)) < 2
    return {
        "roc_auc": float("nan") if single_class else float(metrics.roc_auc_score(y, proba)),
        "average_precision": float("nan") if single_class else float(metrics.average_precision_score(y, proba)),
        "accuracy": float(metrics.accuracy_score(y, predicted)),
        "f1": float(metrics.f1_score(y, predicted, zero_division=0)),
        "log_loss": float(metrics.log_loss(y, np.clip(proba, 1e-15, 1 - 1e-15), labels=[0, 1])),
    }


def performance_check(
    params: Params, champion: Champion, window: CurrentWindow, predictions
) -> dict[str, Any]:
    """The champion's metric on the window's labelled rows against its holdout metric and floor."""
    import math

    from retrainer.train import HIGHER_IS_BETTER

    ds, cfg = params.dataset, params.drift.performance
    metric = champion.metric_name
    frame = window.table.drop_columns([DAY_COLUMN]).to_pandas()
    labelled = frame[frame[ds.label].notna()]
    result: dict[str, Any] = {"metric": metric, "labelled_rows": len(labelled), "champion_holdout": champion.holdout_metric}
    if len(labelled) < cfg.min_labelled_rows:
        result.update(judged=False, degraded=None, note=f"{len(labelled)} labelled rows < min_labelled_rows {cfg.min_labelled_rows}")
        return result
    source = "champion scored by the monitor"
    proba = None
    if predictions is not None:
        keys = [k for k in (ds.entity_id, ds.event_time) if k in predictions.columns and k in labelled.columns]
        if keys:
            joined = labelled.merge(predictions[[*keys, PREDICTION_COLUMN]].drop_duplicates(keys), on=keys, how="inner")
            if len(joined) >= cfg.min_labelled_rows:
                labelled, proba, source = joined, joined[PREDICTION_COLUMN].to_numpy(), "batch-scoring outputs"
    if proba is None:
        proba = _score_with_model(params, champion, labelled)
    value = metrics_from_proba(labelled[ds.label], proba)[metric]
    higher = HIGHER_IS_BETTER[metric]
    base = champion.holdout_metric
    bounds = []
    if base is not None:
        bounds.append(base - cfg.max_drop if higher else base + cfg.max_drop)
    if cfg.floor is not None:
        bounds.append(cfg.floor)
    if not bounds or math.isnan(value):
        result.update(value=value, judged=False, degraded=None, source=source, note="no floor to compare with")
        return result
    floor = max(bounds) if higher else min(bounds)
    degraded = value < floor if higher else value > floor
    note = (
        f"{metric} {value:.4f} on {len(labelled)} labelled rows "
        f"{'below' if degraded and higher else 'above' if degraded else 'within'} the floor {floor:.4f} "
        f"(champion holdout {base if base is None else round(base, 4)}, max_drop {cfg.max_drop})"
    )
    result.update(value=value, floor=floor, judged=True, degraded=degraded, source=source, rows=len(labelled), note=note)
    return result


# --------------------------------------------------------------------------- one check


def report_folder(params: Params, as_of: str) -> Path:
    return params.drift_reports_dir / as_of


def _relative(params: Params, path: Path) -> str:
    path = path.resolve()
    root = params.root.resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def check_key(params: Params, as_of: str, champion: Champion, reference: Reference, window: CurrentWindow) -> str:
    from retrainer.lineage import PACKAGE_DIR

    code = hashlib.sha256(b"".join((PACKAGE_DIR / n).read_bytes() for n in ("drift.py", "monitor.py"))).hexdigest()
    parts = [as_of, champion.version, reference.meta.get("md5", ""), window.data_hash,
             json.dumps(params.drift.model_dump(), sort_keys=True), code[:12]]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def run_check(params: Params, as_of: date, window: int | None = None, context: Mapping[str, str] | None = None) -> dict:
    """One drift check for ``as_of``: report, MLflow run, ledger record and the retrain decision.

    Returns a small JSON-safe summary (paths, scores of drifted columns, the decision, and the
    conf of the training run to trigger when the decision is to retrain).
    """
    from retrainer.drift import (
        DriftInputError,
        drift_report,
        drift_table,
        save_report,
        stratified_sample,
        summary_line,
    )

    cfg = params.drift
    day = as_of.isoformat()
    champion = current_champion(params)
    reference = champion_reference(params, champion)
    current = current_window(params, as_of, window)
    predictions = batch_predictions(params, current.days, champion)
    specs = feature_specs(params, with_prediction=False)
    folder = report_folder(params, day)
    html, report_json, summary_path = folder / "report.html", folder / "report.json", folder / "summary.json"

    table = None
    performance: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    inconclusive = None
    if current.rows < cfg.min_current_rows:
        inconclusive = (
            f"{current.rows} rows in the window {current.days[0]}..{current.days[-1]} "
            f"(days with data: {len(current.partitions)}) < drift.min_current_rows {cfg.min_current_rows}"
        )
    else:
        try:
            table = drift_table(reference.profile, current.table, specs, cfg.drift_share,
                                reference_frame=reference.load_frame, workers=cfg.workers)
            if predictions is not None:
                pred_spec = feature_specs(params, with_prediction=True)[-1:]
                pred_table = drift_table(reference.profile, predictions, pred_spec, cfg.drift_share,
                                         reference_frame=reference.load_frame)
                prediction = pred_table.columns[0].to_dict() | {"rows": len(predictions)}
        except DriftInputError as exc:
            raise GateFailed(f"drift check for {day}: {exc}") from None
        performance = performance_check(params, champion, current, predictions)

    critical = sorted(c.column for c in (table.drifted if table else []) if c.column in cfg.critical_columns)
    outcome = CheckOutcome(
        as_of=day,
        drifted_share=table.drifted_share if table else 0.0,
        drifted_columns={c.column: c.score for c in table.drifted} if table else {},
        critical_drifted=critical,
        performance_degraded=None if not performance else performance.get("degraded"),
        performance_note="" if not performance else performance.get("note", ""),
        prediction_drifted=None if prediction is None else bool(prediction["drifted"]),
        inconclusive=inconclusive,
    )
    ledger = load_ledger(params)
    decision = decide(ledger["checks"], ledger["triggers"], outcome, cfg)

    key = check_key(params, day, champion, reference, current)
    metadata = {
        "as_of": day,
        "champion": f"{champion.name} v{champion.version}",
        "reference_rows": reference.profile.rows,
        "current_rows": current.rows,
        "current_days": f"{current.days[0]}..{current.days[-1]}",
        "scores": "computed on all rows; plots from a day-stratified sample",
        "decision": decision.action,
    }
    if table is not None:
        sample_rows = cfg.report_sample_rows
        current_sample = stratified_sample(current.table, sample_rows, params.project.seed, by=DAY_COLUMN)
        snapshot = drift_report(reference.load_sample(), current_sample, table, specs, metadata)
        save_report(snapshot, html, report_json)
    line = (summary_line(table, decision.action) if table else f"drift: not checked ({inconclusive}); decision: inconclusive")
    trigger_conf = {"reason": TRIGGER_REASON, "report": _relative(params, html), "as_of": day}
    summary = {
        "as_of": day,
        "check_key": key,
        "champion": asdict(champion),
        "reference": {k: reference.meta.get(k) for k in ("rows", "source_rows", "sampled", "md5", "dvc_file", "source")}
        | {"folder": _relative(params, reference.folder)},
        "current": {"rows": current.rows, "days": current.days, "missing_days": current.missing_days,
                    "data_hash": current.data_hash},
        "drift": table.to_dict() if table else None,
        "prediction_drift": prediction,
        "performance": performance,
        "outcome": asdict(outcome),
        "decision": decision.to_dict(),
        "summary_line": line,
        "report_html": _relative(params, html) if table else None,
        "report_json": _relative(params, report_json) if table else None,
        "trigger_conf": trigger_conf if decision.retrain else None,
        "trigger_run_id": f"drift__{day}" if decision.retrain else None,
    }
    summary["summary_json"] = _relative(params, summary_path)
    write_json_atomic(summary_path, summary)
    summary["mlflow_run_id"] = log_check(params, summary, [html, report_json, summary_path], context or {})
    write_json_atomic(summary_path, summary)  # now with the MLflow run id
    record_check(
        params,
        {
            "as_of": day,
            "champion_version": champion.version,
            "drifted_share": outcome.drifted_share,
            "drifted_columns": outcome.drifted_columns,
            "critical_drifted": critical,
            "performance": None if not performance else {k: performance.get(k) for k in ("metric", "value", "floor", "degraded")},
            "prediction_drifted": outcome.prediction_drifted,
            "signal": decision.signal,
            "signal_reasons": decision.reasons,
            "inconclusive": bool(inconclusive),
            "decision": decision.action,
            "note": decision.note,
            "report_html": summary["report_html"],
            "summary_json": summary["summary_json"],
            "mlflow_run_id": summary["mlflow_run_id"],
        },
    )
    return summary


def log_check(params: Params, summary: dict, artifacts: Sequence[Path], context: Mapping[str, str]) -> str:
    """One MLflow run per check in the monitoring experiment; a rerun with the same key reuses it."""
    from mlflow.entities import Metric, Param, RunTag

    from retrainer.tracking import ensure_experiment, mlflow_client

    client = mlflow_client(params)
    experiment_id = ensure_experiment(params, params.drift.experiment)
    decision = summary["decision"]
    tags = {
        "retrainer.check": "drift",
        "retrainer.check_key": summary["check_key"],
        "retrainer.as_of": summary["as_of"],
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
