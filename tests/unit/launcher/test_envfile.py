"""retrainer_launcher.envfile: one reader (python-dotenv) for Compose's .env and the launcher's own files."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrainer_launcher import envfile


def test_read_dotenv(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# comment\n\nA=1\nexport B='two words'\nC=\"x=y\"\nD=\n")
    assert envfile.read_env_file(env) == {"A": "1", "B": "two words", "C": "x=y", "D": ""}
    assert envfile.read_env_file(tmp_path / "missing") == {}
    env.write_text("not a pair\n")
    with pytest.raises(envfile.EnvFileError, match=r"\.env:1: expected KEY=value"):
        envfile.read_env_file(env)


@pytest.mark.parametrize(
    "value",
    ["", "plain", "two words", '{"conn_type": "fs", "extra": {"path": "/"}}', "sqlite:///a b/c.db?timeout=60",
     "it's", 'quote " and \\ backslash', "a\\nb", "trailing\\", "$HOME and ${X:-y}", "#not a comment", "x # y"],
)
def test_what_is_written_is_read_back_and_sourced_by_a_shell(tmp_path: Path, value: str) -> None:
    import subprocess

    path = tmp_path / "x.env"
    envfile.write_env_file(path, {"V": value, "W": "w"})
    assert envfile.read_env_file(path) == {"V": value, "W": "w"}
    shell = subprocess.run(
        ["bash", "-c", f'set -a; . "{path}"; set +a; printf %s "$V"'], capture_output=True, text=True, check=True
    )
    assert shell.stdout == value


def test_a_value_no_shell_word_can_hold_for_both_readers_is_refused(tmp_path: Path) -> None:
    with pytest.raises(envfile.EnvFileError, match="both a quote and a"):
        envfile.write_env_file(tmp_path / "x.env", {"V": "it's $HOME"})
    assert not (tmp_path / "x.env").exists()


def test_the_env_example_reads_as_before(tmp_path: Path) -> None:
    """.env.example: every secret named, empty (Compose's wording for a missing value needs them empty)."""
    from retrainer_launcher import topology
    from tests.conftest import REPO_ROOT

    values = envfile.read_env_file(REPO_ROOT / ".env.example")
    assert values == {name: "" for name in topology.SECRET_VARIABLES}
