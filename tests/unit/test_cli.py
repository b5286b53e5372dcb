"""retrainer.cli: the commands dvc.yaml and people run, their outputs and their errors."""

from __future__ import annotations

import json

from retrainer.cli import main
from retrainer.config import load_params
from retrainer.ingest import ingest_window
from tests.conftest import AS_OF, seed


def test_a_bad_params_file_is_an_error_naming_the_key(make_project, capsys) -> None:
    path = make_project({"prepare": {"holdout_days": 40}})
    assert main(["--params", str(path), "ingest", "--as-of", AS_OF.isoformat()]) == 2
    err = capsys.readouterr().err
    assert err.startswith("retrainer ingest: error:") and "holdout_days (40) must be smaller than window_days" in err


def test_latest_is_the_newest_source_day_and_ingest_lists_the_whole_window(make_project, tmp_path) -> None:
    path = make_project()
    params = load_params(path)
    seed(params.source_file)
    out = tmp_path / "ingest.json"
    assert main(["--params", str(path), "ingest", "--as-of", "latest", "--out", str(out)]) == 0
    ingested = json.loads(out.read_text())
    assert ingested["as_of"] == AS_OF.isoformat()
    # dvc.yaml's output describes the window the model learns from, not what this call happened to write.
    assert len(ingested["new_partitions"]) == params.prepare.window_days
    again = tmp_path / "again.json"
    assert main(["--params", str(path), "ingest", "--as-of", "latest", "--out", str(again)]) == 0
    assert json.loads(again.read_text())["new_partitions"] == ingested["new_partitions"]


def test_the_dvc_prepare_stage_gates_the_full_retrain_window_too(make_project, tmp_path):
    weekday = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")[AS_OF.weekday()]
    path = make_project({"schedule": {"full_retrain_weekday": weekday, "full_retrain_window_days": 16}})
    params = load_params(path)
    seed(params.source_file)
    ingest_window(params, AS_OF)
    validation = tmp_path / "validation.json"
    validation.write_text(json.dumps({"as_of": AS_OF.isoformat()}))
    out = tmp_path / "prepared"
    assert main(["--params", str(path), "prepare", "--validation", str(validation), "--out-dir", str(out)]) == 0
    prepared = json.loads((out / "prepared.json").read_text())
    assert prepared["prepared_gate"]["suite"]["success"] is True
    assert prepared["train_rows"] == 300 * (16 - params.prepare.holdout_days)


def test_every_command_takes_the_model_of_a_models_deployment(tmp_path, capsys, monkeypatch) -> None:
    from tests.conftest import write_models_project

    folder = write_models_project(tmp_path / "p", {"churn": {}, "fraud": {"source": {"table": "fraud_events"}}})
    monkeypatch.chdir(folder.parent)  # the project folder: ./models/ is the deployment
    monkeypatch.delenv("RETRAINER_PARAMS", raising=False)
    assert main(["seed", "--model", "fraud", "--days", "2", "--end", AS_OF.isoformat(), "--rows-per-day", "50"]) == 0
    assert json.loads(capsys.readouterr().out)["table"] == "fraud_events"
    assert main(["--model", "churn", "seed", "--days", "1", "--end", AS_OF.isoformat(), "--rows-per-day", "50"]) == 0
    assert json.loads(capsys.readouterr().out)["table"] == "customer_events"
    # Two models: say which; an unknown one is named.
    assert main(["ingest", "--as-of", "latest"]) == 2
    assert "2 models (churn, fraud): say which with --model NAME" in capsys.readouterr().err
    assert main(["ingest", "--model", "nope"]) == 2
    assert "no model 'nope' (models: churn, fraud)" in capsys.readouterr().err
    out = tmp_path / "ingest.json"
    assert main(["--params", str(folder), "ingest", "--model", "fraud", "--as-of", "latest", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["as_of"] == AS_OF.isoformat()
    assert (folder.parent / "data" / "fraud" / "raw").is_dir() and not (folder.parent / "data" / "churn" / "raw").exists()
