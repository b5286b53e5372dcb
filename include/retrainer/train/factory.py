"""The team's own estimator: ``model.factory: "package.module:function"``.

The function is called with keyword arguments ``numeric_features``, ``categorical_features``,
``hyperparameters`` (``model.hyperparameters``), ``seed`` (``project.seed``) and ``task``
(``dataset.task``) and returns an unfitted scikit-learn-compatible estimator (usually a Pipeline with
its own preprocessing) that takes a DataFrame of the feature columns. The params file's folder and
``include/`` are put on the import path first, so the code may live beside the params file or in the
project. Every way it can go wrong raises ``FactoryError`` naming the factory and the cause.

What a logged model needs of that code travels with it: :func:`code_path` is the module's file, or
the folder of its top-level package, which MLflow copies into the model (``code_paths``) and puts on
the import path when the model is loaded elsewhere. :func:`source_sha256` hashes those bytes for the
lineage record and the run key.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from retrainer.config import Params
from retrainer.errors import FactoryError

INCLUDE_DIR = Path(__file__).resolve().parents[2]
_LOADED: dict[str, str] = {}  # module name -> sha256 of its code when it was imported


def import_paths(params: Params) -> list[Path]:
    """The folders a factory is imported from: the params file's folder, then include/ (the params file's
    own folder even when ``root`` was moved, as a reproduction in a scratch folder does)."""
    folder = params.source_file.parent if params.source_file is not None else params.root
    return [folder.resolve(), INCLUDE_DIR]


def _on_path(params: Params) -> None:
    for folder in reversed(import_paths(params)):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    importlib.invalidate_caches()


def _split(spec: str) -> tuple[str, str]:
    module, _, function = spec.partition(":")
    return module, function


def code_path(params: Params) -> Path:
    """The file of the factory's module, or the folder of its top-level package (what the model carries)."""
    module, _ = _split(params.model.factory or "")
    _on_path(params)
    top = module.split(".")[0]
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError) as exc:
        raise FactoryError(f"model.factory {params.model.factory!r}: cannot find module {top!r}: {exc}") from None
    if found is None or not found.origin or found.origin in ("built-in", "frozen"):
        raise FactoryError(
            f"model.factory {params.model.factory!r}: no module {top!r} in {', '.join(map(str, import_paths(params)))} "
            "or the installed packages"
        )
    origin = Path(found.origin)
    return origin.parent if found.submodule_search_locations else origin


def source_sha256(params: Params) -> str:
    """sha256 of the factory's code (every .py file under :func:`code_path`, with their relative names)."""
    path = code_path(params)
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        if "__pycache__" in file.parts:
            continue
        digest.update((file.relative_to(path).as_posix() if path.is_dir() else file.name).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def load_function(params: Params) -> Any:
    """The factory function itself, imported (again, when its code changed since this process imported it)."""
    spec = params.model.factory or ""
    module_name, function_name = _split(spec)
    _on_path(params)
    current = source_sha256(params)
    try:
        if module_name in sys.modules and _LOADED.get(module_name) != current:
            module = importlib.reload(sys.modules[module_name])
        else:
            module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the factory's, reported with its cause
        raise FactoryError(f"model.factory {spec!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    _LOADED[module_name] = current
    function = getattr(module, function_name, None)
    if not callable(function):
        raise FactoryError(f"model.factory {spec!r}: module {module_name!r} has no function {function_name!r}")
    return function


def build(params: Params) -> Any:
    """Call the factory and check what it returned: an unfitted estimator with fit and predict (and
    predict_proba for classification)."""
    spec, ds = params.model.factory, params.dataset
    function = load_function(params)
    try:
        estimator = function(
            numeric_features=list(ds.numeric_features),
            categorical_features=list(ds.categorical_features),
            hyperparameters=dict(params.model.hyperparameters),
            seed=params.project.seed,
            task=ds.task,
        )
    except Exception as exc:  # noqa: BLE001 - the factory's own failure, reported with its cause
        raise FactoryError(f"model.factory {spec!r} raised {type(exc).__name__}: {exc}") from exc
    needed = ["fit", "predict"] + ([] if ds.task == "regression" else ["predict_proba"])
    missing = [name for name in needed if not callable(getattr(estimator, name, None))]
    if missing:
        raise FactoryError(
            f"model.factory {spec!r} returned {type(estimator).__name__}, which has no {', '.join(missing)}: "
            f"a {ds.task} model needs {', '.join(needed)}"
        )
    return estimator


def check(params: Params) -> dict[str, str]:
    """Build the factory's estimator once (the first task of a run does, so a broken factory stops it early)."""
    estimator = build(params)
    return {"factory": params.model.factory or "", "estimator": type(estimator).__name__,
            "source_sha256": source_sha256(params), "code_path": str(code_path(params))}
