"""What every part of the launcher shares: its error, its output callback, default ports and host."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from retrainer.names import MODELS_DIR, model_files

API_PORT = 8080
MLFLOW_PORT = 5000
# Every server of a stack on this machine listens on the loopback interface only.
BIND_HOST = "127.0.0.1"

# Where progress goes: print by default, a list's append (or a no-op) in tests.
Out = Callable[[str], None]


class StackError(RuntimeError):
    """The stack could not be started, reached or driven; the message says what to look at."""


def say(msg: str) -> None:
    print(msg, flush=True)


def params_location(root: Path) -> Path:
    """What RETRAINER_PARAMS is for the stack's processes: $RETRAINER_PARAMS if set, else the project's
    ``models/`` folder when it holds a model file (retrainer.names.model_files), else its params.yaml.
    (The standard library only: `make stop` / `make status` work without the venv.)"""
    explicit = os.environ.get("RETRAINER_PARAMS")
    if explicit:
        return Path(explicit).resolve()
    models = Path(root).resolve() / MODELS_DIR
    return models if model_files(models) else Path(root).resolve() / "params.yaml"
