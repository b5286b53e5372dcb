"""Landing: files dropped into a folder become daily partitions, exactly once, with nothing lost.

A landing file is a batch of rows with the source table's columns, as CSV or Parquet. Its life:

1. **claim** (:func:`claim_files`): the file is hashed (SHA-256) and moved with ``os.replace`` from
   ``landing.folder`` to ``landing.staging/<hash[:16]>/<name>``. The move is atomic, so a file is
   either still in the landing folder or claimed, never both and never half-copied. A file whose
   content was processed before (the ledger knows its hash) is not read again: it goes to
   quarantine as a duplicate.
2. **ingest** (:func:`ingest_staged`): every claimed file the ledger does not yet list is parsed,
   split by the day of its event time, and merged into ``data/raw/dt=YYYY-MM-DD/part.parquet``
   (union with the rows already there, exact duplicates dropped, rows sorted: the same set of files
   always gives the same bytes), next to a ``source.json`` marker that tells the `training` DAG the
   day came from landing files and must not be re-read from the SQL source. Partitions are
   versioned with DVC. Then the ledger records the file (hash, name, days, rows): from then on it is
   never read again. A task that dies anywhere in between leaves the file claimed but unrecorded,
   and the next ingest redoes the merge, which gives the same bytes.
3. A file that cannot be parsed (not CSV/Parquet, missing columns, event times that are not
   timestamps, no rows) moves to ``landing.quarantine/<hash[:16]>/<name>`` with
   ``<name>.reason.txt`` saying what is wrong; the ledger records it too.

Content checks (ranges, categories, nulls in features) are not done here: they are the `training`
run's data-quality gate, which validates every landing partition like any other.

Dot-files in the landing folder are ignored (write ``.name.csv`` and rename it when complete), and
a file modified less than ``landing.settle_seconds`` ago is waited for.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrainer.config import Params
from retrainer.storage import (
    file_lock,
    landing_marker,
    md5_file,
    partition_file,
    write_json_atomic,
)

if TYPE_CHECKING:
    import pandas as pd

SUPPORTED_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
LEDGER_FILE = "ledger.json"
CLAIM_FILE = "claim.json"
LOCK_FILE = ".landing.lock"
TRIGGER_REASON = "new_data"


class LandingFileError(ValueError):
    """A landing file cannot be turned into rows of the data set; the message says why."""


@dataclass(frozen=True)
class Claimed:
    sha256: str
    name: str
    path: str


# --------------------------------------------------------------------------------------------------
# Paths, ledger, lock
# --------------------------------------------------------------------------------------------------


def landing_glob(params: Params) -> str:
    """The glob a file sensor watches: every top-level, non-hidden entry of the landing folder."""
    return os.path.join(glob.escape(str(params.landing_dir.resolve())), "*")


def ensure_folders(params: Params) -> None:
    for folder in (params.landing_dir, params.staging_dir, params.landing_quarantine_dir):
        folder.mkdir(parents=True, exist_ok=True)


def load_ledger(params: Params) -> dict[str, dict[str, Any]]:
    """Every file processed so far, by SHA-256: name, status (ingested | quarantined), days, rows."""
    path = params.staging_dir / LEDGER_FILE
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8"))["files"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # Never guess here: an unreadable ledger could make files be read twice.
        raise RuntimeError(f"landing ledger {path} is unreadable ({exc}); restore it or move it away") from None


def _record(params: Params, sha256: str, entry: dict[str, Any]) -> None:
    ledger = load_ledger(params)
    ledger[sha256] = entry
    write_json_atomic(params.staging_dir / LEDGER_FILE, {"files": dict(sorted(ledger.items()))})


def _lock(params: Params, timeout: float = 600.0) -> AbstractContextManager[None]:
    """One claimer or ingester at a time per staging folder (a DAG run, a CLI call)."""
    path = params.staging_dir / LOCK_FILE
    return file_lock(path, timeout, lambda: TimeoutError(f"another process holds {path}"))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _move(src: Path, dst: Path) -> None:
    """Move atomically: ``os.replace`` on one file system, else copy beside ``dst``, rename, unlink."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
        shutil.copy2(src, tmp)
        os.replace(tmp, dst)
        src.unlink()


def _quarantine(params: Params, src: Path, sha256: str, reason: str) -> Path:
    """Move ``src`` to ``<quarantine>/<hash16>/<name>`` with ``<name>.reason.txt``; never delete content."""
    folder = params.landing_quarantine_dir / sha256[:16]
    target = folder / src.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{src.name}.reason.txt").write_text(reason.rstrip() + "\n", encoding="utf-8")
    if src.is_dir():
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(src), str(target))
    elif target.exists() and sha256_file(target) == sha256:
        src.unlink()  # the same bytes are already there
    else:
        _move(src, target)
    return target


# --------------------------------------------------------------------------------------------------
# Claim
# --------------------------------------------------------------------------------------------------


def claim_files(
    params: Params,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    max_wait: float | None = None,
) -> dict[str, list]:
    """Move every file of the landing folder into staging (or quarantine); return what happened.

    Files modified less than ``landing.settle_seconds`` ago are waited for (up to ``max_wait``
    seconds, default four settle periods), so a file still being copied is not claimed half-written.
    """
    ensure_folders(params)
    settle = params.landing.settle_seconds
    deadline = clock() + (4 * settle + 1 if max_wait is None else max_wait)
    claimed: list[dict] = []
    quarantined: list[dict] = []
    waiting: list[str] = []
    with _lock(params):
        while True:
            waiting = []
            ledger = load_ledger(params)
            for entry in sorted(params.landing_dir.iterdir()):
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    reason = (
                        f"{entry.name} is a folder: only files at the top level of {params.landing_dir} are "
                        "read; move its files up one level"
                    )
                    target = _quarantine(params, entry, hashlib.sha256(entry.name.encode()).hexdigest(), reason)
                    quarantined.append({"name": entry.name, "to": str(target), "reason": reason})
                    continue
                if clock() - entry.stat().st_mtime < settle:
                    waiting.append(entry.name)
                    continue
                sha = sha256_file(entry)
                outcome = _claim_one(params, entry, sha, ledger)
                (claimed if outcome.get("claimed") else quarantined).append(outcome)
            if not waiting or clock() >= deadline:
                break
            sleep(min(settle, max(deadline - clock(), 0.05)))
    return {"claimed": claimed, "quarantined": quarantined, "still_being_written": waiting}


def _claim_one(params: Params, entry: Path, sha: str, ledger: dict[str, dict]) -> dict:
    name = entry.name
    if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
        reason = (
            f"{name}: unsupported file type {Path(name).suffix or '(none)'!r}; landing files must be "
            f"CSV or Parquet ({', '.join(sorted(SUPPORTED_SUFFIXES))})"
        )
        return {"name": name, "sha256": sha, "to": str(_quarantine(params, entry, sha, reason)), "reason": reason}
    if sha in ledger:
        first = ledger[sha]
        reason = (
            f"{name}: duplicate: the same content (sha256 {sha}) was already processed as {first.get('name')!r} "
            f"({first.get('status')}{', days ' + ', '.join(first.get('days', [])) if first.get('days') else ''}); "
            "it is not read twice"
        )
        return {"name": name, "sha256": sha, "to": str(_quarantine(params, entry, sha, reason)), "reason": reason}
    folder = params.staging_dir / sha[:16]
    target = folder / name
    pending = [p for p in folder.iterdir() if p.name != CLAIM_FILE] if folder.is_dir() else []
    if any(p.name != name for p in pending):
        reason = f"{name}: duplicate of {pending[0].name}, claimed earlier and not yet ingested (same sha256 {sha})"
        return {"name": name, "sha256": sha, "to": str(_quarantine(params, entry, sha, reason)), "reason": reason}
    # The claim note goes first: a claim folder without its data file is an interrupted claim
    # (the file is still in the landing folder) and is ignored by ingest.
    write_json_atomic(folder / CLAIM_FILE, {"sha256": sha, "name": name, "size": entry.stat().st_size})
    _move(entry, target)
    return {"claimed": True, "name": name, "sha256": sha, "path": str(target)}


def pending_claims(params: Params) -> list[Claimed]:
    """Claimed files the ledger does not list yet (new, or left by a task that died), oldest name first."""
    if not params.staging_dir.is_dir():
        return []
    ledger = load_ledger(params)
    found = []
    for folder in sorted(p for p in params.staging_dir.iterdir() if p.is_dir()):
        note = folder / CLAIM_FILE
        if not note.exists():
            continue
        claim = json.loads(note.read_text(encoding="utf-8"))
        data = folder / claim["name"]
        if claim["sha256"] in ledger or not data.exists():
            continue
        found.append(Claimed(claim["sha256"], claim["name"], str(data)))
    return sorted(found, key=lambda c: (c.name, c.sha256))


# --------------------------------------------------------------------------------------------------
# Parse
# --------------------------------------------------------------------------------------------------


def _required_columns(params: Params) -> list[str]:
    ds = params.dataset
    return [ds.entity_id, ds.event_time, *ds.numeric_features, *ds.categorical_features, ds.label]


def read_landing_file(path: Path, params: Params) -> pd.DataFrame:
    """Rows of one landing file with the data set's columns first and a parsed event time.

    Raises :class:`LandingFileError` naming the file and the problem: unreadable, no rows,
    missing columns, or event times that are missing or not timestamps.
    """
    import pandas as pd

    ds = params.dataset
    kind = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    try:
        if kind == "csv":
            # round_trip: the floats read back are exactly the ones written, so a CSV of a day gives
            # the same partition bytes as the same rows read from the SQL source.
            frame = pd.read_csv(path, float_precision="round_trip", dtype={ds.entity_id: str})
        elif kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            raise LandingFileError(f"{path.name}: unsupported file type {path.suffix!r}")
    except LandingFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader error means the same thing to the user
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LandingFileError(f"{path.name}: not a readable {kind} file: {detail}") from None
    if frame.empty:
        raise LandingFileError(f"{path.name}: the file has no rows")
    missing = [c for c in _required_columns(params) if c not in frame.columns]
    if missing:
        raise LandingFileError(
            f"{path.name}: missing columns {missing} (a landing file needs the source table's columns; "
            f"found {list(frame.columns)})"
        )
    raw_times = frame[ds.event_time]
    times = pd.to_datetime(raw_times, errors="coerce", utc=True, format="mixed")
    bad = times.isna()
    if bad.any():
        rows = [int(i) + 2 if kind == "csv" else int(i) for i in bad[bad].index[:5]]
        examples = [repr(v) for v in raw_times[bad].head(5).tolist()]
        where = "CSV lines" if kind == "csv" else "rows"
        raise LandingFileError(
            f"{path.name}: {int(bad.sum())} of {len(frame)} rows have an {ds.event_time} that is missing or "
            f"not a timestamp ({where} {rows}: {', '.join(examples)}); nothing of this file was ingested"
        )
    frame = frame.copy()
    frame[ds.event_time] = times.dt.tz_localize(None).astype("datetime64[ns]")
    for column in frame.columns:
        # Plain object columns, like a SQL read gives: one partition schema whatever the file type.
        if isinstance(frame[column].dtype, pd.StringDtype | pd.CategoricalDtype):
            values = frame[column].astype(object)
            frame[column] = values.where(values.notna(), None)
    ordered = _required_columns(params)
    return frame[ordered + [c for c in frame.columns if c not in ordered]]


# --------------------------------------------------------------------------------------------------
# Ingest
# --------------------------------------------------------------------------------------------------


def _sorted_rows(frame: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Order-independent row order: by every column when they compare, else by time and entity."""
    from retrainer.ingest import normalise

    frame = normalise(frame, params)
    ds = params.dataset
    # Time and entity first, like a SQL read is sorted; the other columns only break ties.
    keys = [ds.event_time, ds.entity_id] + [c for c in frame.columns if c not in (ds.event_time, ds.entity_id)]
    try:
        return frame.sort_values(keys, kind="mergesort", na_position="last").reset_index(drop=True)
    except TypeError:  # mixed types in a column (a bad batch): the gate will report it
        return frame


def merge_into_partition(params: Params, day: date, rows: pd.DataFrame, source_file: dict) -> dict:
    """Union ``rows`` with the partition of ``day`` (exact duplicates dropped); mark it as landing data."""
    import pandas as pd

    from retrainer.ingest import write_partition

    target = partition_file(params.data_dir, day)
    marker_path = landing_marker(params.data_dir, day)
    marker = {"source": "landing", "files": []}
    if marker_path.exists():
        try:
            marker = json.loads(marker_path.read_text(encoding="utf-8"))
        except ValueError:
            pass
    files = [f for f in marker.get("files", []) if f.get("sha256") != source_file["sha256"]]
    marker = {"source": "landing", "files": sorted([*files, source_file], key=lambda f: f["sha256"])}
    # The marker goes first: from now on `training` treats the day as landing data and does not
    # overwrite it from the SQL source, even if this task dies before the rows are written.
    write_json_atomic(marker_path, marker)

    frames = [rows]
    if target.exists():
        frames.insert(0, pd.read_parquet(target))
    merged = pd.concat(frames, ignore_index=True)
    try:
        merged = merged.drop_duplicates(ignore_index=True)
    except TypeError:  # unhashable cells: keep every row
        pass
    status = write_partition(_sorted_rows(merged, params), target)
    return {"day": day.isoformat(), "status": status, "rows": len(merged), "path": str(target)}


def ingest_staged(params: Params, *, track: bool = True) -> dict[str, Any]:
    """Turn every pending claimed file into partitions (or quarantine it); return a JSON-safe summary.

    The summary lists the files, the days they covered with each partition's md5 (after DVC
    tracking), what was quarantined and why, and one `training` trigger per covered day.
    """
    summary: dict[str, Any] = {"files": [], "quarantined": [], "partitions": {}}
    with _lock(params):
        claims = pending_claims(params)
        for claim in claims:
            path = Path(claim.path)
            try:
                frame = read_landing_file(path, params)
            except LandingFileError as exc:
                reason = str(exc)
                target = _quarantine(params, path, claim.sha256, reason)
                shutil.rmtree(path.parent, ignore_errors=True)
                _record(params, claim.sha256, {"name": claim.name, "status": "quarantined", "reason": reason,
                                               "quarantined_to": str(target)})
                summary["quarantined"].append({"name": claim.name, "sha256": claim.sha256, "to": str(target),
                                               "reason": reason})
                continue
            event_days = frame[params.dataset.event_time].dt.date
            days = sorted(set(event_days))
            for day in days:
                rows = frame[event_days == day]
                source = {"sha256": claim.sha256, "name": claim.name, "rows": len(rows)}
                written = merge_into_partition(params, day, rows.reset_index(drop=True), source)
                if track:
                    from retrainer import versioning

                    versioning.ensure_repo(params.root, params.dvc.remote_name, params.dvc_remote_url)
                    versioning.track(params.root, Path(written["path"]), remote_name=params.dvc.remote_name)
                entry = summary["partitions"].setdefault(day.isoformat(), {"files": []})
                entry.update(written)
                entry["files"].append(claim.name)
            _record(params, claim.sha256, {"name": claim.name, "status": "ingested", "rows": len(frame),
                                           "days": [d.isoformat() for d in days], "staged": claim.path})
            summary["files"].append({"name": claim.name, "sha256": claim.sha256, "rows": len(frame),
                                     "days": [d.isoformat() for d in days]})
    partitions = []
    for day, entry in sorted(summary["partitions"].items()):
        entry["md5"] = md5_file(Path(entry["path"]))
        partitions.append({"day": day, **{k: v for k, v in entry.items() if k != "day"}})
    summary["partitions"] = partitions
    summary["days"] = [p["day"] for p in partitions]
    summary["triggers"] = training_triggers(partitions) if params.landing.trigger_training else []
    return summary


def training_triggers(partitions: list[dict]) -> list[dict]:
    """One `training` run per day: the run id names the day and the partition's content, so a retried
    trigger finds its run already there, and new data for the same day makes a new run."""
    triggers = []
    for part in partitions:
        note = "new data from landing file(s): " + ", ".join(sorted(set(part["files"])))
        triggers.append(
            {
                "trigger_run_id": f"{TRIGGER_REASON}__{part['day']}__{part['md5'][:12]}",
                "conf": {"as_of": part["day"], "reason": TRIGGER_REASON, "note": note[:500]},
            }
        )
    return triggers


def describe(summary: dict[str, Any]) -> str:
    """A few lines for the task log."""
    lines = []
    for f in summary.get("files", []):
        lines.append(f"ingested {f['name']} ({f['rows']} rows, days {', '.join(f['days'])})")
    for p in summary.get("partitions", []):
        lines.append(f"  partition {p['path']}: {p['rows']} rows, {p['status']}, md5 {p['md5']}")
    for q in summary.get("quarantined", []):
        lines.append(f"QUARANTINED {q['name']} -> {q['to']}: {q['reason']}")
    for t in summary.get("triggers", []):
        lines.append(f"will trigger training {t['trigger_run_id']} with conf {json.dumps(t['conf'])}")
    return "\n".join(lines) or "no pending files"
