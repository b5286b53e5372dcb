"""Import the libraries Retrainer's task bodies use once, in the process Airflow forks tasks from.

How Airflow 3.3 starts a task on Linux: the LocalExecutor forks ``[core] parallelism`` long-lived worker
processes from the scheduler when the executor starts; each task is then run by ``supervise_task`` in
such a worker, which ``os.fork()``s the task process (no exec; fork+exec is only used on macOS).
``[core] execute_tasks_new_python_interpreter`` no longer exists in Airflow 3 (a deprecated shim
reads it). So a task process starts with exactly the modules its worker had imported: by default
Airflow's own, none of ours, and every task pays again for pandas, scikit-learn, MLflow (several
seconds), Great Expectations (about 10 s) or Evidently (about 8 s).

:class:`retrainer.executor.PreloadingLocalExecutor` calls :func:`preload` in the scheduler right before
the executor forks its workers, so every worker, and every task forked from it, has these modules
already imported. Never at DAG parse time: DAG files and the dag-processor stay lean.

Only imports, no work: nothing here may start a thread or an OpenMP pool (a fork copies only the
forking thread), open a file or a connection. ``tests/unit/test_preload.py`` checks that.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
import warnings

# What the tasks of `training` and `drift_monitor` import, found by running each step in a fresh
# interpreter and listing what it added to sys.modules (bench/bench_overhead.py reports what a
# task still imports after preloading). Order matters little; dependencies come first for readability.
HEAVY_MODULES: tuple[str, ...] = (
    "numpy",
    "pandas",
    "pyarrow",
    "pyarrow.parquet",
    "pyarrow.compute",
    "sqlalchemy",
    "scipy.stats",
    "scipy.spatial",
    "sklearn.compose",
    "sklearn.ensemble",
    "sklearn.impute",
    "sklearn.linear_model",
    "sklearn.metrics",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "sklearn.calibration",
    "matplotlib",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
    "skops.io",
    "mlflow",
    "mlflow.sklearn",
    "mlflow.data",
    "mlflow.models",
    "dvc.repo",
    "great_expectations",
    "evidently",
    "evidently.presets",
    "evidently.legacy.calculations.stattests.registry",
    # Retrainer's own modules (cheap: they import the libraries above lazily, inside functions).
    "retrainer.pipeline",
    "retrainer.ingest",
    "retrainer.versioning",
    "retrainer.validate",
    "retrainer.prepare",
    "retrainer.gates",
    "retrainer.train",
    "retrainer.evaluate",
    "retrainer.register",
    "retrainer.lineage",
    "retrainer.drift",
    "retrainer.monitor",
    "retrainer.scoring",
)

DISABLE_ENV = "RETRAINER_PRELOAD"  # "0" turns preloading off (the executor then behaves as LocalExecutor)


def enabled() -> bool:
    return os.environ.get(DISABLE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def preload(modules: tuple[str, ...] = HEAVY_MODULES) -> dict[str, float]:
    """Import ``modules``; return the seconds each one took (0.0 for those already imported).

    A module that fails to import is reported and skipped: the task that needs it imports it itself
    and fails there with the real error, where the user looks for it.
    """
    # Great Expectations' own import flags (no analytics call) come with its import helper.
    from retrainer.validate import import_gx

    seconds: dict[str, float] = {}
    for name in modules:
        if name in sys.modules:
            seconds[name] = 0.0
            continue
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():
                # skops.io looks up names in every loaded module at import; in an Airflow process that
                # trips hundreds of Airflow's deprecated-attribute warnings into the scheduler log.
                warnings.simplefilter("ignore")
                if name == "great_expectations":
                    import_gx()
                else:
                    importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - preloading is an optimisation, never a failure
            print(f"retrainer.preload: cannot import {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        seconds[name] = time.perf_counter() - started
    return seconds
