"""retrainer_launcher.topology: Compose-style interpolation, the login file, the workers' host names;
the deployment overrides of params.yaml that the topology sets."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from retrainer_launcher import topology
from tests.conftest import REPO_ROOT, write_project

VARS = {"A": "a", "EMPTY": "", "N": "5"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("$A-${A}", "a-a"),
        ("$$A and $${A}", "$A and ${A}"),
        ("${MISSING:-dflt}", "dflt"),
        ("${EMPTY:-dflt}", "dflt"),
        ("${EMPTY-dflt}", ""),
        ("${MISSING-dflt}", "dflt"),
        ("${A:+alt}${EMPTY:+alt}${EMPTY+set}", "altset"),
        ("${MISSING:-${A}/x}", "a/x"),
        ("${MISSING:-${ALSO_MISSING:-deep}}", "deep"),
        ("redis://u:${A}@h:${PORT:-6379}/${N}", "redis://u:a@h:6379/5"),
        ("$MISSING.", "."),
        ("cost: 5$", "cost: 5$"),
    ],
)
def test_interpolation_follows_compose(text: str, expected: str) -> None:
    assert topology.interpolate(text, VARS) == expected


def test_required_variables_name_themselves() -> None:
    with pytest.raises(topology.TopologyError, match="required variable SECRET is missing a value: set it"):
        topology.interpolate("x${SECRET:?set it}", VARS, "services.x.environment.Y")
    with pytest.raises(topology.TopologyError, match="EMPTY is missing"):
        topology.interpolate("${EMPTY:?}", VARS)
    assert topology.interpolate("${EMPTY?}", VARS) == ""  # set, even if empty
    with pytest.raises(topology.TopologyError, match="unterminated"):
        topology.interpolate("${A:-x", VARS)
    with pytest.raises(topology.TopologyError, match="invalid variable"):
        topology.interpolate("${1A}", VARS)


def test_the_compose_file_has_no_default_secrets() -> None:
    """Every secret is required: with none of them set, resolving names the first missing one."""
    with pytest.raises(topology.TopologyError, match="required variable .* is missing a value"):
        topology.services(REPO_ROOT / topology.COMPOSE_FILE, {})
    text = (REPO_ROOT / topology.COMPOSE_FILE).read_text()
    for name in topology.SECRET_VARIABLES:
        assert f"${{{name}:?" in text, f"{name} must be required (${{{name}:?...}}) in the compose file"
        assert f"${{{name}:-" not in text, f"{name} must not have a default in the compose file"


def test_write_passwords_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    target = tmp_path / "auth" / "passwords.json"
    written = topology.write_passwords_file(
        target, {"AIRFLOW_ADMIN_PASSWORD": "a\"b", "AIRFLOW_OP_PASSWORD": "o", "AIRFLOW_VIEWER_PASSWORD": "v"}
    )
    assert json.loads(target.read_text()) == written == {"admin": 'a"b', "op": "o", "viewer": "v"}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with pytest.raises(topology.TopologyError, match="AIRFLOW_VIEWER_PASSWORD is not set"):
        topology.write_passwords_file(target, {"AIRFLOW_ADMIN_PASSWORD": "a", "AIRFLOW_OP_PASSWORD": "o"})

    monkeypatch.setenv(topology.PASSWORDS_FILE_KEY, str(target))
    monkeypatch.setenv("AIRFLOW_ADMIN_PASSWORD", "new")
    monkeypatch.setenv("AIRFLOW_OP_PASSWORD", "ops")
    monkeypatch.setenv("AIRFLOW_VIEWER_PASSWORD", "view")
    assert topology.main(["write-passwords"]) == 0
    assert json.loads(target.read_text()) == {"admin": "new", "op": "ops", "viewer": "view"}
    assert "new" not in capsys.readouterr().out  # the command never prints a password
    assert topology.main(["other"]) == 2


def test_worker_hostname(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRAINER_WORKER_HOSTNAME", "127.0.0.2")
    assert topology.worker_hostname() == "127.0.0.2"
    monkeypatch.delenv("RETRAINER_WORKER_HOSTNAME")
    assert topology.worker_hostname()


def test_deployment_overrides_of_params(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The endpoints a deployment sets in its environment win over params.yaml; the rest stays."""
    from retrainer.config import load_params

    params = load_params(write_project(tmp_path / "project"))
    assert params.tracking_uri.startswith("sqlite:///")
    # mlflow.set_tracking_uri() writes MLFLOW_TRACKING_URI into os.environ: it must not leak in.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere.db")
    assert params.tracking_uri.startswith(f"sqlite:///{tmp_path}")
    monkeypatch.setenv("RETRAINER_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv("RETRAINER_SOURCE_URL", "postgresql+psycopg://u:p@db/source")
    monkeypatch.setenv("RETRAINER_DVC_REMOTE_URL", "s3://bucket/dvc")
    assert params.tracking_uri == "http://mlflow:5000"
    assert params.source_url == "postgresql+psycopg://u:p@db/source"
    assert params.dvc_remote_url == "s3://bucket/dvc"
