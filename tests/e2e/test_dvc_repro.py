"""`dvc repro` runs the same library functions as the DAG, outside Airflow, in a fresh copy of the project:
any model of models/ (run.model of models/_shared.yaml), with no change to dvc.yaml."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from retrainer.deployment import find_deployment
from tests.conftest import AS_OF, REPO_ROOT, seed

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("RETRAINER_PARAMS", None)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_dvc_repro_reproduces_the_pipeline_and_skips_unchanged_stages(tmp_path):
    project = tmp_path / "checkout"
    project.mkdir()
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy2(REPO_ROOT / name, project / name)
    for folder in ("include", "validation_suites", "models"):
        shutil.copytree(REPO_ROOT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # A second model on its own table: a file dropped into models/, dvc.yaml untouched.
    fraud = yaml.safe_load((project / "models" / "churn.yaml").read_text())
    fraud["source"]["table"] = "fraud_events"
    fraud["prepare"]["window_days"] = 10
    (project / "models" / "fraud.yaml").write_text(yaml.safe_dump(fraud))
    assert _run(["git", "init", "-q"], project).returncode == 0
    deployment = find_deployment(project, explicit=project / "models")
    seed(deployment.load("churn"), end=AS_OF, days=30, rows_per_day=300)
    seed(deployment.load("fraud"), end=AS_OF, days=12, rows_per_day=250)

    assert _run([str(BIN / "retrainer"), "init"], project).returncode == 0
    first = _run([str(BIN / "dvc"), "repro"], project)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    repro = project / "data" / "repro" / "churn"
    metrics = json.loads((repro / "train_metrics.json").read_text())
    assert metrics["holdout_roc_auc"] > 0.7
    decision = json.loads((repro / "decision.json").read_text())
    assert decision["as_of"] == AS_OF.isoformat() and decision["passed"] is True
    manifest = json.loads((repro / "prepared" / "manifest.json").read_text())
    assert len(manifest["partitions"]) == 28  # models/churn.yaml's window
    assert (project / "dvc.lock").exists()

    # Nothing changed: ingest re-reads the source (always_changed) and every later stage is up to date.
    second = _run([str(BIN / "dvc"), "repro"], project)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Running stage 'train'" not in second.stdout
    shown = _run([str(BIN / "dvc"), "metrics", "show", "--json"], project)
    assert shown.returncode == 0 and "holdout_roc_auc" in shown.stdout

    # The other model: the same stages, its own outputs; the first model's stay as they were.
    shared = project / "models" / "_shared.yaml"
    shared.write_text(shared.read_text().replace("  model: churn", "  model: fraud"))
    third = _run([str(BIN / "dvc"), "repro"], project)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    other = project / "data" / "repro" / "fraud"
    assert len(json.loads((other / "prepared" / "manifest.json").read_text())["partitions"]) == 10
    assert json.loads((other / "decision.json").read_text())["as_of"] == AS_OF.isoformat()
    assert (project / "data" / "fraud" / "raw").is_dir()
    assert json.loads((repro / "decision.json").read_text()) == decision
