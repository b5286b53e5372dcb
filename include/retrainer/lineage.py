"""Run keys and lineage facts: what code, config and data a model came from.

A run is keyed by (dag id, as-of date, data hash, code version, config hash): a retry or rerun with the
same key reuses the MLflow run and model version it made instead of making a second copy.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from retrainer.config import Params

PACKAGE_DIR = Path(__file__).resolve().parent
# The modules whose code decides which bytes a model learns from and how it is fitted. Launchers,
# CLIs and UI code are left out on purpose: editing them must not make reruns train a new model.
# A name may be a module or a subpackage (all of its .py files count).
MODEL_CODE = ("config.py", "run_context.py", "ingest.py", "prepare.py", "train.py")
TRACKED_PACKAGES = (
    "apache-airflow",
    "scikit-learn",
    "pandas",
    "numpy",
    "mlflow",
    "great-expectations",
    "dvc",
    "evidently",
)


@lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the code that makes a model (MODEL_CODE): changes exactly when that code changes."""
    digest = hashlib.sha256()
    for path in model_code_files():
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def model_code_files() -> list[Path]:
    """The files behind MODEL_CODE, in a fixed order; a module that moved into a subpackage is found there."""
    files: list[Path] = []
    for name in MODEL_CODE:
        module, package = PACKAGE_DIR / name, PACKAGE_DIR / name.removesuffix(".py")
        if module.is_file():
            files.append(module)
        elif package.is_dir():
            files += sorted(package.rglob("*.py"))
        else:
            raise FileNotFoundError(f"retrainer.lineage.MODEL_CODE names {name}, which is neither a module nor a package")
    return files


def config_hash(params: Params) -> str:
    """Hash of the settings that shape a model (not paths or URLs, which differ between machines)."""
    relevant = params.model_dump(include={"dataset", "prepare", "model", "evaluation", "project"})
    relevant["project"] = {"seed": relevant["project"]["seed"]}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]


def factory_record(params: Params) -> dict | None:
    """The team's ``model.factory``: its name, the sha256 of its code and where that code lives (None
    for a built-in estimator)."""
    if not params.model.factory:
        return None
    from retrainer.train.factory import code_path, source_sha256

    path = code_path(params)
    shown = path.relative_to(params.root.resolve()) if path.is_relative_to(params.root.resolve()) else path
    return {"name": params.model.factory, "source_sha256": source_sha256(params), "code_path": str(shown)}


def run_key(dag_id: str, as_of: str, data_hash: str, params: Params) -> str:
    parts = [dag_id, as_of, data_hash, code_version(), config_hash(params)]
    record = factory_record(params)
    if record:
        parts.append(record["source_sha256"][:12])  # the factory's code shapes the model too
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def git_info(root: Path) -> dict[str, str]:
    """Commit of the project checkout and whether its tree was dirty; empty values outside git."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20)  # noqa: S603, S607
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no") if commit else ""
    return {"git_commit": commit, "git_dirty": str(bool(dirty)).lower() if commit else ""}


def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = ""
    return versions


def manifest_sha256(manifest_path: str | Path) -> str:
    return hashlib.sha256(Path(manifest_path).read_bytes()).hexdigest()


def validation_evidence(params: Params, as_of: str) -> dict:
    """The GX results the run's data passed: the per-day summary the validate step wrote, if any."""
    summary = params.reports_dir / "validation" / f"summary-as_of={as_of}.json"
    if not summary.exists():
        return {"summary": None, "partitions": []}
    body = json.loads(summary.read_text(encoding="utf-8"))
    return {
        "summary": str(summary),
        "partitions": [
            {k: p.get(k) for k in ("day", "success", "report_json", "data_docs", "warnings")}
            for p in body.get("partitions", [])
        ],
    }


def lineage_record(
    params: Params, manifest_path: str | Path, run_key: str, context: dict[str, str], prepared_gate: dict | None = None
) -> dict:
    """Everything needed to answer "what did this model learn from, why, and can we get it back"."""
    manifest = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
    return {
        "run_key": run_key,
        "as_of": manifest["as_of"],
        "data_hash": manifest["data_hash"],
        "manifest_sha256": manifest_sha256(manifest_path),
        "partitions": manifest["partitions"],
        "window_days": manifest["window_days"],
        # The window's days without data and why (quarantined: failed gate or unreadable rows; no data).
        "gaps": manifest.get("gaps", []),
        "holdout_days": manifest["holdout_days"],
        "dvc_remote": {"name": params.dvc.remote_name, "url": params.dvc_remote_url},
        "code_version": code_version(),
        "task": params.dataset.task,
        "factory": factory_record(params),
        "config_hash": config_hash(params),
        "params_digest": params.digest,
        "params": params.model_dump(include={"dataset", "prepare", "model", "evaluation", "validation"}),
        "seed": params.project.seed,
        **git_info(params.root),
        "validation": validation_evidence(params, manifest["as_of"]),
        "prepared_gate": prepared_gate,
        "trigger": {"reason": context.get("reason", ""), "report": context.get("trigger_report", "")},
        "airflow": {k: context.get(k, "") for k in ("dag_id", "run_id", "try_number", "run_type", "ui_url")},
        "packages": package_versions(),
    }
