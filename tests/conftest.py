"""Shared fixtures: a throw-away Retrainer project (params.yaml, source, stores) under tmp_path.

The repo's deployment is a models/ folder (the demo churn model over the shared file); a test project is
one params.yaml made of the two (a single-file deployment: bare DAG ids), or a models/ folder of its own
(:func:`write_models_project`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

# Tests build their documents as a deployment merges a model file over models/_shared.yaml.
from retrainer.deployment import merge

REPO_ROOT = Path(__file__).resolve().parents[1]
AS_OF = date(2026, 3, 31)

# Quiet and offline: no analytics or telemetry calls from GX, MLflow or DVC during tests.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
# Deployment overrides of params.yaml (retrainer.config): tests use their own stores, never a user's.
for _name in ("RETRAINER_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
              "RETRAINER_SOURCE_URL", "RETRAINER_DVC_REMOTE_URL"):
    os.environ.pop(_name, None)


def repo_model_document(name: str = "churn") -> dict:
    """The repo's models/<name>.yaml merged over models/_shared.yaml (no per-model defaults: the paths of a
    single params file), with the suites pointed back at the repo."""
    shared = yaml.safe_load((REPO_ROOT / "models" / "_shared.yaml").read_text())
    raw = merge(shared, yaml.safe_load((REPO_ROOT / "models" / f"{name}.yaml").read_text()))
    # The names a model file takes from its file name (retrainer.deployment.model_defaults; its folders
    # are the single file's own: data/, reports/).
    raw["dataset"] = {"name": name, **raw["dataset"]}
    raw["model"] = {"registered_name": f"retrainer-{name}", **raw["model"]}
    raw["run"].pop("model", None)
    for suite in ("raw_suite", "prepared_suite"):
        raw["validation"][suite] = str(REPO_ROOT / raw["validation"][suite])
    return raw


def write_project(root: Path, overrides: dict[str, Any] | None = None, git: bool = False) -> Path:
    """A project folder with one params.yaml: the repo's churn model (suites pointed back at the repo)
    plus overrides.

    With ``git``, the folder is a git checkout with the repo's .gitignore, as a user's clone is: DVC
    behaves differently inside git (it refuses to track paths git ignores).
    """
    root.mkdir(parents=True, exist_ok=True)
    if git:
        import shutil
        import subprocess

        shutil.copy2(REPO_ROOT / ".gitignore", root / ".gitignore")
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)  # noqa: S607
    raw = merge(repo_model_document(), {"prepare": {"window_days": 14, "holdout_days": 3, "min_train_rows": 300}})
    raw = merge(raw, overrides or {})
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def write_models_project(root: Path, models: dict[str, dict[str, Any]], git: bool = False) -> Path:
    """A project folder with a models/ folder: the repo's _shared.yaml and one file per entry of ``models``
    (name -> overrides of the repo's churn model, e.g. another source table). Returns the models folder."""
    write_project(root, git=git).unlink()  # the folder (and git checkout) without its params.yaml
    folder = root / "models"
    folder.mkdir()
    shared = yaml.safe_load((REPO_ROOT / "models" / "_shared.yaml").read_text())
    shared["run"].pop("model", None)
    (folder / "_shared.yaml").write_text(yaml.safe_dump(shared, sort_keys=False))
    churn = yaml.safe_load((REPO_ROOT / "models" / "churn.yaml").read_text())
    for suite in ("raw_suite", "prepared_suite"):
        churn["validation"][suite] = str(REPO_ROOT / churn["validation"][suite])
    churn = merge(churn, {"prepare": {"window_days": 14, "holdout_days": 3, "min_train_rows": 300}})
    for name, overrides in models.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(merge(churn, overrides), sort_keys=False))
    return folder


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Path]:
    """Factory: make_project(overrides) -> path of params.yaml in a fresh folder."""
    counter = iter(range(1000))

    def factory(overrides: dict[str, Any] | None = None) -> Path:
        return write_project(tmp_path / f"project{next(counter)}", overrides)

    return factory


def seed(params_path: Any, end: date = AS_OF, days: int = 16, rows_per_day: int = 300, **kwargs: Any) -> None:
    """Seed the source table of a params file (or of loaded params, e.g. one model of a models/ folder)."""
    from datetime import timedelta

    from retrainer.config import load_params
    from retrainer.datagen import seed_source

    params = load_params(params_path) if isinstance(params_path, str | Path) else params_path
    seed_source(
        params.source_url,
        params.source.table,
        end - timedelta(days=days - 1),
        end,
        rows_per_day,
        params.project.seed,
        **kwargs,
    )


# --- Running the tiers on several cores (make test: pytest-xdist, -n 2 --dist loadfile) --------------
#
# A test module is one unit of work: its module-scoped fixtures (a running Airflow stack, a trained
# model) are built once, on one worker. Modules sharing a session-scoped fixture are one unit between
# them (SHARED_SESSION_MODULES). Workers take units in collection order, and in a worker's collection the
# modules that run DAGs through Airflow come first: a long one started last would leave the other core
# idle at the end.

# The integration modules on the session's production topology (tests/integration/conftest.py).
SHARED_SESSION_MODULES = {
    "tests/integration/test_distributed.py": "topology",
    "tests/integration/test_security.py": "topology",
}
SLOW_MARKS = ("integration", "e2e")
MEASURED = "measured"  # record_property name: a figure a test measured, listed in the run's summary


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """--dist loadfile with SHARED_SESSION_MODULES as one unit (xdist's own loadgroup marks cannot do it
    here: pytest 9.2 no longer lets xdist 3.8 rename a test's node id, which that mode relies on)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return SHARED_SESSION_MODULES.get(module, module)

    config.option.loadscopereorder = False  # the workers' collection order, not "most tests first"
    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # a plain `pytest` keeps the files' order
        items.sort(key=lambda item: not any(item.get_closest_marker(mark) for mark in SLOW_MARKS))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The figures tests measured on real data (record_property(MEASURED, ...)), shown on every run:
    captured output would be lost on a worker."""
    lines = [value for report in terminalreporter.getreports("passed") + terminalreporter.getreports("failed")
             if report.when == "call" for name, value in report.user_properties if name == MEASURED]
    if lines:
        terminalreporter.section("measured on real data")
        for line in lines:
            terminalreporter.write_line(line)
