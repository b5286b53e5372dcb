"""A process killed by SIGKILL in the middle of `dvc push` (as an ingest task is when its worker dies or
it is marked zombie), then retried: the retry completes and nothing is corrupt.

Real DVC repo, real local remote, a real kill: the partition is large enough (128 MB) that the copy
into the remote is still in flight when the test sees its temporary file appear, and kills then.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retrainer import versioning

SIZE_MB = 128
TRACK = "import sys; from pathlib import Path; from retrainer import versioning as v; v.track(Path(sys.argv[1]), Path(sys.argv[2]))"


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _remote_files(remote: Path) -> list[Path]:
    return [p for p in remote.rglob("*") if p.is_file()] if remote.exists() else []


def test_a_kill_during_push_then_a_retry_leaves_no_corruption(tmp_path: Path) -> None:
    root, remote = tmp_path / "repo", tmp_path / "remote"
    root.mkdir()
    versioning.ensure_repo(root, "local", str(remote))
    part = root / "data" / "raw" / "dt=2026-03-31" / "part.parquet"
    part.parent.mkdir(parents=True)
    with part.open("wb") as handle:
        for _ in range(SIZE_MB):
            handle.write(os.urandom(1 << 20))
    expected = _md5(part)
    final_object = remote / "files" / "md5" / expected[:2] / expected[2:]

    child = subprocess.Popen([sys.executable, "-c", TRACK, str(root), str(part)])
    in_flight: list[Path] = []
    deadline = time.monotonic() + 300
    while child.poll() is None and time.monotonic() < deadline:
        in_flight = _remote_files(remote)
        if in_flight:
            os.kill(child.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, "the push finished before the kill: the test proved nothing"
    assert in_flight and not final_object.exists(), f"expected a half-copied object in the remote, saw {in_flight}"

    # The retry (the task's next try calls the same function): no lock left behind blocks it.
    tracked = versioning.track(root, part, timeout=30)
    assert tracked.md5 == expected and tracked.remote == "local"
    assert _md5(final_object) == expected
    assert versioning.status_clean(root, [part], remote_name="local")

    # Restoring from the remote alone (cache and workspace gone) gives the original bytes back.
    cache = root / ".dvc" / "cache"
    for obj in [p for p in cache.rglob("*") if p.is_file()]:
        obj.unlink()
    part.unlink()
    versioning.fetch(root, [part], "local")
    assert _md5(part) == expected


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch) -> None:
    for var in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(var, "Test")
    for var in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(var, "test@example.com")
