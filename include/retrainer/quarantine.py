"""The quarantine: bad batches kept out of the training area with their reports, and the gaps they leave.

A day is quarantined when its batch failed the raw-data gate (``retrainer.pipeline.step_validate``) or
when its source rows could not be read as their declared types (``retrainer.unreadable``). Either way
the batch and its report sit under ``<data>/quarantine/dt=<day>/`` with ``QUARANTINED.json`` (why), and
the day has no raw partition. Only the run whose as-of day it is fails for it; every later run leaves
the day out of its window and says so (:func:`window_gaps`), until a replay of the day (a run as of
it, after the source was fixed) passes the gate and :func:`release` drops the quarantined batches.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from retrainer.config import Params
from retrainer.storage import PARTITION_FILE, partition_dir, partition_file, write_json_atomic

MARKER = "QUARANTINED.json"
# The partition that a quarantined batch replaced in the training area, kept beside it (nothing is deleted).
REPLACED_FILE = "replaced-part.parquet"


def quarantine(
    params: Params, day: date, reports: list[Path], reason: str, *, batch: Path | None = None, kind: str = "gate"
) -> Path:
    """Move a failed partition (or place ``batch``, a staged file) and its reports out of the training area.

    Nothing is deleted: a day quarantined before keeps its earlier bad batch beside the new one
    (``superseded-<md5>``); ``kind`` is ``gate`` (failed validation) or ``unreadable`` (source rows that
    could not be read as their types).
    """
    from retrainer.storage import md5_file

    source = partition_dir(params.data_dir, day)
    target = partition_dir(params.data_dir, day, area="quarantine")
    data_file = partition_file(params.data_dir, day)
    if data_file.exists():
        from retrainer import versioning

        # The bytes stay in the DVC cache and remote; only the stub that marks them as training data goes.
        versioning.untrack(params.root, data_file)
    # The new batch is put together beside the old one under a hidden name, then swapped in with two
    # renames: readers (the control room's replay) never find the day without a quarantined batch
    # while the slow parts (DVC, copying reports) run, and never see half a batch.
    staged = target.with_name(f".{target.name}.incoming-{os.getpid()}")
    if staged.exists():
        shutil.rmtree(staged)  # left by a crash of this process id: its source partition is still in place
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.exists():
        shutil.move(str(source), str(staged))
    else:
        staged.mkdir(parents=True)
    if batch is not None:
        if (staged / PARTITION_FILE).exists():
            os.replace(staged / PARTITION_FILE, staged / REPLACED_FILE)
        shutil.move(str(batch), str(staged / PARTITION_FILE))
    for report in reports:
        if report.exists():
            destination = staged / "report" / report.name
            destination.parent.mkdir(parents=True, exist_ok=True)
            if report.is_dir():
                shutil.copytree(report, destination, dirs_exist_ok=True)
            else:
                shutil.copy2(report, destination)
    write_json_atomic(staged / MARKER, {"day": day.isoformat(), "reason": reason, "kind": kind})
    if target.exists():
        old = target / data_file.name
        tag = md5_file(old)[:12] if old.exists() else "unknown"
        aside, n = target.with_name(f"{target.name}.superseded-{tag}"), 1
        while aside.exists():  # the same bad bytes quarantined again: keep both, never merge them
            aside, n = target.with_name(f"{target.name}.superseded-{tag}-{n}"), n + 1
        os.replace(target, aside)
    os.replace(staged, target)
    return target


def release(params: Params, day: date) -> list[str]:
    """Drop the quarantined batches of ``day`` once a good batch has replaced them; returns what went."""
    quarantined = partition_dir(params.data_dir, day, area="quarantine")
    released = sorted(str(p) for p in quarantined.parent.glob(f"{quarantined.name}*") if p.is_dir())
    for folder in released:
        shutil.rmtree(folder)
    return released


def quarantine_record(params: Params, day: date) -> dict | None:
    """``QUARANTINED.json`` of ``day`` when the day is quarantined (and has no raw partition), else None."""
    if partition_file(params.data_dir, day).exists():
        return None
    marker = partition_dir(params.data_dir, day, area="quarantine") / MARKER
    if not marker.is_file():
        return None
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = {}
    return {"day": day.isoformat(), "reason": str(record.get("reason") or "quarantined"),
            "kind": str(record.get("kind") or "gate")}


def is_quarantined(params: Params, day: date) -> bool:
    return quarantine_record(params, day) is not None


def window_gaps(params: Params, days: Iterable[date]) -> list[dict]:
    """The days of a window that have no raw partition, each with why: quarantined (failed gate or
    unreadable rows, with the first line of the reason) or no data (nothing ingested for it)."""
    gaps = []
    for day in days:
        if partition_file(params.data_dir, day).exists():
            continue
        record = quarantine_record(params, day)
        if record is None:
            gaps.append({"day": day.isoformat(), "kind": "no_data", "reason": "no partition (no source rows ingested)"})
        else:
            gaps.append({"day": day.isoformat(), "kind": f"quarantined_{record['kind']}",
                         "reason": f"quarantined ({record['kind']}): {short_reason(record['reason'])}"})
    return gaps


def short_reason(reason: str, most: int = 3) -> str:
    """The failures a quarantine reason lists (its ``  - `` lines, at most ``most``), else its first line."""
    lines = reason.splitlines()
    failures = [line.strip()[2:] for line in lines if line.startswith("  - ")][:most]
    return "; ".join(failures) if failures else (lines[0] if lines else "quarantined")


def describe_gaps(gaps: list[dict]) -> str:
    """One line per gap, for task logs and error messages."""
    return "\n".join(f"  - {g['day']}: {g['reason']}" for g in gaps)
