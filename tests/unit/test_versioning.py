"""retrainer.versioning: DVC tracking, pushing and restoring of data partitions.

Every test runs in tmp_path against a local folder remote, for both a git-backed root and a
``--no-scm`` root.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from retrainer import versioning as v

REMOTE = "local"


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _partition(root: Path, day: str, payload: bytes | None = None) -> Path:
    path = root / "data" / "raw" / f"dt={day}" / "part.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload if payload is not None else os.urandom(4096) + day.encode())
    return path


def _remote_object(remote: Path, md5: str) -> Path:
    return remote / "files" / "md5" / md5[:2] / md5[2:]


def _cache_object(root: Path, md5: str) -> Path:
    return root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


@pytest.fixture(params=["git", "noscm"])
def kind(request) -> str:
    return request.param


@pytest.fixture
def root(tmp_path: Path, kind: str, monkeypatch) -> Path:
    for var in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(var, "Test")
    for var in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(var, "test@example.com")
    repo = tmp_path / "repo"
    repo.mkdir()
    if kind == "git":
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    return tmp_path / "remote"


@pytest.fixture
def repo(root: Path, remote: Path) -> Path:
    v.ensure_repo(root, REMOTE, str(remote))
    return root


def _git_head(root: Path) -> str:
    proc = subprocess.run(["git", "-C", str(root), "rev-list", "--all"], capture_output=True, text=True)
    return proc.stdout.strip()


# --------------------------------------------------------------------------- ensure_repo


def test_ensure_repo_initialises_with_or_without_git(root: Path, remote: Path, kind: str) -> None:
    v.ensure_repo(root, REMOTE, str(remote))

    config = (root / ".dvc" / "config").read_text()
    assert remote.is_dir(), "a local remote folder is created"
    assert f"remote = {REMOTE}" in config
    assert "analytics = False" in config
    assert ("no_scm = True" in config) == (kind == "noscm")
    if kind == "git":
        assert _git_head(root) == "", "nothing is committed"


def test_ensure_repo_is_idempotent_and_updates_a_changed_url(
    repo: Path, remote: Path, tmp_path: Path
) -> None:
    config = repo / ".dvc" / "config"
    before = config.read_bytes()
    mtime = config.stat().st_mtime_ns

    v.ensure_repo(repo, REMOTE, str(remote))
    v.ensure_repo(repo, REMOTE, str(remote))
    assert config.read_bytes() == before
    assert config.stat().st_mtime_ns == mtime, "an unchanged setting is not rewritten"

    other = tmp_path / "elsewhere" / "remote2"
    v.ensure_repo(repo, REMOTE, str(other))
    assert other.is_dir()
    assert str(other) in config.read_text()
    assert str(remote) not in config.read_text()
    assert config.read_text().count('["remote') + config.read_text().count("['remote") == 1


def test_ensure_repo_relative_remote_is_under_root_and_stored_relative(root: Path) -> None:
    v.ensure_repo(root, REMOTE, ".dvc-remote")
    assert (root / ".dvc-remote").is_dir()
    assert "url = ../.dvc-remote" in (root / ".dvc" / "config").read_text()
    before = (root / ".dvc" / "config").read_bytes()
    v.ensure_repo(root, REMOTE, ".dvc-remote")
    assert (root / ".dvc" / "config").read_bytes() == before


def test_ensure_repo_stores_a_file_url_as_a_path(root: Path, tmp_path: Path) -> None:
    # DVC itself would push a file:// remote into a folder named "file:" under the cwd.
    target = tmp_path / "file-remote"
    v.ensure_repo(root, REMOTE, f"file://{target}")
    assert f"url = {target}\n" in (root / ".dvc" / "config").read_text()
    tracked = v.track(root, _partition(root, "2024-01-15"))
    assert _remote_object(target, tracked.md5).exists()


def test_ensure_repo_accepts_any_dvc_url(root: Path) -> None:
    v.ensure_repo(root, "s3store", "s3://bucket/prefix")
    assert "url = s3://bucket/prefix" in (root / ".dvc" / "config").read_text()


def test_functions_refuse_a_root_that_is_not_a_dvc_repo(root: Path) -> None:
    with pytest.raises(v.VersioningError, match="ensure_repo"):
        v.track(root, _partition(root, "2024-01-01"))
    assert not (root / ".dvc").exists()


# --------------------------------------------------------------------------- track


def test_track_pushes_and_records_plain_md5(repo: Path, remote: Path, kind: str) -> None:
    part = _partition(repo, "2024-01-01")

    tracked = v.track(repo, part)

    assert tracked == v.TrackedFile(
        path="data/raw/dt=2024-01-01/part.parquet",
        md5=_md5(part),  # DVC 3 hashes a single file as the plain MD5 of its bytes
        size=part.stat().st_size,
        dvc_file="data/raw/dt=2024-01-01/part.parquet.dvc",
        remote=REMOTE,
    )
    assert _remote_object(remote, tracked.md5).read_bytes() == part.read_bytes()
    assert v.file_md5(repo, part) == tracked.md5
    assert v.file_md5(repo, Path(tracked.path)) == tracked.md5, "relative paths are under root"
    assert v.status_clean(repo)
    if kind == "git":
        assert "/part.parquet" in (part.parent / ".gitignore").read_text()
        assert _git_head(repo) == "", "nothing is committed"


def test_track_without_push_leaves_cloud_status_dirty(repo: Path, remote: Path) -> None:
    part = _partition(repo, "2024-01-02")
    tracked = v.track(repo, part, push=False)
    assert tracked.remote == ""
    assert not _remote_object(remote, tracked.md5).exists()
    assert not v.status_clean(repo), "not pushed yet"
    assert v.track(repo, part).remote == REMOTE
    assert v.status_clean(repo)


def test_track_is_idempotent_and_follows_changes(repo: Path, remote: Path, kind: str) -> None:
    part = _partition(repo, "2024-01-03")
    first = v.track(repo, part)
    stub = repo / first.dvc_file
    stub_bytes = stub.read_bytes()

    again = v.track(repo, part)
    assert again == first
    assert stub.read_bytes() == stub_bytes
    assert sorted(p.name for p in part.parent.iterdir() if p.suffix == ".dvc") == ["part.parquet.dvc"]
    if kind == "git":
        assert (part.parent / ".gitignore").read_text().count("/part.parquet") == 1

    part.write_bytes(b"changed partition bytes")
    changed = v.track(repo, part)
    assert changed.md5 == _md5(part) != first.md5
    assert v.file_md5(repo, part) == changed.md5
    assert _remote_object(remote, changed.md5).exists()
    assert v.status_clean(repo)


def test_track_rejects_bad_paths(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.parquet"
    outside.write_bytes(b"x")
    with pytest.raises(ValueError, match=str(outside)):
        v.track(repo, outside)
    with pytest.raises(ValueError, match="outside"):
        v.track(repo, Path("../outside.parquet"))
    missing = repo / "data" / "raw" / "dt=2024-02-30" / "part.parquet"
    with pytest.raises(FileNotFoundError, match="dt=2024-02-30"):
        v.track(repo, missing)
    assert v.file_md5(repo, missing) is None


def test_push_failure_names_remote_and_url(repo: Path, remote: Path) -> None:
    part = _partition(repo, "2024-01-04")
    shutil.rmtree(remote)
    remote.write_text("a file where the remote folder should be")

    with pytest.raises(v.PushError) as err:
        v.track(repo, part)
    assert f"'{REMOTE}'" in str(err.value)
    assert str(remote) in str(err.value)
    assert "dt=2024-01-04" in str(err.value)
    # The stub is written; once the remote is back, a retry pushes.
    remote.unlink()
    v.ensure_repo(repo, REMOTE, str(remote))
    assert v.track(repo, part).remote == REMOTE
    assert v.status_clean(repo)


# --------------------------------------------------------------------------- untrack


def test_untrack_keeps_data_and_cache(repo: Path, kind: str) -> None:
    part = _partition(repo, "2024-01-05")
    tracked = v.track(repo, part)

    v.untrack(repo, part)

    assert not (repo / tracked.dvc_file).exists()
    assert part.read_bytes() and _md5(part) == tracked.md5
    assert _cache_object(repo, tracked.md5).exists()
    assert v.file_md5(repo, part) is None
    if kind == "git":
        gitignore = part.parent / ".gitignore"
        assert not gitignore.exists() or "/part.parquet" not in gitignore.read_text()
    v.untrack(repo, part)  # untracking twice is a no-op
    assert v.status_clean(repo)


# --------------------------------------------------------------------------- fetch


def test_fetch_restores_identical_bytes(repo: Path) -> None:
    parts = [_partition(repo, "2024-01-06"), _partition(repo, "2024-01-07")]
    originals = {p: p.read_bytes() for p in parts}
    tracked = [v.track(repo, p) for p in parts]
    for p, t in zip(parts, tracked, strict=True):
        p.unlink()
        _cache_object(repo, t.md5).unlink()

    v.fetch(repo, parts)

    for p in parts:
        assert p.read_bytes() == originals[p]
    assert v.status_clean(repo)


def test_fetch_names_the_path_whose_object_the_remote_lost(repo: Path, remote: Path) -> None:
    kept, lost = _partition(repo, "2024-01-08"), _partition(repo, "2024-01-09")
    kept_t, lost_t = v.track(repo, kept), v.track(repo, lost)
    for p, t in ((kept, kept_t), (lost, lost_t)):
        p.unlink()
        _cache_object(repo, t.md5).unlink()
    _remote_object(remote, lost_t.md5).unlink()

    with pytest.raises(v.FetchError) as err:
        v.fetch(repo, [kept, lost])
    message = str(err.value)
    assert lost_t.path in message and lost_t.md5 in message
    assert kept_t.path not in message
    assert f"'{REMOTE}'" in message and str(remote) in message


def test_fetch_untracked_path_is_a_clear_error(repo: Path) -> None:
    part = _partition(repo, "2024-01-10")
    with pytest.raises(FileNotFoundError, match="dt=2024-01-10.*not tracked"):
        v.fetch(repo, [part])


# --------------------------------------------------------------------------- concurrency


def _track_after_barrier(barrier, results, root: Path, path: Path) -> None:
    barrier.wait(timeout=60)
    try:
        results.put(v.track(root, path))
    except BaseException as exc:  # report it to the parent rather than die silently
        results.put(repr(exc))


def test_four_processes_track_concurrently(repo: Path, remote: Path, kind: str) -> None:
    parts = [_partition(repo, f"2024-03-0{i}") for i in range(1, 5)]
    expected = {p.relative_to(repo).as_posix(): _md5(p) for p in parts}

    # Fresh interpreters (spawn) for one variant, forked children with dvc already imported
    # for the other: the latter reach DVC at the same moment, the former as separate tasks do.
    ctx = multiprocessing.get_context("spawn" if kind == "noscm" else "fork")
    barrier, results = ctx.Barrier(len(parts)), ctx.Queue()
    procs = [ctx.Process(target=_track_after_barrier, args=(barrier, results, repo, p)) for p in parts]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0

    assert all(isinstance(o, v.TrackedFile) for o in outcomes), outcomes
    assert {o.path: o.md5 for o in outcomes} == expected
    assert sorted(repo.rglob("*.parquet.dvc")) == sorted(p.with_name("part.parquet.dvc") for p in parts)
    for p in parts:
        assert v.file_md5(repo, p) == _md5(p)
        assert _remote_object(remote, _md5(p)).exists()
    assert v.status_clean(repo)


def test_lock_wait_is_bounded_with_a_clear_error(repo: Path) -> None:
    part = _partition(repo, "2024-01-11")
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(repo), "ours"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(v.LockTimeout, match=r"retrainer\.lock.*pid"):
            v.track(repo, part, timeout=0.5)
        assert time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait()
    assert v.track(repo, part).md5 == _md5(part)


def test_dvc_lock_held_outside_this_module_is_retried(repo: Path) -> None:
    from dvc.repo import Repo

    part = _partition(repo, "2024-01-12")
    other = Repo(str(repo))
    other.lock.lock()  # like a `dvc` CLI command running meanwhile
    releaser = threading.Timer(4.0, other.lock.unlock)  # longer than DVC's own 3 s of retries
    releaser.start()
    try:
        assert v.track(repo, part).md5 == _md5(part)
    finally:
        releaser.join()
        other.close()


# A helper process: takes our lock, DVC's repo lock and a DVC rwlock write entry on the
# partition, as a process killed in the middle of `dvc add` would leave them.
_HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from retrainer import versioning as v

    root, mode = Path(sys.argv[1]), sys.argv[2]
    with v.lock(root, timeout=10):
        if mode == "all":
            from dvc.repo import Repo
            from dvc.rwlock import rwlock

            repo = Repo(str(root))
            repo.lock.lock()
            target = str(root / sys.argv[3])
            with rwlock(repo.tmp_dir, repo.fs, "dvc add (killed)", [], [target], False):
                print("locked", flush=True)
                time.sleep(120)
        print("locked", flush=True)
        time.sleep(120)
    """
)


def test_locks_of_a_killed_process_do_not_block(repo: Path) -> None:
    part = _partition(repo, "2024-01-13")
    rel = part.relative_to(repo).as_posix()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(repo), "all", rel], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    rwlock = (repo / ".dvc" / "tmp" / "rwlock").read_text()
    assert str(holder.pid) in rwlock, "the holder registered itself in DVC's rwlock"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()  # reaped: its PID no longer exists

    # A stray temporary file from an interrupted cache write does not matter either.
    tmp_obj = repo / ".dvc" / "cache" / "files" / "md5" / "ab" / ".cdef.partial.tmp"
    tmp_obj.parent.mkdir(parents=True, exist_ok=True)
    tmp_obj.write_bytes(b"half an object")

    started = time.monotonic()
    tracked = v.track(repo, part, timeout=10)
    assert time.monotonic() - started < 10
    assert tracked.md5 == _md5(part)
    assert v.status_clean(repo)


def test_a_truncated_stub_from_a_crash_is_rewritten(repo: Path) -> None:
    part = _partition(repo, "2024-01-14")
    tracked = v.track(repo, part)
    stub = repo / tracked.dvc_file
    stub.write_text("outs:\n- md5: 12")  # cut short mid-write
    assert v.file_md5(repo, part) is None

    assert v.track(repo, part) == tracked
    assert v.file_md5(repo, part) == tracked.md5
