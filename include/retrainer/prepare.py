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
from typing import Any

from retrainer.config import Params
from retrainer.errors import InsufficientData
from retrainer.quarantine import describe_gaps, window_gaps
from retrainer.run_context import window_days, window_length
from retrainer.storage import atomic_path, md5_file, partition_file, with_pandas_metadata, write_json_atomic


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

    The sets are streamed: each daily partition is read (only the columns the sets keep), its
    unlabelled rows dropped, and written as the next row group of its set, so one partition is in
    memory at a time whatever the window's size, and no value becomes a Python object. Both sets are
    written to temporary files and renamed into place only once the window is found usable.
    """
    import pyarrow.parquet as pq

    manifest = dict(manifest or window_manifest(params, as_of, window))
    ds = params.dataset
    columns = [ds.entity_id, ds.event_time, *ds.features, ds.label]
    _check_days(params, as_of, manifest)
    # Each set's partitions with their schemas, read once: the column check and the set's shared schema.
    parts: dict[str, list[tuple[Path, Any]]] = {"train": [], "holdout": []}
    for part in manifest["partitions"]:
        path = params.path(part["path"])
        schema = pq.read_schema(path)
        absent = [c for c in columns if c not in schema.names]
        if absent:
            raise InsufficientData(f"partition {part['path']} lacks columns {absent}")
        parts[part["split"]].append((path, schema))

    out_dir.mkdir(parents=True, exist_ok=True)
    train_path, holdout_path = out_dir / "train.parquet", out_dir / "holdout.parquet"
    with atomic_path(train_path) as train_tmp, atomic_path(holdout_path) as holdout_tmp:
        train = _stream_set(parts["train"], columns, ds.label, train_tmp)
        holdout = _stream_set(parts["holdout"], columns, ds.label, holdout_tmp)
        manifest["unlabelled_rows_dropped"] = train.unlabelled + holdout.unlabelled
        # Raising here leaves no set behind: atomic_path renames only when the block succeeds.
        _check_usable(params, as_of, manifest, train, holdout)
    manifest |= {"train_rows": train.rows, "holdout_rows": holdout.rows}
    manifest_path = out_dir / "manifest.json"
    write_json_atomic(manifest_path, manifest)
    return PreparedData(
        as_of=as_of.isoformat(),
        train_path=str(train_path),
        holdout_path=str(holdout_path),
        manifest_path=str(manifest_path),
        data_hash=manifest["data_hash"],
        train_rows=train.rows,
        holdout_rows=holdout.rows,
    )


@dataclass
class _SetSummary:
    """What the usability checks need of a written set, gathered while it streams."""

    rows: int = 0
    unlabelled: int = 0
    # The smallest and largest label seen: the set has two classes exactly when they differ.
    label_min: Any = None
    label_max: Any = None

    def add_labels(self, column: Any) -> None:
        import pyarrow.compute as pc

        if not len(column):
            return
        bounds = pc.min_max(column).as_py()
        low, high = bounds["min"], bounds["max"]
        self.label_min = low if self.label_min is None else min(self.label_min, low)
        self.label_max = high if self.label_max is None else max(self.label_max, high)

    def classes(self) -> list:
        return sorted({self.label_min, self.label_max} - {None})


def _set_schema(schemas: list, columns: list[str]):
    """The schema the set's partitions share: a column typed differently across days (int64 in one,
    float64 with NULLs or all-NULL in another) takes the type that holds both, as a pandas concat would."""
    import pyarrow as pa

    if not schemas:
        return pa.schema([pa.field(c, pa.null()) for c in columns])
    kept = [pa.schema([schema.field(c) for c in columns]) for schema in schemas]
    return pa.unify_schemas(kept, promote_options="permissive")


def _stream_set(parts: list[tuple[Path, Any]], columns: list[str], label: str, target: Path) -> _SetSummary:
    """Write the labelled rows of ``parts`` (partition paths with their schemas, in order, one row
    group per partition) to ``target``."""
    import pyarrow.parquet as pq

    schema = _set_schema([part_schema for _, part_schema in parts], columns)
    summary = _SetSummary()
    with pq.ParquetWriter(target, with_pandas_metadata(schema.empty_table()).schema) as writer:
        for path, _ in parts:
            table = pq.read_table(path, columns=columns).select(columns)
            if table.schema != schema:
                table = table.cast(schema)
            table, dropped = _labelled(table, label)
            summary.rows += table.num_rows
            summary.unlabelled += dropped
            summary.add_labels(table.column(label))
            if table.num_rows:
                writer.write_table(table)
            del table
    return summary


def _labelled(table, label: str):
    """``table`` without the rows whose label is NULL or NaN, and how many were dropped."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = table.column(label)
    missing = pc.is_null(column, nan_is_null=True) if pa.types.is_floating(column.type) else pc.is_null(column)
    dropped = int(pc.sum(missing).as_py() or 0)
    return (table.filter(pc.invert(missing)) if dropped else table), dropped


def _check_days(params: Params, as_of: date, manifest: dict) -> None:
    """Enough days of the window have data (prepare.min_window_days / min_window_share)."""
    needed = params.prepare.min_days(manifest["window_days"])
    if len(manifest["partitions"]) < needed:
        raise InsufficientData(
            f"{_where(params, as_of, manifest)}: only {len(manifest['partitions'])} of {manifest['window_days']} days "
            f"have data, fewer than {needed} (prepare.min_window_days={params.prepare.min_window_days}, "
            f"prepare.min_window_share={params.prepare.min_window_share}); days left out:\n"
            + describe_gaps(manifest.get("gaps") or [])
        )


def _where(params: Params, as_of: date, manifest: dict) -> str:
    return f"window ending {as_of.isoformat()} ({len(manifest['partitions'])} partitions under {params.data_dir / 'raw'})"


def _check_usable(params: Params, as_of: date, manifest: dict, train: _SetSummary, holdout: _SetSummary) -> None:
    where = _where(params, as_of, manifest)
    if train.rows < params.prepare.min_train_rows:
        raise InsufficientData(
            f"{where}: {train.rows} training rows, fewer than prepare.min_train_rows={params.prepare.min_train_rows}"
        )
    if not holdout.rows:
        raise InsufficientData(f"{where}: no holdout rows in the last {params.prepare.holdout_days} days")
    for name, summary in (("training", train), ("holdout", holdout)):
        classes = summary.classes()
        if len(classes) < 2:
            raise InsufficientData(f"{where}: the {name} set has a single label class {classes}")
