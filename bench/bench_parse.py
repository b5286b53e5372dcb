"""Figure 2, DAG parse time: every file of dags/ imported in a fresh interpreter, cross-checked with
``airflow dags report``.

    python bench/bench_parse.py --json out.json [--repeats 5]

Each file is executed (``runpy.run_path``) in its own fresh Python process, with plugins/ and include/
on the path as the dag-processor has them, in two contexts:

* **processor** (the headline): after importing ``airflow.dag_processing.processor``, which the
  dag-processor's file-processing process has loaded before it runs any DAG file, freezing what
  is loaded (``gc.freeze()``, as the dag-processor does when it starts), then importing the Airflow
  modules the file imports, as the dag-processor does before it forks the file's process
  (``[dag_processor] parsing_pre_import_modules``, on by default; it keeps them for every later
  file, so one file's own is the least it has);
* **bare**: after importing only ``airflow.sdk``. The first DAG file in such a process also pays
  for Airflow modules the SDK loads lazily (``@task`` pulls in ``packaging.specifiers``,
  ``TriggerDagRunOperator`` more of Airflow's core).

The median of ``--repeats`` runs per file is reported, with the heavy libraries each file pulled in
(there must be none). The headline is the repo's deployment (models/: one model); the same files are
timed again over a models/ folder of ten model files (each DAG file then builds ten DAGs), reported
beside it. Then ``airflow dags report`` (its DagBag in one process, on a throw-away
AIRFLOW_HOME) gives its own per-file durations.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "include"), str(Path(__file__).resolve().parents[1])]

from bench.common import ENV, PYTHON, ROOT, Figure, write_json  # noqa: E402

TARGET = 0.5
HEAVY = ("pandas", "sklearn", "mlflow", "great_expectations", "evidently", "dvc", "numpy", "pyarrow", "scipy",
         "matplotlib")
PROBE = """
import json, runpy, sys, time
sys.path[:0] = [sys.argv[2], sys.argv[3]]
t0 = time.perf_counter()
import importlib
importlib.import_module(sys.argv[5])  # what the parsing process has loaded before any DAG file
if sys.argv[5] == "airflow.dag_processing.processor":  # the dag-processor's own set-up
    import gc
    gc.freeze()  # as the dag-processor does when it starts (DagFileProcessorManager.before_run)
    # and, before it forks the file's parsing process, the Airflow modules the file imports
    # ([dag_processor] parsing_pre_import_modules, on by default)
    from airflow.dag_processing.processor import _pre_import_airflow_modules
    import structlog
    _pre_import_airflow_modules(sys.argv[1], structlog.get_logger())
t1 = time.perf_counter()
before = set(sys.modules)
runpy.run_path(sys.argv[1], run_name="__dag_file__")
t2 = time.perf_counter()
heavy = sorted({m.split(".")[0] for m in set(sys.modules) - before} & set(sys.argv[4].split(",")))
print(json.dumps({"sdk_import_s": t1 - t0, "parse_s": t2 - t1, "heavy": heavy}))
"""


CONTEXTS = {"processor": "airflow.dag_processing.processor", "bare": "airflow.sdk"}
# The dag-processor freezes what it has loaded (``gc.freeze()`` in DagFileProcessorManager.before_run,
# "to prevent COW in forked process parsing dag file") before it forks a process per file, so a full
# collection during a parse scans only the objects the DAG file made. Without it one such collection
# scans all of Airflow's objects, charged to whichever DAG file happened to trigger it. The bare
# context has neither that nor the pre-imports: the PROBE does both only in the processor context.


TEN_MODELS = 10


def ten_models(folder: Path) -> Path:
    """A models/ folder of ten model files: the repo's shared file and churn model, each on its own table."""
    import shutil

    import yaml

    models = folder / "models"
    models.mkdir(parents=True)
    shutil.copy2(ROOT / "models" / "_shared.yaml", models / "_shared.yaml")
    churn = yaml.safe_load((ROOT / "models" / "churn.yaml").read_text())
    for suite in ("raw_suite", "prepared_suite"):
        churn["validation"][suite] = str(ROOT / churn["validation"][suite])
    for i in range(TEN_MODELS):
        churn["source"]["table"] = f"events_{i}"
        (models / f"model_{i}.yaml").write_text(yaml.safe_dump(churn))
    return models


def parse_times(repeats: int, context: str, env: dict[str, str] | None = None) -> dict:
    """Per DAG file, the median of ``repeats`` parses, each in a fresh process, after one that is not
    counted: the first import of the project's modules writes their bytecode, as the dag-processor's
    first parse does."""
    files = sorted((ROOT / "dags").glob("*.py"))
    out = {}
    for path in files:
        samples, sdk, heavy = [], [], set()
        for attempt in range(repeats + 1):
            done = subprocess.run(  # noqa: S603 - our interpreter, a fixed probe
                [PYTHON, "-c", PROBE, str(path), str(ROOT / "plugins"), str(ROOT / "include"), ",".join(HEAVY),
                 CONTEXTS[context]],
                env={**ENV, "AIRFLOW__CORE__LOAD_EXAMPLES": "False", **(env or {})}, capture_output=True, text=True,
                check=True,
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            heavy |= set(result["heavy"])
            if not attempt:
                continue
            samples.append(result["parse_s"])
            sdk.append(result["sdk_import_s"])
        out[path.name] = {"median_s": round(statistics.median(samples), 4), "samples_s": [round(s, 4) for s in samples],
                          "sdk_import_s": round(statistics.median(sdk), 3), "heavy_imports": sorted(heavy)}
    return out


def dags_report() -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-parse-") as home:
        env = {**ENV, "AIRFLOW_HOME": home, "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
               "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        airflow = str(Path(PYTHON).parent / "airflow")
        subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True, check=True)  # noqa: S603
        done = subprocess.run([airflow, "dags", "report", "-o", "json"], env=env, capture_output=True,  # noqa: S603
                              text=True, check=True)
    rows = json.loads(done.stdout.strip().splitlines()[-1])

    def seconds(text: str) -> float:
        h, m, s = text.split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)

    return {row["file"].rsplit("/", 1)[-1]: round(seconds(row["duration"]), 4) for row in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    per_file = parse_times(repeats, "processor")
    bare = parse_times(repeats, "bare")
    with tempfile.TemporaryDirectory(prefix="bench-parse-models-") as tmp:
        ten = parse_times(repeats, "processor", {"RETRAINER_PARAMS": str(ten_models(Path(tmp)))})
    ten_total = sum(f["median_s"] for f in ten.values())
    report = dags_report()
    total = sum(f["median_s"] for f in per_file.values())
    bare_total = sum(f["median_s"] for f in bare.values())
    report_total = sum(report.values())
    heavy = sorted({m for f in per_file.values() for m in f["heavy_imports"]})
    sdk = statistics.median(f["sdk_import_s"] for f in per_file.values())
    comparison = (f"{len(per_file)} files, {TEN_MODELS} models (each file builds {TEN_MODELS} DAGs) {ten_total:.3f} s, bare (only airflow.sdk loaded) {bare_total:.3f} s, slowest {max(per_file, key=lambda k: per_file[k]['median_s'])} "
                  f"{max(f['median_s'] for f in per_file.values()):.3f} s; `airflow dags report` total {report_total:.3f} s; "
                  f"Airflow parser import (paid once per process, not in the total) {sdk:.2f} s; heavy imports: "
                  f"{', '.join(heavy) or 'none'}")
    figure = Figure("parse", "DAG parse time, all files (fresh interpreter each, Airflow's parser loaded)",
                    round(total, 3), "s", comparison, f"< {TARGET} s", "<", TARGET,
                    details={"per_file": per_file, "bare_per_file": bare, "dags_report_s": report,
                             "ten_models_per_file": ten, "ten_models_total_s": round(ten_total, 3)})
    if heavy or any(f["heavy_imports"] for f in ten.values()):
        figure.passed = False
    print(f"parse total {total:.3f}s (dags report {report_total:.3f}s); {TEN_MODELS} models {ten_total:.3f}s")
    write_json(args.json, {"figures": [figure.to_dict()]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
