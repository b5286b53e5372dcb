"""Atomic file writes and the on-disk layout of partitions and per-run work sets.

Every file Retrainer writes goes to a temporary name in the destination folder and is renamed into
place, so a reader (or a rerun after a crash) never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

PARTITION_FILE = "part.parquet"
# Beside a partition that came from landing files: which files, so the SQL source never overwrites it.
SOURCE_MARKER = "source.json"


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(target: Path, payload: Any) -> None:
    text = json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n"
    write_bytes_atomic(target, text.encode())


def write_with(target: Path, writer: Callable[[Path], None]) -> None:
    """Run ``writer(tmp_path)`` and move the result onto ``target`` atomically."""
    with atomic_path(target) as tmp:
        writer(tmp)


def with_pandas_metadata(table: Any) -> Any:
    """The Arrow ``table`` with the pandas metadata ``Table.from_pandas`` would give it.

    A file written from Arrow is then byte-identical to one written from the same rows as a pandas frame.
    """
    import pyarrow as pa

    empty = table.slice(0, 0).to_pandas()
    metadata = pa.Table.from_pandas(empty, schema=table.schema, preserve_index=False).schema.metadata
    return table.replace_schema_metadata(metadata)


def read_frame(path: Path) -> Any:
    """A Parquet file as a pandas frame with its text columns as Arrow-backed strings.

    Text comes back as pandas ``string[pyarrow]`` (values and nulls as stored) instead of ``object``
    columns of Python objects: reading takes about a third of the time, and a column of millions of
    distinct ids costs its bytes, not one Python object (and a deduplicating hash table) per cell.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow_strings = {pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")}
    # One block per column and each Arrow buffer freed once converted: the frame is built without a
    # second copy of the table beside it (pyarrow's documented low-memory conversion).
    return pq.read_table(path).to_pandas(types_mapper=arrow_strings.get, split_blocks=True, self_destruct=True)


def md5_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def partition_dir(data_dir: Path, day: date, area: str = "raw") -> Path:
    return data_dir / area / f"dt={day.isoformat()}"


def partition_file(data_dir: Path, day: date, area: str = "raw") -> Path:
    return partition_dir(data_dir, day, area) / PARTITION_FILE


def run_dir(data_dir: Path, as_of: date, run_key: str) -> Path:
    """Work folder of one training run: prepared sets, decision; keyed so reruns reuse it."""
    return data_dir / "runs" / f"as_of={as_of.isoformat()}" / run_key


def landing_marker(data_dir: Path, day: date) -> Path:
    """The marker beside a partition that landing files made (retrainer.landing writes it)."""
    return partition_dir(data_dir, day) / SOURCE_MARKER


def is_landing_partition(data_dir: Path, day: date) -> bool:
    """True if the raw partition of ``day`` came (at least partly) from landing files."""
    marker = landing_marker(data_dir, day)
    if not marker.exists():
        return False
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("source") == "landing"
    except (OSError, ValueError):
        return False


@contextmanager
def file_lock(path: Path, timeout: float, on_timeout: Callable[[], Exception]) -> Iterator[None]:
    """Hold the OS file lock at ``path`` (filelock: released by the kernel if the process dies); after
    ``timeout`` seconds of waiting, raise ``on_timeout()``, an error that names what holds the lock."""
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise on_timeout() from None
    try:
        yield
    finally:
        lock.release()
