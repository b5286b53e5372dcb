"""retrainer.storage: atomic writes, the partition layout and the one file lock."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from retrainer import storage

DAY = date(2026, 3, 31)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out" / "summary.json"
    storage.write_json_atomic(target, {"b": 1, "a": [1, 2]})
    before = target.read_bytes()
    assert json.loads(before) == {"a": [1, 2], "b": 1}

    def broken(tmp: Path) -> None:
        tmp.write_text("half a fi")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        storage.write_with(target, broken)
    assert target.read_bytes() == before
    assert [p.name for p in target.parent.iterdir()] == ["summary.json"]


def test_the_partition_layout_and_the_landing_marker(tmp_path: Path) -> None:
    assert storage.partition_file(tmp_path, DAY) == tmp_path / "raw" / "dt=2026-03-31" / "part.parquet"
    assert storage.partition_dir(tmp_path, DAY, area="quarantine") == tmp_path / "quarantine" / "dt=2026-03-31"
    assert storage.run_dir(tmp_path, DAY, "k1") == tmp_path / "runs" / "as_of=2026-03-31" / "k1"
    assert not storage.is_landing_partition(tmp_path, DAY)
    marker = storage.landing_marker(tmp_path, DAY)
    marker.parent.mkdir(parents=True)
    marker.write_text("{not json")
    assert not storage.is_landing_partition(tmp_path, DAY)  # unreadable marker: not a landing partition
    storage.write_json_atomic(marker, {"source": "landing", "files": ["a.csv"]})
    assert storage.is_landing_partition(tmp_path, DAY)


def test_md5_matches_hashlib(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "blob"
    path.write_bytes(b"x" * 3_000_001)
    assert storage.md5_file(path, chunk=1 << 16) == hashlib.md5(b"x" * 3_000_001).hexdigest()  # noqa: S324


def test_a_held_lock_times_out_with_the_callers_error_and_dies_with_its_holder(tmp_path: Path) -> None:
    lock = tmp_path / "locks" / "work.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from filelock import FileLock; l = FileLock(sys.argv[1]); l.acquire(); "
         "print('held', flush=True); time.sleep(60)", str(lock)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="work.lock is busy"):
            with storage.file_lock(lock, 0.3, lambda: TimeoutError(f"{lock} is busy")):
                pass
        assert time.monotonic() - started >= 0.3
    finally:
        holder.kill()
        holder.wait()
    # The kernel released the dead holder's lock: no stale lock file blocks the next run.
    with storage.file_lock(lock, 5, lambda: TimeoutError("still held")):
        pass
