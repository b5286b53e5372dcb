"""retrainer.deployment: one params file per model in models/, merged over the shared file; or one params.yaml."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from retrainer.config import ConfigError
from retrainer.deployment import find_deployment, isolation_conflicts, merge, model_defaults
from retrainer.names import dag_id, model_tag, raw_partitions_asset, split_dag_id
from tests.conftest import REPO_ROOT


def _project(tmp_path: Path, *names: str, shared: bool = True) -> Path:
    models = tmp_path / "models"
    models.mkdir(parents=True)
    if shared:
        shutil.copy2(REPO_ROOT / "models" / "_shared.yaml", models / "_shared.yaml")
    churn = yaml.safe_load((REPO_ROOT / "models" / "churn.yaml").read_text())
    for suite in ("raw_suite", "prepared_suite"):
        churn["validation"][suite] = str(REPO_ROOT / churn["validation"][suite])
    for name in names:
        (models / f"{name}.yaml").write_text(yaml.safe_dump(churn))
    return tmp_path


def test_the_repo_is_a_models_deployment_with_churn():
    deployment = find_deployment(REPO_ROOT, explicit=REPO_ROOT / "models")
    assert deployment.multi and deployment.names() == ["churn"]
    params = deployment.load()  # the only model
    assert params.dataset.name == "churn" and params.model.registered_name == "retrainer-churn"
    assert params.data_dir == REPO_ROOT / "data" / "churn" and params.reports_dir == REPO_ROOT / "reports" / "churn"
    assert params.mlflow.tracking_uri == "sqlite:///.mlflow/mlflow.db"  # from _shared.yaml
    assert params.source_file == REPO_ROOT / "models" / "churn.yaml"


def test_model_file_overrides_shared_key_by_key(tmp_path, monkeypatch):
    monkeypatch.delenv("RETRAINER_PARAMS", raising=False)
    root = _project(tmp_path, "churn", "fraud")
    (root / "models" / "fraud.yaml").write_text(
        (root / "models" / "fraud.yaml").read_text() + "registry:\n  promotion: manual\n"
    )
    deployment = find_deployment(root)
    assert deployment.names() == ["churn", "fraud"]
    fraud, churn = deployment.load("fraud"), deployment.load("churn")
    assert fraud.registry.promotion == "manual" and churn.registry.promotion == "auto"
    assert fraud.registry.history_length == 20  # the rest of the shared registry section stays
    assert fraud.data_dir == root / "data" / "fraud" and fraud.landing_dir == root / "data" / "fraud" / "landing"
    assert fraud.digest != churn.digest or fraud.source_file != churn.source_file
    with pytest.raises(ConfigError, match="say which with --model"):
        deployment.load()
    with pytest.raises(ConfigError, match="no model 'nope'"):
        deployment.load("nope")


def test_files_starting_with_underscore_or_dot_are_not_models(tmp_path):
    root = _project(tmp_path, "churn")
    (root / "models" / ".draft.yaml").write_text("x: 1\n")
    (root / "models" / "_notes.yaml").write_text("x: 1\n")
    (root / "models" / "README.md").write_text("not yaml\n")
    assert find_deployment(root, explicit=root / "models").names() == ["churn"]


def test_a_broken_model_file_is_refused_alone_naming_file_and_key(tmp_path):
    root = _project(tmp_path, "churn", "fraud")
    broken = yaml.safe_load((root / "models" / "fraud.yaml").read_text())
    broken["prepare"]["window_days"] = "four weeks"
    (root / "models" / "fraud.yaml").write_text(yaml.safe_dump(broken))
    (root / "models" / "bad name.yaml").write_text("{}\n")
    models, errors = find_deployment(root, explicit=root / "models").load_all()
    assert list(models) == ["churn"]
    fraud_error = errors[root / "models" / "fraud.yaml"]
    assert "fraud.yaml" in fraud_error and "prepare.window_days (set in fraud.yaml)" in fraud_error
    assert "not a model name" in errors[root / "models" / "bad name.yaml"]


def test_a_key_missing_everywhere_says_so(tmp_path):
    root = _project(tmp_path, "churn")
    doc = yaml.safe_load((root / "models" / "churn.yaml").read_text())
    del doc["source"]
    (root / "models" / "churn.yaml").write_text(yaml.safe_dump(doc))
    _, errors = find_deployment(root, explicit=root / "models").load_all()
    assert "source (missing or default)" in errors[root / "models" / "churn.yaml"]


def test_models_sharing_a_folder_or_registered_model_are_both_refused(tmp_path):
    root = _project(tmp_path, "churn", "fraud", "other")
    for name in ("churn", "fraud"):
        path = root / "models" / f"{name}.yaml"
        doc = merge(yaml.safe_load(path.read_text()), {"project": {"data_dir": "data"}})
        path.write_text(yaml.safe_dump(doc))
    models, errors = find_deployment(root, explicit=root / "models").load_all()
    assert list(models) == ["other"]
    message = errors[root / "models" / "fraud.yaml"]
    assert "project.data_dir is churn's project.data_dir" in message
    assert "not isolated" in errors[root / "models" / "churn.yaml"]


def test_the_defaults_isolate_every_model(tmp_path):
    root = _project(tmp_path, *(f"m{i}" for i in range(10)))
    models, errors = find_deployment(root, explicit=root / "models").load_all()
    assert not errors and len(models) == 10
    assert not isolation_conflicts(models)
    assert {p.model.registered_name for p in models.values()} == {f"retrainer-m{i}" for i in range(10)}
    assert model_defaults("x")["drift"]["experiment"] == "retrainer-monitoring-x"


def test_a_single_params_file_is_one_model_with_bare_names(tmp_path, make_project):
    params_file = make_project()
    deployment = find_deployment(tmp_path, explicit=params_file)
    assert not deployment.multi and deployment.names() == []
    assert deployment.resolve(None) is None and deployment.resolve("churn") is None  # its dataset name
    with pytest.raises(ConfigError, match="one params file"):
        deployment.resolve("fraud")
    models, errors = deployment.load_all()
    assert list(models) == [None] and not errors


def test_without_models_folder_the_project_params_yaml_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv("RETRAINER_PARAMS", raising=False)
    (tmp_path / "models").mkdir()  # empty: not a models deployment
    deployment = find_deployment(tmp_path)
    assert deployment.single_file == tmp_path / "params.yaml"


def test_dag_ids_and_assets_per_model():
    assert dag_id("training", "churn") == "training__churn" and dag_id("training") == "training"
    assert split_dag_id("drift_monitor__fraud_v2") == ("drift_monitor", "fraud_v2")
    assert split_dag_id("training") == ("training", None)
    with pytest.raises(ValueError):
        split_dag_id("something_else")
    assert raw_partitions_asset("churn") == "retrainer_raw_partitions__churn"
    assert raw_partitions_asset() == "retrainer_raw_partitions" and model_tag("churn") == "model:churn"


def test_models_share_the_one_dvc_remote(tmp_path):
    root = _project(tmp_path, "churn", "fraud")
    path = root / "models" / "fraud.yaml"
    path.write_text(yaml.safe_dump(merge(yaml.safe_load(path.read_text()), {"dvc": {"remote_url": "/elsewhere"}})))
    models, errors = find_deployment(root, explicit=root / "models").load_all()
    assert list(models) == ["churn"]
    assert "all models share one DVC repository and remote" in errors[path]
