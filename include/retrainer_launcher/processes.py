"""Processes of a stack: each in its own session, with a log file and a pid file under its home.

``<home>/run/<name>.pid`` holds the pid and its start time (to tell a reused pid from ours), and
``<home>/logs/<name>.log`` the process's output. :func:`stop` ends every process with a pid file, and
everything they started, the way systemd's KillMode=mixed does.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from retrainer_launcher.common import BIND_HOST, Out, StackError, say

# Starts each run's section of a process log (the text after the last one is the current run's).
START_MARKER = "started by retrainer_launcher"


def run_dir(home: Path) -> Path:
    return home / "run"


def log_dir(home: Path) -> Path:
    return home / "logs"


def pid_file(home: Path, name: str) -> Path:
    return run_dir(home) / f"{name}.pid"


def log_file(home: Path, name: str) -> Path:
    return log_dir(home) / f"{name}.log"


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text[-lines:])


@dataclass
class Process:
    name: str
    pid: int
    log: Path
    reused: bool = False


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from field 3 (state) on, or None where /proc is missing."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def _start_time(pid: int) -> str | None:
    stat = _proc_stat(pid)
    return stat[19] if stat else None  # field 22: starttime, in clock ticks since boot


def is_alive(pid: int) -> bool:
    """True if ``pid`` runs (zombies, which nothing reaps in some containers, count as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _proc_stat(pid)
    return not (stat and stat[0] in ("Z", "X"))


def write_pid(path: Path, pid: int) -> None:
    """Write ``pid`` and its start time (to tell a reused pid from ours later)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n{_start_time(pid) or ''}\n")


def read_pid(path: Path) -> tuple[int, str | None] | None:
    try:
        words = path.read_text().split()
        return int(words[0]), (words[1] if len(words) > 1 else None)
    except (OSError, ValueError, IndexError):
        return None


def running_pid(path: Path) -> int | None:
    """The pid in ``path`` if that process still runs and is the one we started, else None."""
    entry = read_pid(path)
    if entry is None:
        return None
    pid, started = entry
    if not is_alive(pid):
        return None
    if started is not None and _start_time(pid) not in (None, started):
        return None  # the pid was reused by another process
    return pid


def start_process(
    name: str, argv: list[str], env: dict[str, str], home: Path, cwd: Path | None = None
) -> Process:
    """Start ``argv`` in its own session, logging to ``<home>/logs/<name>.log``; reuse a live one."""
    pidf, logf = pid_file(home, name), log_file(home, name)
    pid = running_pid(pidf)
    if pid is not None:
        return Process(name, pid, logf, reused=True)
    logf.parent.mkdir(parents=True, exist_ok=True)
    with open(logf, "ab") as log:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        log.write(f"\n=== {stamp} {START_MARKER}: {shlex.join(argv)}\n".encode())
        log.flush()
        # argv comes from the launcher (Airflow/MLflow executables of the venv, the compose file's
        # commands) and runs without a shell.
        proc = subprocess.Popen(  # noqa: S603
            argv,
            env={**os.environ, **env},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: `stop` signals the whole group
        )
    write_pid(pidf, proc.pid)
    return Process(name, proc.pid, logf)


def run_logged(argv: list[str], env: dict[str, str], logf: Path, cwd: Path | None = None) -> int:
    """Run ``argv`` to its end with its output appended to ``logf``; its exit code."""
    logf.parent.mkdir(parents=True, exist_ok=True)
    with open(logf, "ab") as log:
        done = subprocess.run(  # noqa: S603 - argv from the launcher (or the compose file), no shell
            argv,
            env={**os.environ, **env},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return done.returncode


def venv_bin(name: str) -> str:
    """An executable of the running interpreter's environment (the venv), else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise StackError(f"`{name}` not found next to {sys.executable} nor on PATH: run `make setup`")
    return found


def port_in_use(port: int, host: str = BIND_HOST) -> bool:
    """True if something accepts connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def check_port_free(name: str, home: Path, port: int, host: str = BIND_HOST) -> None:
    """Before starting ``name`` anew, make sure no other server answers on its port (the health
    checks would otherwise talk to that one)."""
    if running_pid(pid_file(home, name)) is None and port_in_use(port, host):
        raise StackError(
            f"port {port} is taken by another process, so {name} cannot start: stop that process or "
            f"pick another port (make run API_PORT=... MLFLOW_PORT=...)"
        )


# --------------------------------------------------------------------------------------------------
# Stopping: the main processes first, then whatever is left of their families
# --------------------------------------------------------------------------------------------------


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, pgid) of every live, non-zombie process (empty where /proc is missing)."""
    table: dict[int, tuple[int, int]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return table
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(int(entry.name))
        if stat and stat[0] not in ("Z", "X"):
            table[int(entry.name)] = (int(stat[1]), int(stat[2]))
    return table


def _family(leaders: Iterable[int]) -> tuple[set[int], set[int]]:
    """All live processes of the leaders' groups and their descendants: (pids, process groups).

    Airflow's task supervisor puts each task in a process group of its own, so the tree matters
    as well as the group.
    """
    table = _process_table()
    leaders = set(leaders)
    groups = {table[p][1] for p in leaders if p in table} | leaders
    pids = {p for p, (_, pgid) in table.items() if pgid in groups} | {p for p in leaders if is_alive(p)}
    children: dict[int, list[int]] = {}
    for p, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(p)
    todo = list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in pids:
                pids.add(child)
                todo.append(child)
    groups |= {table[p][1] for p in pids if p in table}
    own = {os.getpid(), os.getpgrp()}
    return pids - own, groups - own


def _signal_all(pids: set[int], groups: set[int], sig: int) -> None:
    for group in groups:
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _survivors(pids: set[int], groups: set[int]) -> set[int]:
    """Which of ``pids``, or of any process in ``groups``, still run."""
    table = _process_table()
    if not table:  # no /proc: ask the kernel about each pid
        return {p for p in pids if is_alive(p)}
    own = {os.getpid()}
    return ({p for p in pids if p in table} | {p for p, (_, g) in table.items() if g in groups}) - own


def _wait_until_gone(pids: set[int], groups: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    left = _survivors(pids, groups)
    while left and time.monotonic() < deadline:
        time.sleep(0.25)
        left = _survivors(pids, groups)
    return left


def stop(home: Path, timeout: float = 30.0, grace: float = 5.0, out: Out = say) -> list[str]:
    """Stop every process with a pid file under ``<home>/run``; remove the pid files.

    Like systemd's KillMode=mixed: SIGTERM to each main process first, so the scheduler can shut
    its executor down in order; after up to ``timeout`` seconds, SIGTERM to whatever is left of their
    process groups and descendants (Airflow's task supervisor puts each task in a group of its own),
    and SIGKILL to what is still there ``grace`` seconds later. Returns the names that were running.
    """
    leaders: dict[str, int] = {}
    files = sorted(run_dir(home).glob("*.pid")) if run_dir(home).is_dir() else []
    for pidf in files:
        pid = running_pid(pidf)
        if pid is not None:
            leaders[pidf.stem] = pid
    if leaders:
        out("stopping " + ", ".join(f"{n} (pid {p})" for n, p in leaders.items()))
        mains = set(leaders.values())
        family, groups = _family(mains)  # before the mains exit and their children are re-parented
        _signal_all(mains, set(), signal.SIGTERM)
        _wait_until_gone(mains, set(), timeout)
        left = _survivors(family, groups)
        if left:
            _signal_all(left, groups, signal.SIGTERM)
            left = _wait_until_gone(left, groups, grace)
        if left:
            out(f"still running, sending SIGKILL to {sorted(left)}")
            _signal_all(left, groups, signal.SIGKILL)
            _wait_until_gone(left, groups, 10)
    for pidf in files:
        pidf.unlink(missing_ok=True)
    return list(leaders)
