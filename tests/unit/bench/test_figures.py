"""bench/figures.py: the documents' figures come from bench/results/latest.json, and --update-latest
refuses to keep a figure whose code changed since it was measured."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from bench import figures, run
from tests.conftest import REPO_ROOT

LATEST = json.loads((REPO_ROOT / "bench" / "results" / "latest.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("document", figures.DOCUMENTS)
def test_the_documents_tables_are_what_latest_json_gives(document):
    text = (REPO_ROOT / document).read_text(encoding="utf-8")
    assert figures.BLOCK.search(text), f"{document} shows no table written by the harness"
    assert figures.render(text, LATEST) == text, (
        f"{document}'s bench tables are not what bench/results/latest.json gives: "
        "run `PYTHONPATH=include:. .venv/bin/python bench/run.py --render`")


@pytest.mark.parametrize("document", figures.DOCUMENTS)
def test_every_figure_quoted_by_hand_is_in_latest_json(document):
    text = (REPO_ROOT / document).read_text(encoding="utf-8")
    assert figures.unbacked_figures(text, LATEST) == [], (
        f"{document} quotes figures that bench/results/latest.json does not hold: put them in a bench block "
        "(bench/figures.py BLOCKS) or drop them")


def test_the_bench_readme_does_not_count_the_suites_expectations_by_hand():
    text = figures.outside_blocks((REPO_ROOT / "bench" / "README.md").read_text(encoding="utf-8"))
    assert not re.search(r"\d+\s+expectations", text)


def test_the_readme_cites_no_uncommitted_result():
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    ignored = [p for p in re.findall(r"bench/results/[\w.-]+", text) if p not in
               ("bench/results/latest.md", "bench/results/latest.json")]
    assert ignored == []


def test_a_copied_or_unmeasured_figure_is_caught():
    text = "A run takes 21.8 s.\n<!-- bench:figures -->\nanything 99.9 s\n<!-- /bench:figures -->\n```\n1 ms\n```\n"
    result = {"figures": [{"value": 31.16, "comparison": "DAG run 56.9 s, 451 MB"}]}
    assert figures.unbacked_figures(text, result) == ["21.8 s"]
    assert figures.unbacked_figures("31.2 s and 56.9 s, 451 MB, -31.16x", result) == []
    assert figures.unbacked_figures("about 460 MB", result) == ["460 MB"]


def test_render_rewrites_blocks_and_refuses_unknown_ones():
    text = "intro\n<!-- bench:misses -->\nold\n<!-- /bench:misses -->\nend\n"
    once = figures.render(text, LATEST)
    assert "old" not in once and once.startswith("intro\n") and once.endswith("<!-- /bench:misses -->\nend\n")
    assert figures.render(once, LATEST) == once
    with pytest.raises(ValueError, match="unknown bench block 'nope'"):
        figures.render("<!-- bench:nope -->\n<!-- /bench:nope -->", LATEST)


def test_the_figures_table_names_the_commit_of_each_figure():
    block = figures.figures_block(LATEST)
    commits = figures.measured_at(LATEST)
    for f in LATEST["figures"]:
        assert figures.value_text(f) in block
    assert all(c[:7] in block for c in commits.values())
    one = {**LATEST, "machine": {**LATEST["machine"], "first_run": None},
           "runs": {k: {kk: vv for kk, vv in v.items() if kk != "commit"} for k, v in LATEST["runs"].items()}}
    assert f"at commit `{LATEST['machine']['git']['commit'][:7]}`" in figures.figures_block(one)
    assert "| commit |" not in figures.figures_block(one)


def test_every_benchmark_has_sources_that_exist():
    assert set(figures.SOURCES) == set(figures.ORDER)
    for name, paths in figures.SOURCES.items():
        for path in paths:
            assert (REPO_ROOT / path).exists(), (name, path)
    assert figures.runner_of("scale_time") == "scale" and figures.runner_of("overhead") == "overhead"


# --- --update-latest refuses stale figures -------------------------------------------------------


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()  # noqa: S603,S607


@pytest.fixture
def repo(tmp_path, monkeypatch):
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@example.com")
    _git(tmp_path, "config", "user.name", "t")
    for path in ("bench/bench_validation.py", "bench/bench_drift.py", "include/retrainer/validate.py", "README.md"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("v1\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "one")
    monkeypatch.setattr(figures, "SOURCES", {"validation": ("bench/bench_validation.py", "include/retrainer/"),
                                             "drift": ("bench/bench_drift.py",)})
    return tmp_path


def _latest(commit: str) -> dict:
    return {"machine": {"git": {"commit": commit}},
            "runs": {"validation": {"wall_s": 1}, "drift": {"wall_s": 1}}}


def test_update_is_refused_when_a_kept_figures_code_changed_since_its_commit(repo):
    measured = _git(repo, "rev-parse", "HEAD")
    assert figures.update_refusal(repo, _latest(measured), ["drift"]) is None
    (repo / "README.md").write_text("v2\n")  # not a source of any figure
    _git(repo, "commit", "-qam", "docs")
    assert figures.update_refusal(repo, _latest(measured), ["drift"]) is None
    (repo / "include/retrainer/validate.py").write_text("v2\n")
    _git(repo, "commit", "-qam", "validate changed")
    message = figures.update_refusal(repo, _latest(measured), ["drift"])
    assert message.startswith("not updating latest")
    assert f"validation: changed since {measured[:12]}: include/retrainer/validate.py" in message
    assert figures.update_refusal(repo, _latest(measured), ["drift", "validation"]) is None  # re-measured: fine


def test_a_figure_re_measured_later_is_judged_by_its_own_commit(repo):
    first = _git(repo, "rev-parse", "HEAD")
    (repo / "bench/bench_validation.py").write_text("v2\n")
    _git(repo, "commit", "-qam", "validation bench changed")
    latest = _latest(_git(repo, "rev-parse", "HEAD"))
    latest["machine"]["first_run"] = {"git": {"commit": first}}
    latest["runs"]["validation"]["commit"] = latest["machine"]["git"]["commit"]
    assert figures.update_refusal(repo, latest, ["drift"]) is None
    (repo / "bench/bench_drift.py").write_text("v2\n")
    _git(repo, "commit", "-qam", "drift bench changed")
    assert "drift: changed since" in figures.update_refusal(repo, latest, ["validation"])


def test_an_unknown_commit_or_uncommitted_code_is_refused(repo):
    message = figures.update_refusal(repo, _latest("0" * 40), ["drift"])
    assert "validation: commit 000000000000 is not in this repository" in message
    measured = _git(repo, "rev-parse", "HEAD")
    (repo / "bench/bench_drift.py").write_text("work in progress\n")
    message = figures.update_refusal(repo, _latest(measured), ["drift"])
    assert "uncommitted changes" in message and "bench/bench_drift.py" in message


def test_run_refuses_before_measuring(monkeypatch, capsys):
    monkeypatch.setattr(figures, "update_refusal", lambda root, previous, names: "not updating latest: because")
    monkeypatch.setattr(run, "collect", lambda *a: pytest.fail("measured although refused"))
    monkeypatch.setattr("sys.argv", ["run.py", "--only", "drift", "--update-latest"])
    assert run.main() == 2
    assert "not updating latest: because" in capsys.readouterr().err
