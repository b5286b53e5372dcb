"""retrainer_launcher.credentials: the local stack's secrets and passwords, generated once and kept private."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
from pathlib import Path

import pytest

from retrainer_launcher import airflow_env, credentials, envfile
from retrainer_launcher.common import StackError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_are_generated_once_and_kept_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = airflow_env.airflow_env(tmp_path, home, port=8080)
    second = airflow_env.airflow_env(tmp_path, home, port=9090)  # a port change must not rotate the secrets

    for key in credentials.SECRET_KEYS:
        assert first[key] and first[key] == second[key]
    assert len(base64.urlsafe_b64decode(first[credentials.FERNET_KEY])) == 32  # a valid Fernet key
    assert first[credentials.JWT_SECRET] != first[credentials.API_SECRET_KEY]

    env_file = home / credentials.ENV_FILE
    assert _mode(env_file) == 0o600
    # The file is the whole environment, sourceable by a shell and read back exactly.
    assert envfile.read_env_file(env_file) == second
    shell = subprocess.run(
        ["bash", "-c", f'set -a; . "{env_file}"; set +a; printf %s "$AIRFLOW_CONN_FS_DEFAULT"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(shell.stdout)["conn_type"] == "fs"

    # Another home gets other secrets.
    other = airflow_env.airflow_env(tmp_path, tmp_path / "other", port=8080)
    assert other[credentials.JWT_SECRET] != first[credentials.JWT_SECRET]


def test_fernet_key_is_accepted_by_cryptography(tmp_path: Path) -> None:
    fernet = pytest.importorskip("cryptography.fernet")
    key = credentials.load_or_create_secrets(tmp_path)[credentials.FERNET_KEY]
    f = fernet.Fernet(key.encode())
    assert f.decrypt(f.encrypt(b"x")) == b"x"


def test_admin_password_is_generated_once_in_the_simple_auth_manager_file(tmp_path: Path) -> None:
    password = credentials.ensure_admin_password(tmp_path)
    path = tmp_path / credentials.PASSWORDS_FILE

    assert len(password) == 16 and password.isalnum()
    assert json.loads(path.read_text()) == {"admin": password}
    assert _mode(path) == 0o600
    assert credentials.ensure_admin_password(tmp_path) == password

    # Other users already in the file are kept.
    path.write_text(json.dumps({"viewer": "v"}))
    new = credentials.ensure_admin_password(tmp_path)
    assert json.loads(path.read_text()) == {"viewer": "v", "admin": new}


def test_a_broken_password_file_is_reported_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / credentials.PASSWORDS_FILE
    path.write_text("{not json")
    with pytest.raises(StackError, match="not valid JSON"):
        credentials.ensure_admin_password(tmp_path)
    assert path.read_text() == "{not json"
