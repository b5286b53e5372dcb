"""``KEY=value`` files: Compose's ``.env``, and the launcher's own ``retrainer.env`` and ``secrets.env``.

One reader for all of them, python-dotenv's parser (``export`` prefixes, # comments, single or double
quotes; no ``${VAR}`` expansion, as before). It is stricter than ``dotenv_values``, which skips a line
it cannot parse with a logged warning: here such a line is an error naming the file and line, as
Compose reports it. The writer writes files a shell can source (``set -a; . FILE; set +a``) and the
reader reads back exactly: shell single quotes where python-dotenv takes them literally, double quotes
(``\\`` and ``"`` escaped) for a value with a quote or a backslash. Files are written with mode 600.

Standard library only at import time (python-dotenv is imported by :func:`read_env_file`).
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

HEADER = (
    "# Written by `python -m retrainer_launcher`; secrets are generated once and kept.",
    "# Use the Airflow CLI against the local stack with:",
    "#   set -a; . .airflow/retrainer.env; set +a; .venv/bin/airflow dags list",
)


class EnvFileError(ValueError):
    """A ``KEY=value`` file has a line that is not one, or a value cannot be written to one."""


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode 600 (the file never exists with wider mode)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_env_file(path: Path) -> dict[str, str]:
    """The ``KEY=value`` pairs of ``path`` ({} if it does not exist); EnvFileError on a line that is
    not one (``path:line: expected KEY=value``)."""
    from dotenv.parser import parse_stream

    path = Path(path)
    if not path.exists():
        return {}
    values: dict[str, str] = {}
    with open(path, encoding="utf-8") as stream:
        for binding in parse_stream(stream):
            if binding.key is None and not binding.error:
                continue  # a blank line or a comment
            if binding.error or binding.value is None or not _NAME.fullmatch(binding.key or ""):
                raise EnvFileError(f"{path}:{binding.original.line}: expected KEY=value")
            values[binding.key] = binding.value
    return values


def quote(value: str) -> str:
    """``value`` as a shell word that python-dotenv reads back unchanged."""
    if "'" not in value and "\\" not in value:
        return shlex.quote(value)
    if "$" in value or "`" in value:
        raise EnvFileError(f"cannot write {value!r} to an env file: it has both a quote and a $ or `")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """Write ``env`` as a sourceable shell file (``set -a; . FILE; set +a``), mode 600."""
    lines = [*HEADER, *(f"{k}={quote(v)}" for k, v in sorted(env.items()))]
    write_private(path, "\n".join(lines) + "\n")
