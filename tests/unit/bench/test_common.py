"""bench/common.py: the environment every figure's processes run in."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.common import ROOT


def test_the_benchmarks_processes_cache_their_bytecode_whatever_the_caller_set() -> None:
    probe = "from bench.common import ENV; print('PYTHONDONTWRITEBYTECODE' in ENV)"
    done = subprocess.run([sys.executable, "-c", probe], env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
                          cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
