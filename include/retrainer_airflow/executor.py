"""``PreloadingLocalExecutor``: Airflow's LocalExecutor whose task processes start with Retrainer's heavy
libraries already imported.

Select it with ``[core] executor = retrainer_airflow.executor.PreloadingLocalExecutor`` (the local
stack of the launcher does). Why and how: see :mod:`retrainer_airflow.preload`. In short, on Linux
every task process is forked from a LocalExecutor worker, and the workers are forked from the
scheduler when the executor starts; importing pandas, scikit-learn, MLflow, GX, Evidently and DVC once in the scheduler
right before that fork means no task imports them again.

Costs: the scheduler starts about 15 s later (the imports, once) and holds those modules (~450 MB
resident, shared copy-on-write with the workers; the base class freezes the GC before forking so the
shared pages stay shared). With ``mp_start_method`` other than ``fork`` the workers would not inherit
the imports, so nothing is preloaded. ``RETRAINER_PRELOAD=0`` turns preloading off.
"""

from __future__ import annotations

from airflow.executors.local_executor import LocalExecutor

from retrainer_airflow import preload


class PreloadingLocalExecutor(LocalExecutor):
    """LocalExecutor that imports :data:`retrainer_airflow.preload.HEAVY_MODULES` before forking its workers."""

    def start(self) -> None:
        if not preload.enabled():
            self.log.info("retrainer preload: off (%s=0)", preload.DISABLE_ENV)
        elif not self.is_mp_using_fork:
            self.log.info("retrainer preload: skipped, workers are not forked (mp start method is not fork)")
        else:
            seconds = preload.preload()
            slowest = sorted(seconds.items(), key=lambda kv: -kv[1])[:5]
            self.log.info(
                "retrainer preload: %d modules imported in %.1f s before forking workers (slowest: %s)",
                len(seconds),
                sum(seconds.values()),
                ", ".join(f"{name} {s:.1f}s" for name, s in slowest),
            )
        super().start()
