"""Version data partitions with DVC: track, push, restore.

Ingest writes ``<data_dir>/raw/dt=YYYY-MM-DD/part.parquet`` atomically, then calls :func:`track`,
which runs ``dvc add`` (writing ``part.parquet.dvc`` next to the file) and ``dvc push`` to the
configured remote, and returns the content hash for lineage. :func:`fetch` restores partitions
from the remote (``dvc pull``: download into the cache, then check out into the workspace).

Python API rather than the CLI
    Every operation opens ``dvc.repo.Repo(root)`` in-process and calls ``Repo.init``, ``.add``,
    ``.push``, ``.pull``, ``.remove`` and ``.status`` (all present in DVC 3.67). Measured here:
    one track + push of a 1 MiB partition takes about 0.2 s in a fresh process (0.06 s once
    DVC's lazy imports are warm; importing dvc costs ~0.4 s once per process), against ~1 s for
    ``dvc add`` + ``dvc push`` as two CLI calls, each paying a fresh interpreter. The API also
    raises typed exceptions (``dvc.lock.LockError``, ``UploadError``...) instead of exit codes
    and text on stderr, which lets us retry lock contention precisely and name the path, remote
    and URL in our own errors. The cost is that
    ``Repo``'s methods are DVC internals, not the documented read-only ``dvc.api``; they are kept
    behind this module, and ``dvc`` is imported inside functions only so importing this module
    stays cheap. Remote configuration goes through ``repo.config.edit()`` (what ``dvc remote
    add/modify -d`` and ``dvc config`` call), so an unchanged setting is not rewritten.

Concurrency and crash safety
    DVC refuses concurrent commands on one repo (``LockError``). All DVC work here runs under
    an inter-process lock on ``<root>/.dvc/tmp/retrainer.lock`` (``filelock.FileLock``, a kernel
    ``flock`` on Unix) with a bounded wait (``timeout``, default 600 s; :class:`LockTimeout` names
    the lock file and its last holder, which each holder writes into it). The kernel drops a flock
    when its holder dies, even by SIGKILL, so a killed process never leaves a stale lock. Before
    ``.dvc/tmp`` exists, initialisation locks the root folder itself (``filelock.lock_descriptor``).
    DVC's own locks are crash-safe too: ``.dvc/tmp/lock`` is an fcntl lock (the leftover file is
    harmless) and ``.dvc/tmp/rwlock`` entries of dead PIDs are dropped by DVC. Anything outside our lock that still holds DVC's lock (a person running ``dvc status``)
    makes DVC raise ``LockError``, which is retried with backoff (:data:`DVC_LOCK_RETRIES`).
    DVC writes cache and remote objects through a temporary file and a rename, so a crash
    mid-``add``/``push`` leaves at most a stray temporary file and a retry completes; a ``.dvc``
    stub that a crash left unreadable (DVC rewrites stubs in place) is removed and rewritten
    from the data file.

Git
    If ``root`` is inside a git work tree, DVC initialises with git (``dvc init``, which stages
    ``.dvc/config``, ``.dvc/.gitignore`` and ``.dvcignore`` as DVC always does) and ``dvc add``
    updates the ``.gitignore`` next to each partition. Nothing is ever committed, and DVC's
    "git add these files" hints are silenced.

Paths
    A relative ``path`` argument is taken relative to ``root`` (not the current directory);
    paths in :class:`TrackedFile` are POSIX paths relative to ``root``.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from filelock import FileLock, Timeout, lock_descriptor, unlock_descriptor

__all__ = [
    "DVC_LOCK_RETRIES",
    "LOCK_FILE",
    "LOCK_TIMEOUT",
    "FetchError",
    "LockTimeout",
    "PushError",
    "TrackedFile",
    "VersioningError",
    "ensure_repo",
    "fetch",
    "file_md5",
    "lock",
    "status_clean",
    "track",
    "untrack",
]

LOCK_FILE = "retrainer.lock"  # under <root>/.dvc/tmp/
LOCK_TIMEOUT = 600.0  # seconds to wait for the inter-process lock
DVC_LOCK_RETRIES = 5  # attempts when DVC itself reports LockError
_DVC_LOCK_BACKOFF = 0.5  # first pause between those attempts, doubled each time
_URL_SCHEME = re.compile(r"^\w+://")
_MD5 = re.compile(r"[0-9a-f]{32}(\.dir)?")

T = TypeVar("T")


class VersioningError(RuntimeError):
    """A DVC operation on the data repo failed."""


class LockTimeout(VersioningError, TimeoutError):
    """The inter-process lock on the DVC repo was not acquired in time."""


class PushError(VersioningError):
    """Pushing to the DVC remote failed."""


class FetchError(VersioningError):
    """Restoring data from the DVC remote failed."""


@dataclass(frozen=True)
class TrackedFile:
    path: str  # relative to repo root
    md5: str  # DVC content hash of the file (plain MD5 of its bytes)
    size: int
    dvc_file: str  # path of the .dvc stub, relative to repo root
    remote: str  # remote name pushed to ("" if not pushed)


# --------------------------------------------------------------------------- public API


def ensure_repo(root: Path, remote_name: str, remote_url: str, *, timeout: float = LOCK_TIMEOUT) -> None:
    """Make ``root`` a DVC repo whose default remote is ``remote_name`` at ``remote_url``.

    Idempotent: initialises DVC only if ``root/.dvc`` is missing (with git when ``root`` is in a
    git work tree, else ``--no-scm``), and rewrites the config only if a setting differs. A local
    ``remote_url`` (no ``scheme://``) is created if missing; a relative one is taken relative to
    ``root`` and stored relative, as ``dvc remote add`` does.
    """
    _no_analytics()
    if not re.fullmatch(r"[A-Za-z0-9_-]+", remote_name or ""):
        raise ValueError(f"invalid DVC remote name {remote_name!r}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    _init_if_needed(root, timeout)

    stored_url: str = remote_url
    compare_url: str = remote_url
    local = _local_remote_dir(root, remote_url)
    if local is not None:
        try:
            local.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VersioningError(
                f"cannot create DVC remote {remote_name!r} folder {local}: {exc.strerror or exc}"
            ) from exc
        from dvc.config_schema import RelPath

        # DVC 3.67 does not understand file:// (it pushes into a folder literally named
        # "file:" under the current directory), so a local remote is always stored as a path:
        # relative input relative to .dvc/ (RelPath), as `dvc remote add` does; else absolute.
        relative = not _URL_SCHEME.match(remote_url) and not Path(remote_url).expanduser().is_absolute()
        compare_url = str(local)
        stored_url = RelPath(str(local)) if relative else str(local)

    def configure() -> None:
        with _open(root) as repo:
            conf = repo.config.load_one("repo")
            current = conf.get("remote", {}).get(remote_name, {}).get("url")
            core = conf.get("core", {})
            if (
                current is not None
                and _same_url(str(current), compare_url)
                and core.get("remote") == remote_name
                and str(core.get("analytics", "")).lower() == "false"
            ):
                return
            with repo.config.edit("repo") as edit:
                edit["remote"].setdefault(remote_name, {})["url"] = stored_url
                edit["core"]["remote"] = remote_name
                edit["core"]["analytics"] = False

    with lock(root, timeout=timeout):
        _dvc_retry(configure, f"configuring DVC remote {remote_name!r} in {root}")


def track(
    root: Path,
    path: Path,
    *,
    push: bool = True,
    remote_name: str | None = None,
    timeout: float = LOCK_TIMEOUT,
) -> TrackedFile:
    """``dvc add`` one file (and ``dvc push`` it unless ``push=False``); return its hash.

    Tracking an unchanged file again is a no-op that returns the same hash; a changed file
    gets its stub updated. ``remote_name`` defaults to the repo's default remote.
    """
    root = _repo_root(root)
    target = _inside(root, path)
    if not target.exists():
        raise FileNotFoundError(f"cannot track {target}: no such file")
    if not target.is_file():
        raise ValueError(f"cannot track {target}: not a regular file")
    rel = _rel(root, target)
    stub = target.with_name(target.name + ".dvc")

    with lock(root, timeout=timeout), _open(root) as repo:
        _drop_unreadable_stub(stub)
        stages = _dvc_retry(lambda: repo.add([str(target)]), f"dvc add {rel}")
        out = stages[0].outs[0]
        md5, size = str(out.hash_info.value), int(out.meta.size)

        pushed_to = ""
        if push:
            name, url = _remote(repo, remote_name)
            try:
                _dvc_retry(lambda: repo.push([str(stub)], remote=name), f"dvc push {rel}")
            except LockTimeout:
                raise
            except Exception as exc:
                raise PushError(
                    f"pushing {rel} (md5 {md5}) to DVC remote {name!r} at {url} failed: {exc}"
                ) from exc
            pushed_to = name

    return TrackedFile(path=rel, md5=md5, size=size, dvc_file=_rel(root, stub), remote=pushed_to)


def untrack(root: Path, path: Path, *, timeout: float = LOCK_TIMEOUT) -> None:
    """Stop tracking ``path``: remove its ``.dvc`` stub (and .gitignore entry).

    The data file and the cached object stay. Untracking an untracked file does nothing.
    """
    root = _repo_root(root)
    target = _inside(root, path)
    stub = target.with_name(target.name + ".dvc")
    rel = _rel(root, target)

    with lock(root, timeout=timeout):
        if not stub.exists():
            return
        if _read_stub(stub) is None:  # unreadable: DVC cannot parse it either
            stub.unlink()
            return
        with _open(root) as repo:
            _dvc_retry(lambda: repo.remove(str(stub), outs=False), f"dvc remove {rel}.dvc")


def file_md5(root: Path, path: Path) -> str | None:
    """The md5 recorded in ``path``'s ``.dvc`` stub, or None if it is not tracked."""
    root = Path(root).resolve()
    target = _inside(root, path)
    stub = _read_stub(target.with_name(target.name + ".dvc"))
    if not stub:
        return None
    md5 = stub["outs"][0].get("md5")
    return str(md5) if md5 else None


def status_clean(
    root: Path,
    paths: Sequence[Path] | None = None,
    *,
    remote_name: str | None = None,
    timeout: float = LOCK_TIMEOUT,
) -> bool:
    """True if ``dvc status`` shows nothing to do and, when a remote is configured, neither
    does ``dvc status --cloud`` (everything pushed). ``paths`` limits both to those files."""
    root = _repo_root(root)
    targets = None
    if paths is not None:
        targets = []
        for p in paths:
            t = _inside(root, p)
            targets.append(str(t.with_name(t.name + ".dvc")))

    with lock(root, timeout=timeout), _open(root) as repo:
        if _dvc_retry(lambda: repo.status(targets=targets), "dvc status"):
            return False
        name = remote_name or repo.config["core"].get("remote")
        if not name:
            return True
        return not _dvc_retry(
            lambda: repo.status(targets=targets, cloud=True, remote=name), "dvc status --cloud"
        )


def fetch(
    root: Path,
    paths: Sequence[Path],
    remote_name: str | None = None,
    *,
    timeout: float = LOCK_TIMEOUT,
) -> None:
    """Restore tracked files from the remote into the cache and the workspace (``dvc pull``).

    Raises FileNotFoundError for a path with no ``.dvc`` stub, and :class:`FetchError` naming
    every path whose object the remote does not have.
    """
    root = _repo_root(root)
    items: list[tuple[str, Path, str]] = []  # (rel path, stub, md5)
    for p in paths:
        target = _inside(root, p)
        stub = target.with_name(target.name + ".dvc")
        md5 = file_md5(root, target)
        if md5 is None:
            raise FileNotFoundError(
                f"cannot fetch {_rel(root, target)}: not tracked by DVC (no readable {stub.name})"
            )
        items.append((_rel(root, target), stub, md5))
    if not items:
        return
    with lock(root, timeout=timeout), _open(root) as repo:
        name, url = _remote(repo, remote_name)
        try:
            _dvc_retry(lambda: repo.pull([str(stub) for _, stub, _ in items], remote=name), "dvc pull")
        except LockTimeout:
            raise
        except Exception as exc:
            odb = repo.cache.local
            missing = [(rel, md5) for rel, _, md5 in items if not odb.exists(md5)]
            if missing:
                listed = ", ".join(f"{rel} (md5 {md5})" for rel, md5 in missing)
                raise FetchError(
                    f"cannot restore {listed}: object not found in DVC remote {name!r} at {url}"
                ) from exc
            listed = ", ".join(rel for rel, _, _ in items)
            raise FetchError(f"restoring {listed} from DVC remote {name!r} at {url} failed: {exc}") from exc


# --------------------------------------------------------------------------- locking

@contextmanager
def lock(root: Path, *, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the inter-process lock that serialises DVC work on ``root``.

    Re-entrant within one thread, so callers may hold it around several calls of this module.
    Raises :class:`LockTimeout` after ``timeout`` seconds.
    """
    root = Path(root).resolve()
    tmp = root / ".dvc" / "tmp"
    if not (root / ".dvc").is_dir():
        raise VersioningError(f"{root} is not a DVC repo (no .dvc/); call ensure_repo first")
    tmp.mkdir(exist_ok=True)
    lock_path = tmp / LOCK_FILE
    # One instance per lock file (is_singleton): a nested call in the same thread only counts up.
    repo_lock = FileLock(lock_path, is_singleton=True, preserve_lock_file=True, on_acquired=_note_holder)
    try:
        repo_lock.acquire(timeout=max(0.0, timeout))
    except Timeout:
        raise LockTimeout(
            f"timed out after {timeout:g} s waiting for the DVC repo lock {lock_path} (held by {_holder(lock_path)})"
        ) from None
    try:
        yield
    finally:
        repo_lock.release()


def _note_holder(fd: int) -> None:
    """Write who holds the lock into the lock file, for the :class:`LockTimeout` of a waiter."""
    note = f"pid {os.getpid()} {' '.join(sys.argv)[:200]}\n".encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, note, 0)


@contextmanager
def _folder_lock(folder: Path, timeout: float) -> Iterator[None]:
    """An exclusive lock on ``folder`` itself (``FileLock`` needs a file it may create and write)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        deadline = time.monotonic() + max(0.0, timeout)
        while not lock_descriptor(fd, blocking=False):
            if time.monotonic() >= deadline:
                raise LockTimeout(
                    f"timed out after {timeout:g} s waiting for the DVC init lock on {folder} (held by another process)"
                )
            time.sleep(0.05)
        try:
            yield
        finally:
            unlock_descriptor(fd)
    finally:
        os.close(fd)


def _holder(path: Path) -> str:
    try:
        text = path.read_text(errors="replace").strip() if path.is_file() else ""
    except OSError:
        text = ""
    return text or "another process"


def _dvc_retry(fn: Callable[[], T], what: str) -> T:
    """Run ``fn``, retrying DVC's LockError (a DVC process outside our lock) with backoff."""
    from dvc.lock import LockError

    pause = _DVC_LOCK_BACKOFF
    for attempt in range(1, DVC_LOCK_RETRIES + 1):
        try:
            return fn()
        except LockError as exc:
            if attempt == DVC_LOCK_RETRIES:
                raise LockTimeout(
                    f"{what}: DVC's own repo lock stayed busy after {attempt} attempts"
                    f" (another DVC process is running outside this module?): {exc}"
                ) from exc
            time.sleep(pause)
            pause *= 2
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- helpers


def _no_analytics() -> None:
    # No internet here; also keeps any dvc subprocess (and DVC's own checks) offline.
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def _init_if_needed(root: Path, timeout: float) -> None:
    dvc_dir = root / ".dvc"
    if (dvc_dir / "config").is_file():
        return
    # .dvc/tmp does not exist yet, so serialise initialisation with a lock on root itself.
    with _folder_lock(root, timeout):
        if (dvc_dir / "config").is_file():
            return
        from dvc.repo import Repo

        toplevel = _git_toplevel(root)
        force = dvc_dir.exists()  # a .dvc/ without config: an init that died half-way
        # DVC logs its greeting to stdout; commands such as `retrainer reproduce --json` keep stdout for their result.
        logging.getLogger("dvc.repo.init").setLevel(logging.WARNING)
        if toplevel is None:
            repo = Repo.init(str(root), no_scm=True, force=force)
        else:
            repo = Repo.init(str(root), subdir=toplevel != root, force=force)
        repo.close()


def _git_toplevel(root: Path) -> Path | None:
    try:
        proc = subprocess.run(  # noqa: S603 - fixed argv, no shell; the root is a path, not a command
            ["git", "-C", str(root), "rev-parse", "--show-toplevel"],  # noqa: S607 - git from PATH, as DVC runs it
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    return Path(proc.stdout.strip()).resolve()


def _open(root: Path) -> Any:
    """``dvc.repo.Repo(root)`` (a context manager), without DVC's "git add these" hints:
    staging or committing is the user's business."""
    from dvc.repo import Repo

    repo = Repo(str(root))
    repo.scm_context.quiet = True
    return repo


def _repo_root(root: Path) -> Path:
    _no_analytics()
    root = Path(root).resolve()
    if not (root / ".dvc").is_dir():
        raise VersioningError(f"{root} is not a DVC repo (no .dvc/); call ensure_repo first")
    return root


def _inside(root: Path, path: Path) -> Path:
    """Absolute ``path`` (relative ones are under ``root``); ValueError if outside ``root``."""
    p = Path(path)
    if not p.is_absolute():
        p = root / p
    # Resolve the folders (symlinked roots) but not a symlinked file itself.
    p = p.parent.resolve() / p.name
    if p.name in ("", ".", "..") or p == root or root not in p.parents:
        raise ValueError(f"{path} is outside the DVC repo root {root}")
    if (root / ".dvc") == p or (root / ".dvc") in p.parents:
        raise ValueError(f"{path} is inside DVC's own folder {root / '.dvc'}")
    return p


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _read_stub(stub: Path) -> dict[str, Any] | None:
    """The parsed stub if it is a readable single-output .dvc file, else None."""
    try:
        data = yaml.safe_load(stub.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(data, dict):
        return None
    outs = data.get("outs")
    if not isinstance(outs, list) or len(outs) != 1 or not isinstance(outs[0], dict):
        return None
    out = outs[0]
    # DVC writes `path` last: a stub cut short mid-write lacks it (or has a partial md5).
    if not out.get("path") or not _MD5.fullmatch(str(out.get("md5", ""))):
        return None
    return data


def _drop_unreadable_stub(stub: Path) -> None:
    # A crash while DVC rewrote the stub (it writes in place) can leave it truncated; DVC then
    # refuses to add. The data file is the truth, so drop the stub and let add rewrite it.
    if stub.exists() and _read_stub(stub) is None:
        stub.unlink()


def _local_remote_dir(root: Path, url: str) -> Path | None:
    if url.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(url).path)).resolve()
    if _URL_SCHEME.match(url):
        return None
    p = Path(url).expanduser()
    return (p if p.is_absolute() else root / p).resolve()


def _same_url(a: str, b: str) -> bool:
    if _URL_SCHEME.match(a) or _URL_SCHEME.match(b):
        return a.rstrip("/") == b.rstrip("/")
    return os.path.normpath(a) == os.path.normpath(b)


def _remote(repo: Any, remote_name: str | None) -> tuple[str, str]:
    """(name, url) of ``remote_name`` or of the default remote; clear error if there is none."""
    conf = repo.config
    name = remote_name or conf["core"].get("remote")
    if not name:
        raise VersioningError(f"{repo.root_dir}: no default DVC remote configured; call ensure_repo first")
    remote = conf["remote"].get(name)
    if remote is None:
        known = ", ".join(sorted(conf["remote"])) or "none"
        raise VersioningError(f"{repo.root_dir}: unknown DVC remote {name!r} (configured: {known})")
    return name, str(remote.get("url", ""))
