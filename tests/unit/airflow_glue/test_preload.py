"""retrainer_airflow.preload / retrainer_airflow.executor: what the preloading executor imports before it
forks, and that task processes forked after it work (a fork copies only the forking thread)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from retrainer_airflow import preload

from tests.conftest import REPO_ROOT

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "include"), str(REPO_ROOT)])}


def _run(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - our interpreter, a fixed snippet
        [sys.executable, "-c", textwrap.dedent(code)], env=ENV, capture_output=True, text=True, timeout=timeout
    )


def test_preload_imports_every_module_without_starting_python_threads_and_a_fork_can_use_them() -> None:
    done = _run(
        """
        import os, sys, threading
        from retrainer_airflow.preload import HEAVY_MODULES, preload
        seconds = preload()
        missing = [m for m in HEAVY_MODULES if m not in sys.modules]
        assert not missing, f"not imported: {missing}"
        assert threading.active_count() == 1, [t.name for t in threading.enumerate()]
        pid = os.fork()
        if pid == 0:  # what a LocalExecutor worker does for every task: fork, then run the task's code
            try:
                import numpy as np, pandas as pd
                from sklearn.ensemble import HistGradientBoostingClassifier  # OpenMP inside
                rng = np.random.default_rng(0)
                x = rng.normal(size=(2000, 3)); y = (x[:, 0] > 0).astype(int)
                HistGradientBoostingClassifier(max_iter=5).fit(x, y)
                pd.DataFrame(x, columns=list("abc")).to_parquet("/dev/null")
                os._exit(0)
            except BaseException as exc:  # noqa: BLE001
                print(repr(exc), file=sys.stderr)
                os._exit(3)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status), "imported", sum(1 for s in seconds.values() if s > 0))
        """
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "child 0 " in done.stdout, done.stdout + done.stderr[-3000:]


def test_preloading_executor_imports_before_forking_its_workers_unless_turned_off() -> None:
    code = """
        import sys
        from retrainer_airflow.executor import PreloadingLocalExecutor
        executor = PreloadingLocalExecutor(parallelism=1)
        executor.start()
        try:
            print("RESULT", "gx" if "great_expectations" in sys.modules else "no-gx", len(executor.workers))
        finally:
            executor.end()
        """
    on = _run(code)
    assert on.returncode == 0, on.stderr[-3000:]
    assert "RESULT gx 1" in on.stdout, on.stdout[-3000:]
    off = subprocess.run(  # noqa: S603
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**ENV, preload.DISABLE_ENV: "0"}, capture_output=True, text=True, timeout=300,
    )
    assert off.returncode == 0, off.stderr[-3000:]
    assert "RESULT no-gx 1" in off.stdout, off.stdout[-3000:]


def test_the_local_stack_uses_the_preloading_executor() -> None:
    from retrainer_launcher import airflow_env

    assert airflow_env.LOCAL_EXECUTOR == "retrainer_airflow.executor.PreloadingLocalExecutor"
    module, _, name = airflow_env.LOCAL_EXECUTOR.rpartition(".")
    assert getattr(__import__(module, fromlist=[name]), name).__mro__[1].__name__ == "LocalExecutor"
