"""Every DAG file imports cleanly, follows the project's rules, and parses without heavy ML imports.

The repo's deployment is models/ (the churn model): every DAG kind is built as ``<kind>__churn``. A
single params file keeps the bare ids; a models folder of several files builds each kind per model,
and a broken model file is an import error of dags/model_files.py while the other models' DAGs parse.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retrainer.names import (
    ALL_DAGS,
    BATCH_SCORING_DAG,
    DRIFT_MONITOR_DAG,
    INGEST_LANDING_DAG,
    PROMOTE_DAG,
    ROLLBACK_DAG,
    TRAINING_DAG,
)
from retrainer.names import (
    dag_id as id_of,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGS_DIR = REPO_ROOT / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))
HEAVY_MODULES = ("pandas", "sklearn", "mlflow", "great_expectations", "evidently", "dvc", "pyarrow", "numpy")
MODEL = "churn"  # the repo's one model file, models/churn.yaml
IDS = {kind: id_of(kind, MODEL) for kind in ALL_DAGS}
EXPECTED_DAG_IDS = set(IDS.values())
DAG_PARSE_SECONDS = 5.0  # the most one DAG file may add to airflow.sdk's import at parse time
# Started by a person from the UI, never on a schedule: their DAG files say `schedule=None` explicitly.
MANUAL_ONLY_KINDS = {PROMOTE_DAG, ROLLBACK_DAG}


def _airflow_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RETRAINER_PARAMS"}  # the repo's deployment unless set
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS_DIR),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO_ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
    )
    return env


def load_report(tmp: Path, **env: str) -> dict:
    """Load the DagBag in a fresh interpreter (Airflow reads its config at import time)."""
    script = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "tags": sorted(dag.tags),
        "timetable": type(dag.timetable).__name__,
        "schedule_raw": repr(getattr(dag, "schedule", None)),
        "retries": {t.task_id: t.retries for t in dag.tasks},
        "failure_callbacks": {
            t.task_id: sorted(type(cb).__name__ for cb in (t.on_failure_callback or [])) for t in dag.tasks
        },
        "params": sorted(dag.params.keys()),
        "deadlines": [
            {"reference": type(d.reference).__name__, "seconds": d.interval.total_seconds(), "callback": d.callback.path,
             "callback_type": type(d.callback).__name__, "rule": d.callback.kwargs.get("rule")}
            for d in (dag.deadline or [])
        ],
        "max_active_runs": dag.max_active_runs,
        "deferrable": {t.task_id: bool(getattr(t, "deferrable", False)) for t in dag.tasks},
        "pools": {t.task_id: t.pool for t in dag.tasks},
        "multiple_outputs": {t.task_id: bool(getattr(t, "multiple_outputs", False)) for t in dag.tasks},
        "extra_links": {t.task_id: sorted(link.name for link in getattr(t, "operator_extra_links", ())) for t in dag.tasks},
        "tasks": [t.task_id for t in dag.topological_sort()] if hasattr(dag, "topological_sort") else sorted(dag.task_ids),
        "triggers": sorted({getattr(t, "trigger_dag_id", None) or (getattr(t, "partial_kwargs", None) or {}).get(
            "trigger_dag_id") for t in dag.tasks} - {None}),
        "assets": sorted(a.name for a in getattr(getattr(dag.timetable, "asset_condition", None), "objects",
                         [getattr(dag.timetable, "asset_condition", None)]) if hasattr(a, "name")),
        "outlets": sorted({o.name for t in dag.tasks for o in t.outlets}),
    }
print("REPORT" + json.dumps(out))
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(DAGS_DIR)], capture_output=True, text=True,
        env={**_airflow_env(tmp), **env}, timeout=300,
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("REPORT")), None)
    assert line, f"DagBag load failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(line[len("REPORT"):])


@pytest.fixture(scope="module")
def dag_report(tmp_path_factory) -> dict:
    return load_report(tmp_path_factory.mktemp("dagbag"))  # the repo's own deployment: models/


def test_no_import_errors(dag_report):
    assert dag_report["errors"] == {}


def test_expected_dags_exist(dag_report):
    assert EXPECTED_DAG_IDS <= set(dag_report["dags"])


def test_every_dag_has_tags_retries_and_an_explicit_schedule(dag_report):
    for dag_id, info in dag_report["dags"].items():
        assert "retrainer" in info["tags"], dag_id
        assert all(r >= 1 for r in info["retries"].values()), (dag_id, info["retries"])
        kind = dag_id.split("__")[0]
        assert f"model:{MODEL}" in info["tags"], dag_id
        if kind in MANUAL_ONLY_KINDS:
            assert info["timetable"] == "NullTimetable", dag_id
            assert "schedule=None" in (DAGS_DIR / f"{kind}.py").read_text(), f"{dag_id}: say schedule=None"
        else:
            assert info["schedule_raw"] not in ("None", "NOTSET"), dag_id


def test_every_task_reports_its_final_failure(dag_report):
    # A failed drift check or landing ingest must reach people as surely as a failed training run.
    for dag_id, info in dag_report["dags"].items():
        for task_id, callbacks in info["failure_callbacks"].items():
            assert "RunFailureNotifier" in callbacks, f"{dag_id}.{task_id}: no failure notifier ({callbacks})"


def test_training_drift_and_scoring_carry_the_deadlines_of_params_yaml(dag_report):
    # models/_shared.yaml deadlines: training 6h, drift_monitor 2h, batch_scoring 2h; the triggerer runs the callback.
    hour, callback = 3600.0, "retrainer_notifier.deadline_missed"
    deadlines = {dag_id.split("__")[0]: info["deadlines"] for dag_id, info in dag_report["dags"].items()}
    assert deadlines["training"] == [
        {"reference": "DagRunLogicalDateDeadline", "seconds": 30 * hour, "callback": callback,
         "callback_type": "AsyncCallback", "rule": "after_day_end"},
        {"reference": "DagRunQueuedAtDeadline", "seconds": 6 * hour, "callback": callback,
         "callback_type": "AsyncCallback", "rule": "after_queued"},
    ]
    for dag_id in ("drift_monitor", "batch_scoring"):
        assert deadlines[dag_id] == [{"reference": "DagRunQueuedAtDeadline", "seconds": 2 * hour, "callback": callback,
                                      "callback_type": "AsyncCallback", "rule": "after_queued"}], dag_id
    for dag_id in ("ingest_landing", "promote", "rollback"):
        assert deadlines[dag_id] == [], dag_id


def test_registry_dags_take_typed_params(dag_report):
    dags = dag_report["dags"]
    assert {"version", "reason", "expected_champion", "override"} <= set(dags[IDS[PROMOTE_DAG]]["params"])
    assert {"to_version", "reason"} <= set(dags[IDS[ROLLBACK_DAG]]["params"])
    assert {"day", "shadow"} <= set(dags[IDS[BATCH_SCORING_DAG]]["params"])
    assert dags[IDS[BATCH_SCORING_DAG]]["timetable"] == "CronDataIntervalTimetable"
    assert dags[IDS[BATCH_SCORING_DAG]]["tasks"] == ["partition_ready", "score_champion", "score_shadow"]


def test_training_runs_the_six_steps_in_order(dag_report):
    training = dag_report["dags"][IDS[TRAINING_DAG]]
    # Scheduled runs and backfills must have a data interval: their as-of date is the interval's day.
    assert training["timetable"] == "CronDataIntervalTimetable"
    assert training["tasks"] == ["ingest", "validate", "prepare", "train", "evaluate", "register", "approve",
                                 "apply_approval"]
    assert {"as_of", "window_days", "force", "note"} <= set(training["params"])


def test_ingest_landing_waits_in_the_triggerer_and_triggers_training(dag_report):
    landing = dag_report["dags"][IDS[INGEST_LANDING_DAG]]
    assert landing["schedule_raw"] == "'@continuous'" and landing["max_active_runs"] == 1
    assert landing["tasks"] == ["wait_for_files", "claim_files", "ingest_files", "trigger_training", "check_quarantine"]
    # A deferrable sensor waits in the triggerer: no worker slot is held while no file comes.
    assert landing["deferrable"]["wait_for_files"] is True
    assert landing["pools"]["ingest_files"] == "dvc"  # DVC work is serialized with training's
    assert landing["triggers"] == [IDS[TRAINING_DAG]]


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_parsing_a_dag_file_imports_no_heavy_library(dag_file, tmp_path):
    probe = f"""
import importlib.util, json, sys, time
sys.path.insert(0, {str(REPO_ROOT / "plugins")!r})  # as Airflow does for the plugins folder
start = time.perf_counter()
import airflow.sdk  # what every DAG file imports first: Airflow's own cost, the same for any DAG
sdk = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_under_test", {str(dag_file)!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
heavy = sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)
end = time.perf_counter()
print("PROBE" + json.dumps({{"heavy": heavy, "seconds": end - start, "dag_seconds": end - sdk}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=_airflow_env(tmp_path), timeout=120
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("PROBE")), None)
    assert line, done.stderr[-3000:]
    probed = json.loads(line[len("PROBE"):])
    assert probed["heavy"] == []
    # Parse speed: what the DAG file adds on top of airflow.sdk (0.04-0.3 s on the 2-core reference
    # machine; one heavy import costs seconds). Generous for a loaded machine, far below Airflow's
    # 30 s dagbag_import_timeout.
    assert probed["dag_seconds"] < DAG_PARSE_SECONDS, probed


def test_ruff_airflow_rules_are_clean():
    ruff = Path(sys.executable).with_name("ruff")
    done = subprocess.run(
        [str(ruff), "check", "--select", "AIR", "dags", "plugins"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_step_operators_keep_the_xcom_shapes_and_carry_their_links(dag_report):
    """validate/train/register and drift_monitor's check were TaskFlow tasks returning dicts: their
    operators still push each key as its own XCom (the trigger reads check's trigger_run_id)."""
    training, monitor = dag_report["dags"][IDS[TRAINING_DAG]], dag_report["dags"][IDS[DRIFT_MONITOR_DAG]]
    for task_id in ("ingest", "validate", "prepare", "train", "evaluate", "register"):
        assert training["multiple_outputs"][task_id] is True, task_id
    assert monitor["multiple_outputs"]["check"] is True
    assert training["extra_links"]["validate"] == ["Data Docs"]
    assert training["extra_links"]["train"] == ["MLflow run"]
    assert training["extra_links"]["register"] == ["MLflow model version"]
    assert monitor["extra_links"]["check"] == ["Drift report"]
    assert training["pools"]["validate"] == "dvc"


def test_one_params_file_keeps_the_bare_dag_ids(tmp_path):
    from tests.conftest import write_project

    report = load_report(tmp_path, RETRAINER_PARAMS=str(write_project(tmp_path / "project")))
    assert report["errors"] == {}
    assert set(report["dags"]) == set(ALL_DAGS)
    assert report["dags"][DRIFT_MONITOR_DAG]["assets"] == ["retrainer_raw_partitions"]
    assert report["dags"][DRIFT_MONITOR_DAG]["triggers"] == [TRAINING_DAG]
    assert report["dags"][TRAINING_DAG]["tags"] == ["retrainer"]


def test_an_invalid_single_params_file_still_builds_its_dags(tmp_path):
    """As before models/: the DAGs parse and their runs fail naming the key (tests/e2e); the import error
    of dags/model_files.py names it at once."""
    broken = tmp_path / "params.yaml"
    broken.write_text("prepare:\n  window_days: four weeks\n")
    report = load_report(tmp_path, RETRAINER_PARAMS=str(broken))
    assert set(report["dags"]) == set(ALL_DAGS)
    assert list(report["errors"]) == [str(DAGS_DIR / "model_files.py")]


def test_every_model_file_gets_its_dags_and_a_broken_one_only_an_import_error(tmp_path):
    import yaml

    from tests.conftest import write_models_project

    folder = write_models_project(tmp_path / "project", {
        "churn": {}, "fraud": {"source": {"table": "fraud_events"}, "schedule": {"training_cron": "0 6 * * *"}},
        "broken": {"prepare": {"window_days": "four weeks"}},
    })
    report = load_report(tmp_path, RETRAINER_PARAMS=str(folder))
    dags = report["dags"]
    assert set(dags) == {id_of(kind, model) for kind in ALL_DAGS for model in ("churn", "fraud")}
    (error_file, message), = report["errors"].items()
    assert error_file == str(DAGS_DIR / "model_files.py")
    assert "broken.yaml" in message and "prepare.window_days (set in broken.yaml)" in message
    fraud = {kind: dags[id_of(kind, "fraud")] for kind in ALL_DAGS}
    assert all("model:fraud" in info["tags"] for info in fraud.values())
    assert fraud[DRIFT_MONITOR_DAG]["assets"] == ["retrainer_raw_partitions__fraud"]
    assert fraud[DRIFT_MONITOR_DAG]["triggers"] == fraud[INGEST_LANDING_DAG]["triggers"] == ["training__fraud"]
    assert fraud[TRAINING_DAG]["outlets"] == ["retrainer_raw_partitions__fraud"]
    assert "0 6 * * *" in fraud[TRAINING_DAG]["schedule_raw"]
    assert "0 0 * * *" in dags[id_of(TRAINING_DAG, "churn")]["schedule_raw"]
    # Fixing the file clears the error; removing one removes its DAGs.
    (folder / "broken.yaml").unlink()
    (folder / "fraud.yaml").unlink()
    fixed = load_report(tmp_path, RETRAINER_PARAMS=str(folder))
    assert fixed["errors"] == {} and set(fixed["dags"]) == {id_of(kind, "churn") for kind in ALL_DAGS}
    assert yaml  # the files are YAML only: nothing else is read at parse time
