"""The models a stack serves (retrainer.deployment): every valid model file, each with its DAG ids."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from retrainer.names import TRAINING_DAG, dag_id
from retrainer_launcher.common import Out, StackError, say

if TYPE_CHECKING:
    from retrainer.config import Params


def stack_models(params_path: Path, out: Out = say) -> dict[str | None, Params]:
    """name -> params of every model ``params_path`` (a models folder or one params file) serves; a model
    file that fails validation is named and left out (its DAGs are not built either)."""
    from retrainer.deployment import find_deployment

    found = find_deployment(Path(params_path).parent, explicit=params_path)
    models, errors = found.load_all()
    for message in errors.values():
        out(f"NOTE: left out (no DAGs): {message}")
    if not models:
        raise StackError(f"{params_path}: no valid model to run" + (f":\n{next(iter(errors.values()))}" if errors else ""))
    return models


def label(name: str | None, params: Params) -> str:
    """How a model is called in the launcher's output: its file's name (its dataset's for one params file)."""
    return name or params.dataset.name


def training_dag(name: str | None) -> str:
    return dag_id(TRAINING_DAG, name)
