"""Shared pieces of the benchmark harness: figures, the machine, peak memory, growth ratios."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PYTHON = sys.executable
# Every subprocess of the harness sees the worktree's code first, and stays offline and quiet.
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    ),
    "GX_ANALYTICS_ENABLED": "False",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
}
for _name in ("RETRAINER_TRACKING_URI", "RETRAINER_SOURCE_URL", "RETRAINER_DVC_REMOTE_URL", "RETRAINER_PARAMS"):
    ENV.pop(_name, None)
# The figures measure code as a deployment runs it, its bytecode cached after the first import. A
# caller's PYTHONDONTWRITEBYTECODE (common in CI images and containers) makes every fresh process
# compile the project's modules again: about 0.3 s of each DAG file's parse on this machine.
ENV.pop("PYTHONDONTWRITEBYTECODE", None)

PACKAGES = ("apache-airflow", "great_expectations", "mlflow", "evidently", "dvc", "pandas", "numpy", "pyarrow",
            "scikit-learn", "scipy", "sqlalchemy")
SEED = 42  # retrainer.datagen seed of every generated table (params.yaml project.seed)


@dataclass
class Figure:
    """One line of the results table: a ratio with what it was measured against, in the same run."""

    id: str
    name: str
    value: float | None
    unit: str  # "x" (a ratio) or "s" only inside curves, never as the headline
    comparison: str  # the measurements the ratio is made of, from this run
    target: str  # human form, e.g. "<= 1.25"
    op: str  # "<=", ">=", "<" or "" (reported, no target)
    bound: float | None
    details: dict[str, Any] = field(default_factory=dict)
    passed: bool | None = None

    def __post_init__(self) -> None:
        if self.passed is None and self.op and self.value is not None and self.bound is not None:
            self.passed = {"<=": self.value <= self.bound, ">=": self.value >= self.bound,
                           "<": self.value < self.bound, ">": self.value > self.bound}[self.op]

    def to_dict(self) -> dict:
        return asdict(self)


def git_commit() -> dict:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()  # noqa: S603,S607
        except (OSError, subprocess.CalledProcessError):
            return ""

    return {"commit": git("rev-parse", "HEAD"), "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def machine() -> dict:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "git": git_commit(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def growth_per_10x(n1: float, t1: float, n2: float, t2: float) -> float | None:
    """The factor ``t`` grows by per 10x ``n``, from two points (a power law between them)."""
    if min(n1, n2, t1, t2) <= 0 or n1 == n2:
        return None
    exponent = math.log(t2 / t1) / math.log(n2 / n1)
    return 10**exponent


# --- memory -----------------------------------------------------------------------------------


def _status_kb(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def reset_peak_rss() -> int:
    """Reset this process's peak resident size (Linux: clear_refs 5) and return the current RSS in kB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status_kb("VmRSS")


def peak_rss_kb() -> int:
    """Peak resident size since the last :func:`reset_peak_rss` (VmHWM), in kB."""
    return _status_kb("VmHWM")


@dataclass
class Timed:
    wall: float
    cpu: float
    peak_rss_mb: float | None = None


def run_timed(argv: list[str], *, env: dict | None = None, cwd: Path | None = None, timeout: float | None = None,
              log: Path | None = None) -> tuple[subprocess.CompletedProcess, Timed]:
    """Run ``argv`` under ``/usr/bin/time -v``: wall seconds, CPU seconds (user+sys) and peak RSS of the
    largest process in its tree. Falls back to getrusage(RUSAGE_CHILDREN) where GNU time is missing."""
    gnu_time = Path("/usr/bin/time")
    fd, stats_name = tempfile.mkstemp(prefix="bench-time-", suffix=".txt")
    os.close(fd)
    stats = Path(stats_name)
    full = [str(gnu_time), "-v", "-o", str(stats), *argv] if gnu_time.exists() else argv
    before = os.times()
    started = time.perf_counter()
    done = subprocess.run(full, env=env or ENV, cwd=cwd, capture_output=True, text=True, timeout=timeout)  # noqa: S603
    wall = time.perf_counter() - started
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    peak = None
    if stats.exists() and stats.stat().st_size:
        for line in stats.read_text().splitlines():
            if "Maximum resident set size" in line:
                peak = int(line.rsplit(":", 1)[1]) / 1024
    else:
        import resource

        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    stats.unlink(missing_ok=True)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"$ {' '.join(argv)}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}\n")
    return done, Timed(wall, cpu, peak)


def frame_mb(frame) -> float:
    return float(frame.memory_usage(deep=True).sum()) / 1024 / 1024


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"
