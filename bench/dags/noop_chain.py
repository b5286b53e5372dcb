"""noop_chain: six chained no-op tasks, the yardstick of Airflow's own per-task cost (bench/bench_overhead.py).

Wiring only, no imports beyond the SDK: each task does nothing, so a run's duration is what the
scheduler, the executor and the task processes cost on their own.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import chain, dag, task


@dag(dag_id="noop_chain", schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["bench"])
def noop_chain():
    @task
    def step(number: int) -> int:
        return number

    chain(*(step.override(task_id=f"noop_{i}")(i) for i in range(1, 7)))


noop_chain()
