"""The local stack launcher: environment, secrets, password and pid-file handling (no Airflow started)."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retrainer import stack


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_airflow_env_points_everything_at_the_project(tmp_path: Path) -> None:
    root, home = tmp_path / "proj", tmp_path / "proj" / ".airflow"
    root.mkdir()
    env = stack.airflow_env(root, home, port=8123)

    assert env["AIRFLOW_HOME"] == str(home.resolve())
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(root.resolve() / "dags")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(root.resolve() / "plugins")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "True"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "retrainer_airflow.executor.PreloadingLocalExecutor"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://localhost:8123/execution/"
    assert env["AIRFLOW__API__PORT"] == "8123"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{home.resolve() / 'airflow.db'}?timeout=60"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin,viewer:viewer,op:op"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == str(
        home.resolve() / stack.PASSWORDS_FILE
    )
    assert env["RETRAINER_PARAMS"] == str(root.resolve() / "params.yaml")
    assert json.loads(env["AIRFLOW_CONN_FS_DEFAULT"]) == {"conn_type": "fs", "extra": {"path": "/"}}
    assert all(isinstance(v, str) for v in env.values())


def test_airflow_env_options_and_extra(tmp_path: Path) -> None:
    env = stack.airflow_env(
        tmp_path,
        tmp_path / "h",
        executor="CeleryExecutor",
        sql_alchemy_conn="postgresql+psycopg2://u:p@localhost/db",
        extra={"AIRFLOW__CORE__PARALLELISM": "2", "X": "y"},
        params_path=tmp_path / "other.yaml",
    )
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg2://u:p@localhost/db"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "2"
    assert env["X"] == "y"
    assert env["RETRAINER_PARAMS"] == str((tmp_path / "other.yaml").resolve())


def test_secrets_are_generated_once_and_kept_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = stack.airflow_env(tmp_path, home, port=8080)
    second = stack.airflow_env(tmp_path, home, port=9090)  # a port change must not rotate the secrets

    for key in stack.SECRET_KEYS:
        assert first[key] and first[key] == second[key]
    assert len(base64.urlsafe_b64decode(first[stack.FERNET_KEY])) == 32  # a valid Fernet key
    assert first[stack.JWT_SECRET] != first[stack.API_SECRET_KEY]

    env_file = home / stack.ENV_FILE
    assert _mode(env_file) == 0o600
    # The file is the whole environment, sourceable by a shell and read back exactly.
    assert stack.read_env_file(env_file) == second
    shell = subprocess.run(
        ["bash", "-c", f'set -a; . "{env_file}"; set +a; printf %s "$AIRFLOW_CONN_FS_DEFAULT"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(shell.stdout)["conn_type"] == "fs"

    # Another home gets other secrets.
    other = stack.airflow_env(tmp_path, tmp_path / "other", port=8080)
    assert other[stack.JWT_SECRET] != first[stack.JWT_SECRET]


def test_fernet_key_is_accepted_by_cryptography(tmp_path: Path) -> None:
    fernet = pytest.importorskip("cryptography.fernet")
    key = stack.load_or_create_secrets(tmp_path)[stack.FERNET_KEY]
    f = fernet.Fernet(key.encode())
    assert f.decrypt(f.encrypt(b"x")) == b"x"


def test_admin_password_is_generated_once_in_the_simple_auth_manager_file(tmp_path: Path) -> None:
    password = stack.ensure_admin_password(tmp_path)
    path = tmp_path / stack.PASSWORDS_FILE

    assert len(password) == 16 and password.isalnum()
    assert json.loads(path.read_text()) == {"admin": password}
    assert _mode(path) == 0o600
    assert stack.ensure_admin_password(tmp_path) == password

    # Other users already in the file are kept.
    path.write_text(json.dumps({"viewer": "v"}))
    new = stack.ensure_admin_password(tmp_path)
    assert json.loads(path.read_text()) == {"viewer": "v", "admin": new}


def test_a_broken_password_file_is_reported_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / stack.PASSWORDS_FILE
    path.write_text("{not json")
    with pytest.raises(stack.StackError, match="not valid JSON"):
        stack.ensure_admin_password(tmp_path)
    assert path.read_text() == "{not json"


def test_pid_file_round_trip_and_stale_entries(tmp_path: Path) -> None:
    pidf = tmp_path / "run" / "x.pid"
    stack.write_pid(pidf, os.getpid())
    assert stack.read_pid(pidf)[0] == os.getpid()
    assert stack.running_pid(pidf) == os.getpid()

    # A pid whose start time differs is someone else's process (the pid was reused).
    pidf.write_text(f"{os.getpid()}\n1\n")
    if Path("/proc/self/stat").exists():
        assert stack.running_pid(pidf) is None

    # A process that ended.
    done = subprocess.Popen(["true"])
    done.wait()
    stack.write_pid(pidf, done.pid)
    assert stack.running_pid(pidf) is None

    # Garbage and missing files.
    pidf.write_text("not a pid\n")
    assert stack.read_pid(pidf) is None and stack.running_pid(pidf) is None
    assert stack.running_pid(tmp_path / "missing.pid") is None


def _wait_gone(pids: list[int], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(stack.is_alive(p) for p in pids):
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
    proc = stack.start_process("worker", [sys.executable, "-c", script], {}, home)
    assert not proc.reused
    assert proc.log == home / "logs" / "worker.log" and "started by retrainer.stack" in proc.log.read_text()
    assert stack.running_pid(stack.pid_file(home, "worker")) == proc.pid
    assert os.getpgid(proc.pid) == proc.pid  # its own process group
    children = _child_pids(pids_out)

    again = stack.start_process("worker", [sys.executable, "-c", script], {}, home)
    assert again.reused and again.pid == proc.pid

    assert stack.stop(home, timeout=10, out=lambda _: None) == ["worker"]
    assert _wait_gone([proc.pid, *children])
    assert not stack.pid_file(home, "worker").exists()
    assert stack.stop(home, out=lambda _: None) == []


def test_stop_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = stack.start_process("stubborn", ["bash", "-c", "trap '' TERM; sleep 120 & wait"], {}, home)
    time.sleep(0.3)
    messages: list[str] = []
    started = time.monotonic()
    assert stack.stop(home, timeout=1, grace=1, out=messages.append) == ["stubborn"]
    assert time.monotonic() - started < 15
    assert any("SIGKILL" in m for m in messages)
    assert _wait_gone([proc.pid])


def test_down_with_nothing_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert stack.main(["down", "--root", str(tmp_path)]) == 0
    assert "nothing was running" in capsys.readouterr().out


def test_source_is_empty(tmp_path: Path) -> None:
    sa = pytest.importorskip("sqlalchemy")
    url = f"sqlite:///{tmp_path / 'source.db'}"
    assert stack.source_is_empty(url, "events")  # no file
    assert not (tmp_path / "source.db").exists()  # and the check did not create it

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE other (x INTEGER)"))
    assert stack.source_is_empty(url, "events")  # no table
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE events (x INTEGER)"))
    assert stack.source_is_empty(url, "events")  # no rows
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO events VALUES (1)"))
    assert not stack.source_is_empty(url, "events")
    engine.dispose()


def test_run_durations_and_log_formatting() -> None:
    run = {
        "queued_at": "2026-01-01T00:00:00Z",
        "start_date": "2026-01-01T00:00:10.5Z",
        "end_date": "2026-01-01T00:01:10.5Z",
    }
    assert stack._duration(run) == 60
    assert stack._duration(run, "queued_at") == 70.5
    assert stack._duration({"start_date": None, "end_date": None}) is None

    entry = {
        "timestamp": "2026-01-01T12:34:56.789Z",
        "level": "error",
        "event": "Task failed with exception",
        "error_detail": [
            {
                "exc_type": "ValueError",
                "exc_value": "boom",
                "frames": [{"filename": "f.py", "lineno": 3, "name": "g"}],
            }
        ],
    }
    text = stack._format_log_entry(entry)
    assert text.startswith("12:34:56 error")
    assert "f.py:3 in g" in text and "ValueError: boom" in text
    assert stack._format_log_entry("plain line") == "plain line"


def test_a_port_taken_by_someone_else_is_reported(tmp_path: Path) -> None:
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert stack.port_in_use(port)
        with pytest.raises(stack.StackError, match=f"port {port} is taken"):
            stack.start_mlflow(
                "sqlite:///" + str(tmp_path / "m.db"), tmp_path / "art", tmp_path / "home", port
            )
    assert not stack.port_in_use(port)
    assert not stack.pid_file(tmp_path / "home", "mlflow").exists()
