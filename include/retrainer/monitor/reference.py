"""The champion's reference: its training rows, profiled once and DVC-tracked, reused by every check.

Stored under ``<drift.reference_dir>/<model>/v<version>/``: ``reference.parquet`` (DVC-tracked), a
:class:`~retrainer.drift.ReferenceProfile` and a sample for the report's plots. It is built from the
champion run's ``train.parquet``, else from the training partitions its lineage manifest lists
(restored from DVC if needed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrainer.config import PREDICTION_COLUMN, Params
from retrainer.errors import GateFailed
from retrainer.monitor.champion import Champion, feature_specs, score_with_model
from retrainer.monitor.paths import locked_beside, reference_folder, relative
from retrainer.monitor.window import DAY_COLUMN
from retrainer.storage import md5_file, run_dir, write_json_atomic, write_with

if TYPE_CHECKING:
    import pyarrow as pa

    from retrainer.drift import ColumnSpec, ReferenceProfile


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
            return pq.read_table(train, columns=columns), {"source": relative(params, train), "source_md5": md5_file(train)}

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


def champion_reference(params: Params, champion: Champion) -> Reference:
    """The champion's reference (built and DVC-tracked on first use, then loaded from its cache)."""
    from retrainer.drift import ReferenceProfile, stratified_sample

    folder = reference_folder(params, champion)
    specs = feature_specs(params, with_prediction=True)
    signature = _profile_signature(params, specs)
    with locked_beside(folder / "reference"):
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
        frame[PREDICTION_COLUMN] = score_with_model(params, champion, frame)
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
