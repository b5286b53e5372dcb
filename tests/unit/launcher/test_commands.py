"""retrainer_launcher.commands: the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrainer_launcher import commands


def test_down_with_nothing_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert commands.main(["down", "--root", str(tmp_path)]) == 0
    assert "nothing was running" in capsys.readouterr().out


def test_stop_and_status_need_only_the_standard_library(tmp_path: Path) -> None:
    """`make stop` / `make status` run without the venv: no site-packages, the project's include/ only."""
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT / "include")}
    check = (
        "import sys, retrainer_launcher.commands, retrainer_launcher.topology, retrainer_launcher.airflow_env\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'yaml', 'dotenv', 'sqlalchemy', 'airflow'}))"
    )
    imported = subprocess.run([sys.executable, "-S", "-c", check], env=env, capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "[]"
    for command in (["down"], ["status", "--api-port", "1", "--mlflow-port", "1"]):
        done = subprocess.run(
            [sys.executable, "-S", "-m", "retrainer_launcher", *command, "--root", str(tmp_path)],
            env=env, capture_output=True, text=True, timeout=60,
        )
        assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr
        assert "nothing was running" in done.stdout or "not running" in done.stdout
