"""Prepare: train and holdout sets from the rolling window of validated partitions.

The holdout is the most recent ``holdout_days`` of the window and is never trained on. The manifest
lists every partition used with its content hash; its own hash is the data part of the run key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

from retrainer.config import Params
from retrainer.ingest import window_days, window_length
from retrainer.storage import md5_file, partition_file, write_json_atomic, write_with


class InsufficientData(ValueError):
    """The window does not hold enough usable rows to train and evaluate a model."""


@dataclass(frozen=True)
class PreparedData:
    as_of: str
    train_path: str
    holdout_path: str
    manifest_path: str
    data_hash: str
    train_rows: int
    holdout_rows: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict) -> PreparedData:
        return cls(**payload)


def window_manifest(params: Params, as_of: date, window: int | None = None) -> dict:
    """Which partitions of the window exist, with their hashes, split into train and holdout days."""
    days = window_days(as_of, window_length(params, as_of, window))
    holdout_from = days[-params.prepare.holdout_days]
    partitions = []
    for day in days:
        path = partition_file(params.data_dir, day)
        if path.exists():
            partitions.append(
                {
                    "day": day.isoformat(),
                    "path": str(path.relative_to(params.root)) if path.is_relative_to(params.root) else str(path),
                    "md5": md5_file(path),
                    "split": "holdout" if day >= holdout_from else "train",
                }
            )
    body = {
        "as_of": as_of.isoformat(),
        "window_days": len(days),
        "holdout_days": params.prepare.holdout_days,
        "partitions": partitions,
        "missing_days": sorted(set(d.isoformat() for d in days) - {p["day"] for p in partitions}),
    }
    canonical = json.dumps(
        {"as_of": body["as_of"], "partitions": [(p["day"], p["md5"], p["split"]) for p in partitions]},
        sort_keys=True,
    )
    body["data_hash"] = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return body


def prepare_window(
    params: Params, as_of: date, out_dir: Path, window: int | None = None, manifest: dict | None = None
) -> PreparedData:
    """Write ``train.parquet``, ``holdout.parquet`` and ``manifest.json`` for the window ending at ``as_of``."""
    import pandas as pd
    import pyarrow.parquet as pq

    manifest = dict(manifest or window_manifest(params, as_of, window))
    ds = params.dataset
    columns = [ds.entity_id, ds.event_time, *ds.features, ds.label]
    frames: dict[str, list[pd.DataFrame]] = {"train": [], "holdout": []}
    for part in manifest["partitions"]:
        path = params.path(part["path"])
        absent = [c for c in columns if c not in pq.read_schema(path).names]
        if absent:
            raise InsufficientData(f"partition {part['path']} lacks columns {absent}")
        # Only the columns the sets keep: no full-width frame and no copy of its selection.
        frames[part["split"]].append(pd.read_parquet(path, columns=columns))

    def concat(split: str) -> pd.DataFrame:
        parts = frames.pop(split)
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)

    # Each split's daily frames are released as soon as they are concatenated (peak: one copy of the window).
    train = concat("train")
    holdout = concat("holdout")
    # Rows without a label cannot teach or score anything; they are dropped, and counted in the manifest.
    unlabelled = {name: int(frame[ds.label].isna().sum()) for name, frame in (("train", train), ("holdout", holdout))}
    manifest["unlabelled_rows_dropped"] = sum(unlabelled.values())
    if unlabelled["train"]:
        train = train.dropna(subset=[ds.label])
    if unlabelled["holdout"]:
        holdout = holdout.dropna(subset=[ds.label])
    _check_usable(params, as_of, manifest, train, holdout)

    out_dir.mkdir(parents=True, exist_ok=True)
    train_path, holdout_path = out_dir / "train.parquet", out_dir / "holdout.parquet"
    write_with(train_path, lambda tmp: train.to_parquet(tmp, index=False))
    write_with(holdout_path, lambda tmp: holdout.to_parquet(tmp, index=False))
    manifest |= {"train_rows": len(train), "holdout_rows": len(holdout)}
    manifest_path = out_dir / "manifest.json"
    write_json_atomic(manifest_path, manifest)
    return PreparedData(
        as_of=as_of.isoformat(),
        train_path=str(train_path),
        holdout_path=str(holdout_path),
        manifest_path=str(manifest_path),
        data_hash=manifest["data_hash"],
        train_rows=len(train),
        holdout_rows=len(holdout),
    )


def _check_usable(params: Params, as_of: date, manifest: dict, train, holdout) -> None:
    label = params.dataset.label
    where = f"window ending {as_of.isoformat()} ({len(manifest['partitions'])} partitions under {params.data_dir / 'raw'})"
    if len(train) < params.prepare.min_train_rows:
        raise InsufficientData(
            f"{where}: {len(train)} training rows, fewer than prepare.min_train_rows={params.prepare.min_train_rows}"
        )
    if holdout.empty:
        raise InsufficientData(f"{where}: no holdout rows in the last {params.prepare.holdout_days} days")
    for name, frame in (("training", train), ("holdout", holdout)):
        classes = sorted(frame[label].unique().tolist())
        if len(classes) < 2:
            raise InsufficientData(f"{where}: the {name} set has a single label class {classes}")
