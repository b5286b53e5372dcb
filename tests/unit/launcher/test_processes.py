"""retrainer_launcher.processes: pid files, starting a process in its own session, stopping its family."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from retrainer_launcher import processes


def test_pid_file_round_trip_and_stale_entries(tmp_path: Path) -> None:
    pidf = tmp_path / "run" / "x.pid"
    processes.write_pid(pidf, os.getpid())
    assert processes.read_pid(pidf)[0] == os.getpid()
    assert processes.running_pid(pidf) == os.getpid()

    # A pid whose start time differs is someone else's process (the pid was reused).
    pidf.write_text(f"{os.getpid()}\n1\n")
    if Path("/proc/self/stat").exists():
        assert processes.running_pid(pidf) is None

    # A process that ended.
    done = subprocess.Popen(["true"])
    done.wait()
    processes.write_pid(pidf, done.pid)
    assert processes.running_pid(pidf) is None

    # Garbage and missing files.
    pidf.write_text("not a pid\n")
    assert processes.read_pid(pidf) is None and processes.running_pid(pidf) is None
    assert processes.running_pid(tmp_path / "missing.pid") is None


def _wait_gone(pids: list[int], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(processes.is_alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def _child_pids(script_output: Path) -> list[int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if script_output.exists() and script_output.read_text().strip():
            return [int(p) for p in script_output.read_text().split()]
        time.sleep(0.05)
    raise AssertionError("the test process did not report its children")


def test_start_process_reuses_a_live_one_and_stop_ends_the_whole_family(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pids_out = tmp_path / "children"
    # A leader with a child in its group and a grandchild in a group of its own (like a task).
    script = (
        "import os, subprocess, sys, time\n"
        "a = subprocess.Popen(['sleep', '120'])\n"
        "b = subprocess.Popen(['sleep', '120'], start_new_session=True)\n"
        f"open({str(pids_out)!r}, 'w').write(f'{{a.pid}} {{b.pid}}')\n"
        "time.sleep(120)\n"
    )
    proc = processes.start_process("worker", [sys.executable, "-c", script], {}, home)
    assert not proc.reused
    assert proc.log == home / "logs" / "worker.log" and "started by retrainer_launcher" in proc.log.read_text()
    assert processes.running_pid(processes.pid_file(home, "worker")) == proc.pid
    assert os.getpgid(proc.pid) == proc.pid  # its own process group
    children = _child_pids(pids_out)

    again = processes.start_process("worker", [sys.executable, "-c", script], {}, home)
    assert again.reused and again.pid == proc.pid

    assert processes.stop(home, timeout=10, out=lambda _: None) == ["worker"]
    assert _wait_gone([proc.pid, *children])
    assert not processes.pid_file(home, "worker").exists()
    assert processes.stop(home, out=lambda _: None) == []


def test_stop_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = processes.start_process("stubborn", ["bash", "-c", "trap '' TERM; sleep 120 & wait"], {}, home)
    time.sleep(0.3)
    messages: list[str] = []
    started = time.monotonic()
    assert processes.stop(home, timeout=1, grace=1, out=messages.append) == ["stubborn"]
    assert time.monotonic() - started < 15
    assert any("SIGKILL" in m for m in messages)
    assert _wait_gone([proc.pid])
