"""retrainer.lineage: a run's key changes exactly when its date, data, model code or model config does."""

from __future__ import annotations

import json
from pathlib import Path

from retrainer import lineage
from retrainer.config import load_params
from retrainer.storage import write_json_atomic


def test_the_run_key_follows_date_data_and_model_config_only(make_project) -> None:
    params = load_params(make_project())
    key = lineage.run_key("training", "2026-03-31", "abc", params)
    assert key == lineage.run_key("training", "2026-03-31", "abc", load_params(params.source_file))
    assert len({
        key,
        lineage.run_key("training", "2026-03-30", "abc", params),
        lineage.run_key("training", "2026-03-31", "abd", params),
        lineage.run_key("training:forced", "2026-03-31", "abc", params),
    }) == 4
    other_model = load_params(make_project({"model": {"hyperparameters": {"max_iter": 17}}}))
    assert lineage.config_hash(other_model) != lineage.config_hash(params)
    # Where things live is not what a model learned from: another machine's paths give the same key.
    moved = load_params(make_project({"mlflow": {"experiment": "elsewhere"}}))
    assert lineage.config_hash(moved) == lineage.config_hash(params)


def test_code_version_hashes_every_model_code_file() -> None:
    files = lineage.model_code_files()
    assert {f.name for f in files} >= {"config.py", "run_context.py", "ingest.py", "prepare.py"}
    assert any("train" in f.relative_to(lineage.PACKAGE_DIR).as_posix() for f in files)
    assert len(lineage.code_version()) == 12


def test_validation_evidence_reads_the_days_the_run_passed(make_project) -> None:
    params = load_params(make_project())
    assert lineage.validation_evidence(params, "2026-03-31") == {"summary": None, "partitions": []}
    summary = params.reports_dir / "validation" / "summary-as_of=2026-03-31.json"
    write_json_atomic(summary, {"partitions": [{"day": "2026-03-31", "success": True, "report_json": "r.json",
                                                "data_docs": "d/index.html", "warnings": [], "replayed": False}]})
    evidence = lineage.validation_evidence(params, "2026-03-31")
    assert evidence["summary"] == str(summary)
    assert evidence["partitions"] == [{"day": "2026-03-31", "success": True, "report_json": "r.json",
                                       "data_docs": "d/index.html", "warnings": []}]


def test_the_lineage_record_names_data_code_config_trigger_and_airflow_run(make_project, tmp_path: Path) -> None:
    params = load_params(make_project())
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"as_of": "2026-03-31", "data_hash": "h1", "window_days": 14, "holdout_days": 3,
                                    "partitions": [{"day": "2026-03-31", "md5": "m", "split": "holdout"}]}))
    record = lineage.lineage_record(params, manifest, "key1", {"reason": "drift", "trigger_report": "reports/x.html",
                                                                "dag_id": "training", "run_id": "r1"})
    assert record["run_key"] == "key1" and record["data_hash"] == "h1" and record["window_days"] == 14
    assert record["manifest_sha256"] == lineage.manifest_sha256(manifest)
    assert record["code_version"] == lineage.code_version() and record["config_hash"] == lineage.config_hash(params)
    assert record["trigger"] == {"reason": "drift", "report": "reports/x.html"}
    assert record["airflow"] == {"dag_id": "training", "run_id": "r1", "try_number": "", "run_type": "", "ui_url": ""}
    assert record["packages"]["scikit-learn"]
