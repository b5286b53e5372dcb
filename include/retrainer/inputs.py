"""Checks on the inputs a person or another DAG passes to a run (trigger form, REST conf).

Nothing from a trigger ever reaches SQL as text: the source query binds the as-of date as a
parameter (retrainer.ingest). These checks refuse, with a message naming the field, anything that
is not the plain value a field expects, so SQL text or a path that climbs out of the project fails
at the first task instead of being carried into tags, reports or file names.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path, PurePosixPath

from retrainer.config import ConfigError

DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")
REASON_PATTERN = re.compile(r"[A-Za-z0-9_-]{0,64}")
MAX_NOTE = 500


class UnsafeInput(ConfigError):
    """A run input is not what its field allows; retrying cannot help, so the run fails at once."""


def check_as_of(value: object) -> str | None:
    """A date ``YYYY-MM-DD`` (or nothing); anything else, SQL text included, is refused."""
    if value is None or value == "":
        return None
    text = str(value)
    if not DATE_PATTERN.fullmatch(text):
        raise UnsafeInput(
            f"as_of: expected a date YYYY-MM-DD, got {text[:80]!r} (the source query takes the date "
            "as a bound parameter; other text is refused)"
        )
    try:
        date.fromisoformat(text)
    except ValueError:
        raise UnsafeInput(f"as_of: {text!r} is not a valid calendar date") from None
    return text


def check_reason(value: object) -> str | None:
    if value is None or value == "":
        return None
    text = str(value)
    if not REASON_PATTERN.fullmatch(text):
        raise UnsafeInput(
            f"reason: only letters, digits, '_' and '-' (at most 64) are allowed, got {text[:80]!r}"
        )
    return text


def check_note(value: object) -> str:
    text = "" if value is None else str(value)
    if len(text) > MAX_NOTE:
        raise UnsafeInput(f"note: at most {MAX_NOTE} characters, got {len(text)}")
    if any(ord(c) < 32 and c not in "\t\n" for c in text):
        raise UnsafeInput("note: control characters are not allowed")
    return text


def check_report_path(value: object, reports_dir: Path, root: Path | None = None) -> str | None:
    """A report path must lie inside ``reports_dir``: no ``..`` segment, no NUL, no way out by symlink.

    A relative path is taken from the project ``root`` when that lands inside the reports folder (the
    drift DAG passes ``reports/drift/<day>/report.html``), else from the reports folder itself.
    """
    if value is None or value == "":
        return None
    text = str(value)
    if "\x00" in text:
        raise UnsafeInput("report: the path contains a NUL byte")
    if ".." in PurePosixPath(text.replace("\\", "/")).parts:
        raise UnsafeInput(f"report: '..' path segments are not allowed, got {text[:200]!r}")
    base = Path(reports_dir).resolve()
    path = Path(text)
    if path.is_absolute():
        resolved = path.resolve()
    elif root is not None and (Path(root) / path).resolve().is_relative_to(base):
        resolved = (Path(root) / path).resolve()
    else:
        resolved = (base / path).resolve()
    if not resolved.is_relative_to(base):
        raise UnsafeInput(f"report: {text[:200]!r} is outside the reports folder {base}")
    return str(resolved)


def check_window_days(value: object, minimum: int = 2) -> int | None:
    """A window length in days; training windows need two days at least, a drift check one."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= 3660:
        raise UnsafeInput(f"window_days: expected a whole number from {minimum} to 3660, got {value!r}")
    return value
