"""retrainer_launcher.local: starting the local stack's servers (no Airflow started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrainer_launcher import local, processes
from retrainer_launcher.common import StackError


def test_a_port_taken_by_someone_else_is_reported(tmp_path: Path) -> None:
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert processes.port_in_use(port)
        with pytest.raises(StackError, match=f"port {port} is taken"):
            local.start_mlflow(
                "sqlite:///" + str(tmp_path / "m.db"), tmp_path / "art", tmp_path / "home", port
            )
    assert not processes.port_in_use(port)
    assert not processes.pid_file(tmp_path / "home", "mlflow").exists()
