"""Which models a deployment serves: one params file per model in ``models/``, or one ``params.yaml``.

Models folder (``models/<name>.yaml``, the stem is the model's name): every model file is merged over the
optional shared file ``models/_shared.yaml`` key by key (mappings merge recursively; a list or a value
replaces), and both over the model's own defaults, which give every model its own folders, stores and
names: ``data/<name>/``, ``reports/<name>/``, registered model ``retrainer-<name>``, MLflow experiments
``retrainer-training-<name>`` / ``retrainer-monitoring-<name>``. Files starting with ``_`` or ``.`` are not
models. Relative paths resolve against the project folder (the folder holding ``models/``).

Single file (``params.yaml``, or ``$RETRAINER_PARAMS`` naming a file): one model, today's layout and the
bare DAG ids. Which mode applies: ``$RETRAINER_PARAMS`` if set (a folder: models; a file: single), else
``<project>/models/`` if it holds a model file, else ``<project>/params.yaml``.

Isolation is checked, not hoped for: two models whose folders, registered model or experiments
coincide are both refused (see :func:`isolation_conflicts`), naming the other model and the key.
Only the standard library, PyYAML and retrainer.config are used: DAG files call this at parse time.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from retrainer.config import (
    DEFAULT_PARAMS_FILE,
    PARAMS_ENV,
    ConfigError,
    Params,
    load_params,
    params_from_document,
    read_bytes,
    read_document,
)
from retrainer.names import MODEL_NAME_PATTERN, MODELS_DIR, SHARED_MODEL_FILE, model_files

_NAME = re.compile(MODEL_NAME_PATTERN)


def merge(base: dict, override: dict) -> dict:
    """``override`` over ``base`` key by key: mappings merge recursively, anything else replaces. The
    result shares nothing with ``base`` (a list edited in one model's document stays out of the others')."""
    out = copy.deepcopy(base)
    _merge_into(out, override)
    return out


def _merge_into(out: dict, override: dict) -> None:
    # ``out`` is already a copy: merging into it in place copies each level once, not once per depth.
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            _merge_into(out[key], value)
        else:
            out[key] = value


def model_defaults(name: str) -> dict:
    """What a model file need not say: its own folders, stores and names, derived from its name."""
    data = f"data/{name}"
    return {
        "project": {"data_dir": data, "reports_dir": f"reports/{name}"},
        "dataset": {"name": name},
        "model": {"registered_name": f"retrainer-{name}"},
        "mlflow": {"experiment": f"retrainer-training-{name}"},
        "drift": {"reference_dir": f"{data}/reference", "experiment": f"retrainer-monitoring-{name}"},
        "landing": {"folder": f"{data}/landing", "staging": f"{data}/staging",
                    "quarantine": f"{data}/quarantine/landing"},
        "scoring": {"output_dir": f"{data}/predictions", "url": f"sqlite:///{data}/predictions.db"},
    }


def _has(doc: dict, dotted: str) -> bool:
    node: object = doc
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


@dataclass(frozen=True)
class Deployment:
    """The params files of one deployment. ``models_dir`` None: one params file (``single_file``)."""

    root: Path
    models_dir: Path | None = None
    single_file: Path | None = None

    @property
    def multi(self) -> bool:
        return self.models_dir is not None

    @property
    def shared_file(self) -> Path | None:
        if self.models_dir is None:
            return None
        path = self.models_dir / SHARED_MODEL_FILE
        return path if path.is_file() else None

    def model_files(self) -> dict[str, Path]:
        """name -> file, sorted by name (a single-file deployment: {} — its one model has no file name)."""
        return model_files(self.models_dir) if self.models_dir is not None else {}

    def names(self) -> list[str]:
        return list(self.model_files())

    def resolve(self, name: str | None) -> str | None:
        """The model meant by ``name`` (a CLI's --model): None means the only one. In a single-file
        deployment the answer is None (bare names); its dataset name is accepted as well."""
        if not self.multi:
            if name and name != load_params(self.single_file).dataset.name:
                raise ConfigError(f"{self.single_file}: one params file, model {name!r} is not in it "
                                  f"(put one file per model in {MODELS_DIR}/ for several)")
            return None
        names = self.names()
        if name is None:
            if len(names) != 1:
                raise ConfigError(f"{self.models_dir}: {len(names)} models ({', '.join(names) or 'none'}): "
                                  "say which with --model NAME")
            return names[0]
        if name not in names:
            raise ConfigError(f"{self.models_dir}: no model {name!r} (models: {', '.join(names) or 'none'})")
        return name

    def load(self, name: str | None = None) -> Params:
        """The validated params of one model (``name`` None: the only one); ConfigError names file and key."""
        if not self.multi:
            return load_params(self.single_file)
        name = self.resolve(name)
        return self._load_model(name, self.model_files()[name])

    def _load_model(self, name: str, file: Path) -> Params:
        if not _NAME.match(name):
            raise ConfigError(f"{file}: {name!r} is not a model name ({MODEL_NAME_PATTERN}): rename the file")
        shared = self.shared_file
        shared_bytes = read_bytes(shared) if shared else b""
        shared_doc = read_document(shared, shared_bytes) if shared else {}
        model_bytes = read_bytes(file)
        model_doc = read_document(file, model_bytes)
        raw = merge(merge(model_defaults(name), shared_doc), model_doc)
        digest = hashlib.sha256(shared_bytes + b"\0" + model_bytes).hexdigest()

        def where(key: str) -> str:
            if _has(model_doc, key):
                return f"set in {file.name}"
            if shared and _has(shared_doc, key):
                return f"set in {shared.name}"
            return "missing or default"

        return params_from_document(raw, file, root=self.root, digest=digest, where=where)

    def load_all(self) -> tuple[dict[str | None, Params], dict[Path, str]]:
        """Every model that loads and is isolated from the others, and the errors of those that are not
        (file -> message naming the file and the key). A single-file deployment: {None: params}."""
        if not self.multi:
            try:
                return {None: load_params(self.single_file)}, {}
            except ConfigError as exc:
                return {}, {self.single_file: str(exc)}
        loaded: dict[str, Params] = {}
        errors: dict[Path, str] = {}
        for name, file in self.model_files().items():
            try:
                loaded[name] = self._load_model(name, file)
            except ConfigError as exc:
                errors[file] = str(exc)
        for name, problem in {**isolation_conflicts(loaded), **shared_conflicts(loaded)}.items():
            if name in loaded:
                errors[loaded.pop(name).source_file] = problem
        return dict(loaded), errors


def _isolated_facts(params: Params) -> dict[str, str]:
    """What must differ between two models: their folders, registered model and experiments. (A scoring
    table may be shared: its rows are keyed by the registered model.)"""
    return {
        "project.data_dir": str(params.data_dir.resolve()),
        "project.reports_dir": str(params.reports_dir.resolve()),
        "drift.reference_dir": str(params.reference_dir.resolve()),
        "landing.folder": str(params.landing_dir.resolve()),
        "landing.staging": str(params.staging_dir.resolve()),
        "landing.quarantine": str(params.landing_quarantine_dir.resolve()),
        "scoring.output_dir": str(params.path(params.scoring.output_dir).resolve()),
        "model.registered_name": f"registered model {params.model.registered_name}",
        "mlflow.experiment": f"experiment {params.mlflow.experiment}",
        "drift.experiment": f"experiment {params.drift.experiment}",
    }


def isolation_conflicts(models: dict[str, Params]) -> dict[str, str]:
    """name -> why the model cannot run beside the others (a folder, store or name it shares with
    another model: both are refused, each naming the other)."""
    seen: dict[str, tuple[str, str]] = {}
    problems: dict[str, list[str]] = {}
    for name, params in models.items():
        for key, value in _isolated_facts(params).items():
            if value in seen and seen[value][0] != name:
                other, other_key = seen[value]
                problems.setdefault(name, []).append(f"{key} is {other}'s {other_key} ({value})")
                problems.setdefault(other, []).append(f"{other_key} is {name}'s {key} ({value})")
            else:
                seen.setdefault(value, (name, key))
    return {
        name: f"{models[name].source_file}: not isolated from the other models:\n"
        + "\n".join(f"  - {line}" for line in lines)
        + "\n  (every model needs its own; leave these keys out to get the per-model defaults)"
        for name, lines in problems.items()
    }


def shared_conflicts(models: dict[str, Params]) -> dict[str, str]:
    """name -> why the model disagrees with the first model on what every model must share: the one DVC
    repository's remote (``dvc``; the DVC_POOL serializes all models' DVC work on it)."""
    if not models:
        return {}
    first_name, first = next(iter(models.items()))
    return {
        name: f"{params.source_file}: dvc: {params.dvc.remote_name} at {params.dvc_remote_url} differs from "
        f"{first_name}'s {first.dvc.remote_name} at {first.dvc_remote_url}: all models share one DVC "
        "repository and remote (set dvc in the shared file only)"
        for name, params in models.items()
        if (params.dvc.remote_name, params.dvc_remote_url) != (first.dvc.remote_name, first.dvc_remote_url)
    }


def find_deployment(root: str | Path, explicit: str | Path | None = None) -> Deployment:
    """The deployment of the project at ``root``: ``explicit`` or $RETRAINER_PARAMS (a folder: models, a
    file: single), else ``root/models/`` when it holds a model file, else ``root/params.yaml``."""
    root = Path(root).resolve()
    chosen = explicit or os.environ.get(PARAMS_ENV)
    if chosen:
        path = Path(chosen).resolve()
        if path.is_dir():
            return Deployment(root=path.parent, models_dir=path)
        return Deployment(root=path.parent, single_file=path)
    models = Deployment(root=root, models_dir=root / MODELS_DIR)
    if models.model_files():
        return models
    return Deployment(root=root, single_file=root / DEFAULT_PARAMS_FILE)
