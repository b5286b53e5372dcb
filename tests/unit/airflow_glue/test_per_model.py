"""retrainer_airflow.per_model: which models get DAGs, their ids, tags, assets and schedules."""

from __future__ import annotations

from retrainer_airflow import per_model

from retrainer.config import PARAMS_ENV
from tests.conftest import write_models_project, write_project


def test_every_valid_model_file_gets_its_dags_and_a_broken_one_an_error(tmp_path, monkeypatch):
    folder = write_models_project(tmp_path / "p", {
        "churn": {}, "fraud": {"source": {"table": "fraud_events"}, "schedule": {"drift_cron": "15 3 * * *"}},
    })
    (folder / "broken.yaml").write_text("prepare:\n  window_days: four weeks\n")
    monkeypatch.setenv(PARAMS_ENV, str(folder))
    models = {m.name: m for m in per_model.dag_models()}
    assert list(models) == ["churn", "fraud"]
    fraud = models["fraud"]
    assert fraud.dag_id("training") == "training__fraud" and fraud.tags == ["model:fraud"]
    assert fraud.raw_partitions.name == "retrainer_raw_partitions__fraud"
    assert fraud.cron("drift") == "15 3 * * *" and models["churn"].cron("drift") == "30 1 * * *"
    (error,) = per_model.model_file_errors().items()
    assert error[0] == folder / "broken.yaml" and "prepare.window_days (set in broken.yaml)" in error[1]


def test_one_params_file_is_one_model_with_bare_ids_even_when_invalid(tmp_path, monkeypatch):
    monkeypatch.setenv(PARAMS_ENV, str(write_project(tmp_path / "p")))
    (model,) = per_model.dag_models()
    assert model.name is None and model.dag_id("training") == "training" and model.tags == []
    assert model.raw_partitions.name == "retrainer_raw_partitions"
    broken = tmp_path / "broken.yaml"
    broken.write_text("colour: blue\n")
    monkeypatch.setenv(PARAMS_ENV, str(broken))
    (model,) = per_model.dag_models()  # its DAGs are still built: their runs fail naming the key
    assert model.params is None and model.cron("training") == "0 0 * * *"
    assert list(per_model.model_file_errors()) == [broken]
