"""The current window: the ingested partitions of the checked days, and the champion's batch scores."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from retrainer.config import PREDICTION_COLUMN, Params
from retrainer.errors import GateFailed
from retrainer.monitor.champion import Champion
from retrainer.storage import md5_file, partition_file

DAY_COLUMN = "__day__"


@dataclass(frozen=True)
class CurrentWindow:
    table: Any  # pyarrow Table with the features, label, entity id, event time and __day__
    days: list[str]
    missing_days: list[str]
    partitions: list[dict[str, str]]  # day, md5
    # The missing days with why (retrainer.quarantine.window_gaps): quarantined days are left out too.
    gaps: list[dict[str, str]] = field(default_factory=list)

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
    from retrainer.quarantine import window_gaps

    missing = [d.isoformat() for d in days if d.isoformat() not in present]
    gaps = window_gaps(params, [d for d in days if d.isoformat() not in present])
    for gap in gaps:
        if gap["kind"].startswith("quarantined"):
            import logging

            logging.getLogger(__name__).warning("drift window ending %s leaves out %s: %s", as_of, gap["day"], gap["reason"])
    return CurrentWindow(table, [d.isoformat() for d in days], missing, partitions, gaps)


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
