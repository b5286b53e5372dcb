"""Lineage and reproduction of a model version: real DVC remote, real MLflow store, no Airflow."""

from __future__ import annotations

import json
import shutil

import pytest

from retrainer.cli import main
from retrainer.config import load_params
from retrainer.pipeline import run_pipeline
from retrainer.reproduce import ReproduceError, format_lineage, read_lineage, reproduce
from tests.conftest import AS_OF, seed


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tests.conftest import write_project

    params = load_params(write_project(tmp_path_factory.mktemp("lineage") / "project", git=True))
    seed(params.source_file)
    result = run_pipeline(params, AS_OF, {"dag_id": "training", "run_id": "manual__x", "reason": "drift",
                                          "trigger_report": "reports/drift/2026-03-31/report.json"})
    return params, result


def test_lineage_names_data_code_config_and_trigger(trained, capsys):
    params, result = trained
    record = read_lineage(params, params.model.registered_name, "champion")
    assert record["version"] == result["registered"]["version"]
    assert record["data_hash"] == result["prepared"]["data_hash"]
    assert len(record["partitions"]) == params.prepare.window_days
    assert record["trigger"] == {"reason": "drift", "report": "reports/drift/2026-03-31/report.json"}
    assert record["validation"]["summary"].endswith(f"summary-as_of={AS_OF.isoformat()}.json")
    assert all(p["success"] for p in record["validation"]["partitions"])
    assert record["git_commit"] == "" and record["packages"]["scikit-learn"]
    table = format_lineage(record)
    assert record["manifest_sha256"] in table and record["partitions"][0]["md5"] in table

    assert main(["--params", str(params.source_file), "lineage", "champion", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == record["run_id"]


def test_reproduce_gives_identical_metrics_and_predictions(trained, tmp_path):
    params, _ = trained
    result = reproduce(params, params.model.registered_name, "champion", tmp_path / "scratch")
    assert result.identical, result
    assert result.metric_differences == {} and result.max_prediction_difference == 0.0
    assert result.causes == []


def test_reproduce_names_the_partition_missing_from_the_remote(trained, tmp_path):
    params, _ = trained
    record = read_lineage(params, params.model.registered_name, "champion")
    victim = record["partitions"][3]
    remote_object = params.path(params.dvc_remote_url) / "files" / "md5" / victim["md5"][:2] / victim["md5"][2:]
    moved = tmp_path / "kept-aside"
    shutil.move(remote_object, moved)
    # The local DVC cache of the project could serve it; reproduction must go to the remote.
    try:
        with pytest.raises(ReproduceError) as caught:
            reproduce(params, params.model.registered_name, "champion", tmp_path / "scratch")
        message = str(caught.value)
        assert "training data missing from the DVC remote" in message
        assert victim["md5"] in message and f"dt={victim['day']}" in message
    finally:
        shutil.move(moved, remote_object)


def test_unknown_version_is_a_clear_error(trained):
    params, _ = trained
    with pytest.raises(ReproduceError, match="has no version or alias 'nonexistent'"):
        read_lineage(params, params.model.registered_name, "nonexistent")


def test_every_code_dependency_dvc_yaml_names_exists():
    """A module that becomes a package (train.py -> train/) must not leave dvc.yaml naming the old file:
    `dvc repro` fails on a missing dependency."""
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2]
    stages = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    named = [dep for stage in stages.values() for dep in stage.get("deps", []) if isinstance(dep, str)]
    missing = [dep for dep in named if "${" not in dep and dep.startswith(("include/", "validation_suites"))
               and not (root / dep).exists()]
    assert named and missing == []
