"""Where the drift monitor keeps its files, and the lock that serialises writers of one of them.

* ``<reports_dir>/drift/ledger.json``: the ledger of checks and drift-triggered retrains;
* ``<reports_dir>/drift/<date>/``: one check's Evidently report and ``summary.json``;
* ``<drift.reference_dir>/<model>/v<version>/``: the reference of one champion.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock

from retrainer.config import Params

if TYPE_CHECKING:
    from retrainer.monitor.champion import Champion

LEDGER_FILE = "ledger.json"


def ledger_path(params: Params) -> Path:
    return params.drift_reports_dir / LEDGER_FILE


def report_folder(params: Params, as_of: str) -> Path:
    return params.drift_reports_dir / as_of


def reference_folder(params: Params, champion: Champion) -> Path:
    return params.reference_dir / champion.name / f"v{champion.version}"


def relative(params: Params, path: Path) -> str:
    """``path`` relative to the project root when it is inside it, else as given (resolved)."""
    path = path.resolve()
    root = params.root.resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def locked_beside(path: Path) -> FileLock:
    """An exclusive lock on ``.<name>.lock`` beside ``path``, waited for without a time limit.

    A kernel file lock (``filelock.FileLock``: ``flock`` on Unix), so it is released even if its
    holder dies. Use it as a context manager.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path.with_name(f".{path.name}.lock"))
