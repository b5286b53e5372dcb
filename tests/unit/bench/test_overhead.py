"""bench/bench_overhead.py: the plain process the DAG run is compared with imports what run_pipeline imports."""

from __future__ import annotations

import subprocess
import sys

from bench.bench_overhead import HEAVY_PACKAGES, PLAIN_CODE, import_seconds
from bench.common import ENV

IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       100 |        100 |   _io
import time:       200 |        300 | encodings
import time:        50 |         50 |     encodings.aliases
import time:      1000 |       4000 | pandas
import time:      3000 |       3000 |   numpy
some other stderr line
import time:       500 |        500 | pyarrow.parquet
"""


def test_import_seconds_sums_the_imports_not_nested_in_another():
    # _io is nested (two spaces), encodings.aliases deeper: only encodings, pandas, pyarrow.parquet count.
    assert import_seconds(IMPORTTIME) == (300 + 4000 + 500) / 1e6
    assert import_seconds("") == 0


def test_the_plain_process_preloads_nothing_the_pipeline_does_not_import():
    assert "preload" not in PLAIN_CODE and "retrainer_airflow" not in PLAIN_CODE
    assert "from retrainer.pipeline import run_pipeline" in PLAIN_CODE
    assert "evidently" in HEAVY_PACKAGES  # listed, so the report shows it is absent
    # What the plain process has imported before run_pipeline starts: the pipeline and its config, none of
    # the drift check's, scoring's or Airflow's modules (the steps import their libraries when they run).
    before_run = PLAIN_CODE.split(" out = run_pipeline", 1)[0] + " import json as _j; print(_j.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", before_run], env=ENV, capture_output=True, text=True, check=True)  # noqa: S603
    modules = set(done.stdout.split('"')[1::2])
    assert "retrainer.pipeline" in modules
    unused = {m for m in modules if m.split(".")[0] in ("evidently", "airflow", "retrainer_airflow")
              or m.startswith(("retrainer.drift", "retrainer.monitor", "retrainer.scoring"))}
    assert not unused
