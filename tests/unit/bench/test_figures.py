"""bench/figures.py: the documents' figures come from bench/results/latest.json."""

from __future__ import annotations

import json
import re

import pytest

from bench import figures
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


def test_figures_are_told_apart_by_benchmark():
    assert figures.runner_of("scale_time") == "scale" and figures.runner_of("overhead") == "overhead"
