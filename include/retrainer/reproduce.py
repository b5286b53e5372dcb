"""Read a model version's lineage, and reproduce it: restore its exact training data from the DVC
remote, re-run prepare → train → evaluate through the same library functions in a scratch folder,
and compare metrics and holdout predictions with the original.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

from retrainer.config import Params

TOLERANCE = 1e-9


class ReproduceError(RuntimeError):
    """The model cannot be reproduced; the message names the cause (missing data, changed code...)."""


def resolve_version(params: Params, model_name: str, ref: str):
    """A model version by number, or by alias (champion, challenger, ...)."""
    from mlflow.exceptions import MlflowException

    from retrainer.tracking import mlflow_client

    client = mlflow_client(params)
    try:
        return client.get_model_version(model_name, ref) if ref.isdigit() else client.get_model_version_by_alias(model_name, ref)
    except MlflowException as exc:
        raise ReproduceError(f"model {model_name!r} has no version or alias {ref!r}: {exc.message}") from None


def read_lineage(params: Params, model_name: str, ref: str) -> dict:
    """The lineage record of a model version (the lineage/lineage.json artifact of its training run)."""
    import mlflow

    from retrainer.tracking import mlflow_client

    version = resolve_version(params, model_name, ref)
    client = mlflow_client(params)
    try:
        record = mlflow.artifacts.load_dict(f"runs:/{version.run_id}/lineage/lineage.json")
    except Exception as exc:  # noqa: BLE001 - any MLflow failure means the record is not there
        raise ReproduceError(f"{model_name} v{version.version}: no lineage record in run {version.run_id} ({exc})") from None
    run = client.get_run(version.run_id)
    return {
        "model": model_name,
        "version": str(version.version),
        "aliases": sorted(version.aliases),
        "version_tags": dict(version.tags),
        "run_id": version.run_id,
        "metrics": dict(run.data.metrics),
        **record,
    }


def format_lineage(record: dict) -> str:
    """A readable table of a lineage record."""
    rows = [
        ("model", f"{record['model']} v{record['version']} {record['aliases'] or ''}"),
        ("MLflow run", record["run_id"]),
        ("as of", record["as_of"]),
        ("trained on", f"{len(record['partitions'])} partitions, data hash {record['data_hash']}"),
        ("manifest sha256", record["manifest_sha256"]),
        ("DVC remote", f"{record['dvc_remote']['name']} = {record['dvc_remote']['url']}"),
        ("code version", record["code_version"]),
        ("git commit", f"{record.get('git_commit') or '(not a git checkout)'}{' (dirty)' if record.get('git_dirty') == 'true' else ''}"),
        ("params.yaml sha256", record["params_digest"]),
        ("config hash", record["config_hash"]),
        ("trigger", f"{record['trigger']['reason'] or '-'} {record['trigger']['report'] or ''}".strip()),
        ("airflow run", f"{record['airflow']['dag_id']} / {record['airflow']['run_id']} (try {record['airflow']['try_number']})"),
        ("airflow UI", record["airflow"].get("ui_url") or "-"),
        ("validation", record["validation"]["summary"] or "-"),
        ("packages", ", ".join(f"{k} {v}" for k, v in record["packages"].items() if v)),
    ]
    metric_rows = [(f"metric {k}", f"{v:.6f}") for k, v in sorted(record["metrics"].items()) if k.startswith("holdout_")]
    width = max(len(k) for k, _ in rows + metric_rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows + metric_rows]
    lines.append("partitions:")
    lines += [f"  {p['day']}  {p['md5']}  {p['split']:7s}  {p['path']}" for p in record["partitions"]]
    return "\n".join(lines)


@dataclass
class Reproduction:
    model: str
    version: str
    scratch: str
    identical: bool
    metric_differences: dict[str, float] = field(default_factory=dict)
    max_prediction_difference: float = 0.0
    causes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def restore_partitions(params: Params, record: dict, scratch: Path) -> Path:
    """Pull the recorded partition bytes from the DVC remote into ``scratch/data/raw`` and verify them."""
    from retrainer import versioning
    from retrainer.storage import md5_file

    versioning.ensure_repo(scratch, record["dvc_remote"]["name"], record["dvc_remote"]["url"])
    restored = []
    for part in record["partitions"]:
        target = scratch / "data" / "raw" / f"dt={part['day']}" / "part.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        # A stub naming the recorded hash lets DVC fetch exactly those bytes from any remote type.
        stub = target.with_name(target.name + ".dvc")
        stub.write_text(f"outs:\n- md5: {part['md5']}\n  path: {target.name}\n  hash: md5\n")
        restored.append(target)
    try:
        versioning.fetch(scratch, restored, remote_name=record["dvc_remote"]["name"])
    except Exception as exc:  # noqa: BLE001 - reported with its cause
        raise ReproduceError(f"training data missing from the DVC remote {record['dvc_remote']['url']}: {exc}") from None
    for part, target in zip(record["partitions"], restored, strict=True):
        if not target.exists() or md5_file(target) != part["md5"]:
            raise ReproduceError(f"partition {part['day']} restored with the wrong bytes (expected md5 {part['md5']})")
    return scratch / "data"


def reproduce(params: Params, model_name: str, ref: str, scratch: Path) -> Reproduction:
    """Re-train the model version from its recorded data and settings; compare with the original."""
    import mlflow
    import numpy as np

    from retrainer.lineage import code_version, factory_record, package_versions
    from retrainer.prepare import prepare_window
    from retrainer.storage import read_frame
    from retrainer.train import (
        fit_pipeline,
        predict_scores,
        score,
        training_metric_rows,
    )

    record = read_lineage(params, model_name, ref)
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    causes = []
    if record["code_version"] != code_version():
        causes.append(f"model code changed since training (code version {record['code_version']} -> {code_version()})")
    recorded_factory, factory_now = record.get("factory"), factory_record(params)
    if (recorded_factory or {}).get("source_sha256") != (factory_now or {}).get("source_sha256"):
        causes.append(f"model.factory code changed since training ({recorded_factory} -> {factory_now})")
    changed = {k: (v, package_versions().get(k)) for k, v in record["packages"].items() if v != package_versions().get(k)}
    if changed:
        causes.append("package versions changed: " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items()))

    restore_partitions(params, record, scratch)
    recorded = params.model_copy(
        update={"root": scratch, "project": params.project.model_copy(update={"data_dir": "data", "seed": record["seed"]})}
    )
    as_of = date.fromisoformat(record["as_of"])
    prepared = prepare_window(recorded, as_of, scratch / "prepared", window=record["window_days"])
    if prepared.data_hash != record["data_hash"]:
        causes.append(f"prepared data differs (data hash {record['data_hash']} -> {prepared.data_hash})")

    # Read as train_model reads them (Arrow-backed text).
    train, holdout = read_frame(prepared.train_path), read_frame(prepared.holdout_path)
    model = fit_pipeline(recorded, train)
    metrics = {f"holdout_{k}": v for k, v in score(model, holdout, recorded).items()}
    metrics |= {f"train_{k}": v for k, v in score(model, training_metric_rows(train, recorded), recorded).items()}

    original = mlflow.sklearn.load_model(f"models:/{model_name}/{record['version']}")
    prediction_gap = float(np.max(np.abs(predict_scores(model, holdout, recorded) - predict_scores(original, holdout, recorded))))
    differences = {
        k: abs(metrics[k] - v) for k, v in record["metrics"].items() if k in metrics and abs(metrics[k] - v) > TOLERANCE
    }
    identical = not differences and prediction_gap <= TOLERANCE
    if not identical and not causes:
        causes.append("same data, code and packages, different result: non-determinism in training")
    result = Reproduction(model_name, record["version"], str(scratch), identical, differences, prediction_gap, causes)
    (scratch / "reproduction.json").write_text(json.dumps(result.to_dict(), indent=2))
    return result
