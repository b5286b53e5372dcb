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
from retrainer.errors import InsufficientData
from retrainer.quarantine import describe_gaps, window_gaps
from retrainer.run_context import window_days, window_length
from retrainer.storage import md5_file, partition_file, with_pandas_metadata, write_json_atomic, write_with


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
        # Why each missing day is missing: quarantined (failed gate, unreadable rows) or no data.
        "gaps": window_gaps(params, days),
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
    """Write ``train.parquet``, ``holdout.parquet`` and ``manifest.json`` for the window ending at ``as_of``.

    The sets are built in Arrow: concatenating the daily partitions only links their columns, and no
    value becomes a Python object, so time and memory grow with the bytes of the window alone.
    """
    import pyarrow.parquet as pq

    manifest = dict(manifest or window_manifest(params, as_of, window))
    ds = params.dataset
    columns = [ds.entity_id, ds.event_time, *ds.features, ds.label]
    tables: dict[str, list] = {"train": [], "holdout": []}
    for part in manifest["partitions"]:
        path = params.path(part["path"])
        absent = [c for c in columns if c not in pq.read_schema(path).names]
        if absent:
            raise InsufficientData(f"partition {part['path']} lacks columns {absent}")
        # Only the columns the sets keep.
        tables[part["split"]].append(pq.read_table(path, columns=columns))

    train = _concat(tables.pop("train"), columns)
    holdout = _concat(tables.pop("holdout"), columns)
    # Rows without a label cannot teach or score anything; they are dropped, and counted in the manifest.
    train, train_unlabelled = _labelled(train, ds.label)
    holdout, holdout_unlabelled = _labelled(holdout, ds.label)
    manifest["unlabelled_rows_dropped"] = train_unlabelled + holdout_unlabelled
    _check_usable(params, as_of, manifest, train, holdout)

    out_dir.mkdir(parents=True, exist_ok=True)
    train_path, holdout_path = out_dir / "train.parquet", out_dir / "holdout.parquet"
    write_with(train_path, lambda tmp: pq.write_table(with_pandas_metadata(train), tmp))
    write_with(holdout_path, lambda tmp: pq.write_table(with_pandas_metadata(holdout), tmp))
    manifest |= {"train_rows": train.num_rows, "holdout_rows": holdout.num_rows}
    manifest_path = out_dir / "manifest.json"
    write_json_atomic(manifest_path, manifest)
    return PreparedData(
        as_of=as_of.isoformat(),
        train_path=str(train_path),
        holdout_path=str(holdout_path),
        manifest_path=str(manifest_path),
        data_hash=manifest["data_hash"],
        train_rows=train.num_rows,
        holdout_rows=holdout.num_rows,
    )


def _concat(parts: list, columns: list[str]):
    import pyarrow as pa

    if not parts:
        return pa.table({c: pa.array([], pa.null()) for c in columns})
    # A column typed differently across days (int64 in one, float64 with NULLs or all-NULL in
    # another) takes the type that holds both, as a pandas concat would.
    return pa.concat_tables(parts, promote_options="permissive")


def _labelled(table, label: str):
    """``table`` without the rows whose label is NULL or NaN, and how many were dropped."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = table.column(label)
    missing = pc.is_null(column, nan_is_null=True) if pa.types.is_floating(column.type) else pc.is_null(column)
    dropped = int(pc.sum(missing).as_py() or 0)
    return (table.filter(pc.invert(missing)) if dropped else table), dropped


def _check_usable(params: Params, as_of: date, manifest: dict, train, holdout) -> None:
    label = params.dataset.label
    where = f"window ending {as_of.isoformat()} ({len(manifest['partitions'])} partitions under {params.data_dir / 'raw'})"
    needed = params.prepare.min_days(manifest["window_days"])
    if len(manifest["partitions"]) < needed:
        raise InsufficientData(
            f"{where}: only {len(manifest['partitions'])} of {manifest['window_days']} days have data, fewer than "
            f"{needed} (prepare.min_window_days={params.prepare.min_window_days}, "
            f"prepare.min_window_share={params.prepare.min_window_share}); days left out:\n"
            + describe_gaps(manifest.get("gaps") or [])
        )
    if train.num_rows < params.prepare.min_train_rows:
        raise InsufficientData(
            f"{where}: {train.num_rows} training rows, fewer than prepare.min_train_rows={params.prepare.min_train_rows}"
        )
    if not holdout.num_rows:
        raise InsufficientData(f"{where}: no holdout rows in the last {params.prepare.holdout_days} days")
    for name, frame in (("training", train), ("holdout", holdout)):
        classes = sorted(frame.column(label).unique().to_pylist())
        if len(classes) < 2:
            raise InsufficientData(f"{where}: the {name} set has a single label class {classes}")
