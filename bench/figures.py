"""What a figure of ``bench/results/latest.json`` measures, and the documents' tables made from it.

* :data:`SOURCES`: the files each benchmark measures (its script, the code it runs, the pin set). A figure
  is *stale* when one of them changed between the commit it was measured at and HEAD;
  ``bench/run.py --update-latest`` refuses to keep stale figures beside re-measured ones
  (:func:`update_refusal`).
* :func:`render`: the blocks between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` in README.md and
  bench/README.md are written from latest.json (:data:`BLOCKS`); nothing else in them quotes a figure.
  ``bench/run.py --render`` rewrites them (and latest.md) without measuring;
  ``tests/unit/bench/test_figures.py`` fails when they are not what latest.json gives, or when a number
  quoted outside them is not in latest.json.
"""

from __future__ import annotations

import functools
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from bench.common import fmt

DOCUMENTS = ("README.md", "bench/README.md")
ORDER = ("overhead", "parse", "scale", "validation", "drift", "backfill")

_LIBRARY = ("include/retrainer/", "requirements.txt", "bench/common.py")
_STACK = ("dags/", "plugins/", "include/retrainer_airflow/", "include/retrainer_launcher/", "models/",
          "validation_suites/", "tests/conftest.py", "tests/integration/scheduler_stack.py")
SOURCES: dict[str, tuple[str, ...]] = {
    "overhead": ("bench/bench_overhead.py", "bench/dags/", *_LIBRARY, *_STACK),
    "parse": ("bench/bench_parse.py", "dags/", "plugins/", "include/", "requirements.txt", "bench/common.py"),
    "scale": ("bench/bench_scale.py", *_LIBRARY, "include/retrainer_airflow/preload.py", "models/",
              "validation_suites/", "tests/conftest.py"),
    "validation": ("bench/bench_validation.py", *_LIBRARY, "validation_suites/"),
    "drift": ("bench/bench_drift.py", "bench/drift_cases.py", *_LIBRARY),
    "backfill": ("bench/backfill_concurrency.py", *_LIBRARY, *_STACK),
}


def runner_of(figure_id: str) -> str:
    """The benchmark a figure comes from (``scale_time`` -> ``scale``)."""
    return next((name for name in ORDER if figure_id == name or figure_id.startswith(name + "_")), figure_id)


def measured_at(result: dict) -> dict[str, str]:
    """Benchmark -> the commit its figures were measured at (a re-measured one records its own)."""
    m = result["machine"]
    base = (m.get("first_run") or m)["git"]["commit"]
    return {name: run.get("commit") or base for name, run in result["runs"].items()}


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)  # noqa: S603,S607


def changed_since(root: Path, commit: str, paths: tuple[str, ...]) -> list[str] | None:
    """Files of ``paths`` that differ between ``commit`` and HEAD (committed changes); None when this
    repository does not have ``commit``."""
    if not commit or _git(root, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        return None
    done = _git(root, "diff", "--name-only", commit, "HEAD", "--", *paths)
    if done.returncode != 0:
        return None
    return sorted(done.stdout.split())


def uncommitted(root: Path, paths: tuple[str, ...]) -> list[str]:
    """Tracked files of ``paths`` with changes not committed (a figure would record the wrong commit)."""
    done = _git(root, "status", "--porcelain", "--untracked-files=no", "--", *paths)
    return sorted(line[3:] for line in done.stdout.splitlines() if line.strip())


def stale(root: Path, result: dict, names: list[str]) -> dict[str, tuple[str, list[str] | None]]:
    """Of benchmarks ``names`` in ``result``: name -> (commit, changed files, or None for an unknown commit),
    for those whose code changed since their commit."""
    commits = measured_at(result)
    found = {}
    for name in names:
        commit = commits.get(name, "")
        changed = changed_since(root, commit, SOURCES.get(name, ("",)))
        if changed is None or changed:
            found[name] = (commit, changed)
    return found


def _files(files: list[str], limit: int = 12) -> str:
    return ", ".join(files[:limit]) + (f" and {len(files) - limit} more" if len(files) > limit else "")


def update_refusal(root: Path, previous: dict, remeasure: list[str]) -> str | None:
    """Why ``--update-latest --only <remeasure>`` must not run, or None.

    Refused when a figure it would keep measures code changed since the commit it was measured at (the
    table would mix figures of different code), or when the code of a figure it re-measures has
    uncommitted changes (the figure would name a commit that is not its code)."""
    kept = [name for name in previous["runs"] if name not in remeasure]
    problems = []
    for name, (commit, files) in stale(root, previous, kept).items():
        why = (f"commit {commit[:12] or '?'} is not in this repository" if files is None
               else f"changed since {commit[:12]}: {_files(files)}")
        problems.append(f"  {name}: {why}")
    dirty = uncommitted(root, tuple(p for name in remeasure for p in SOURCES.get(name, ())))
    if problems:
        return ("not updating latest: the code these figures measure changed since they were measured, so "
                "latest.md would mix figures of different code. Re-measure them too (add them to --only) or "
                "run the full `make bench`:\n" + "\n".join(problems))
    if dirty:
        return ("not updating latest: uncommitted changes in files the re-measured figures measure (commit "
                f"them first: a figure records the commit it was measured at): {_files(dirty)}")
    return None


# --- the documents' blocks ------------------------------------------------------------------------


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def value_text(figure: dict) -> str:
    if figure["value"] is None:
        return "n/a"
    return f"{fmt(figure['value'])}{'x' if figure['unit'] == 'x' else ' ' + figure['unit']}"


def processes_minutes(result: dict) -> float:
    """Minutes the figures' own processes took, summed (a partial update's duration is only its own)."""
    return sum(run["wall_s"] for run in result["runs"].values()) / 60


def figures_block(result: dict) -> str:
    m = result["machine"]
    commits = measured_at(result)
    one_commit = len(set(commits.values())) == 1
    where = (f"at commit `{next(iter(commits.values()))[:7]}`" if one_commit
             else "each row at the commit in its last column")
    head = (f"From `bench/results/latest.json` ({result['mode']} run, {result['finished'][:10]}; {m['cores']} cores, "
            f"{m['cpu']}, {m['memory_gib']} GiB; the figures' processes took {processes_minutes(result):.0f} min, "
            f"{where}). Details: `bench/results/latest.md`.")
    lines = [head, "", "| # | figure | value | target | result |" + ("" if one_commit else " commit |"),
             "|---|---|---|---|---|" + ("" if one_commit else "---|")]
    for i, f in enumerate(result["figures"], 1):
        verdict = {True: "pass", False: "**miss**", None: "reported"}[f["passed"]]
        row = f"| {i} | {_cell(f['name'])} | {value_text(f)} | {_cell(f['target'])} | {verdict} |"
        lines.append(row + ("" if one_commit else f" `{commits.get(runner_of(f['id']), '?')[:7]}` |"))
    return "\n".join(lines)


def _overhead(r: dict, path: str):
    value = r
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


# label -> where in one executor's overhead result (bench_overhead.measure); the README shows the first rows.
OVERHEAD_ROWS: tuple[tuple[str, str], ...] = (
    ("DAG run, start to end", "dag.seconds"),
    ("plain process (`run_pipeline`, imports included)", "plain.seconds"),
    ("no-op chain of 6 (mean of 2 runs)", "noop_chain_s"),
    ("(DAG - plain) / no-op", "ratio"),
    ("... plain process's imports, s", "plain.import_s"),
    ("(DAG - (plain - its imports)) / no-op", "ratio_without_plain_imports"),
    ("stack start (s)", "stack_start_s"),
    ("scheduler + executor workers, PSS MB idle", "scheduler_pss_mb.idle"),
    ("... after the training run", "scheduler_pss_mb.after_training"),
    ("DAG run, CPU s of every stack process", "dag.cpu_seconds"),
    ("plain process, CPU s", "plain.cpu_seconds"),
    ("no-op chain, CPU s", "noop_chain_cpu_s"),
    ("(DAG - plain) / no-op, in CPU s", "ratio_cpu"),
)


def overhead_table(overhead: dict, rows: tuple[tuple[str, str], ...] = OVERHEAD_ROWS, tasks: bool = True) -> list[str]:
    """Figure 1's measurements, one column per executor."""
    keys = list(overhead)
    lines = ["| | " + " | ".join(overhead[k]["executor"].rsplit(".", 1)[-1] for k in keys) + " |",
             "|---|" + "---|" * len(keys)]
    getters: list[tuple[str, Callable[[dict], object]]] = [
        (label, functools.partial(_overhead, path=path)) for label, path in rows]
    if tasks:
        getters += [(f"task `{t}`", functools.partial(lambda task, r: r["dag"]["tasks"].get(task), t))
                    for t in next(iter(overhead.values()))["dag"]["tasks"]]
    for label, get in getters:
        lines.append(f"| {label} | " + " | ".join(fmt(get(overhead[k])) for k in keys) + " |")
    return lines


def overhead_block(result: dict) -> str:
    overhead = result["data"].get("overhead", {}).get("results")
    if not overhead:
        return "(figure 1 was not measured in latest.json)"
    rows = next(iter(overhead.values()))["rows_in_window"]
    return "\n".join([f"Figure 1 ({rows:,} rows in the window), seconds unless said:", "",
                      *overhead_table(overhead, OVERHEAD_ROWS[:9], tasks=False)])


def misses_block(result: dict) -> str:
    missed = [f for f in result["figures"] if f["passed"] is False]
    if not missed:
        return "Every figure meets its target in `latest.json`."
    return "\n".join(["Missing their target in `latest.json`:", ""] + [
        f"* {_cell(f['name'])}: {value_text(f)} (target {f['target']}): {_cell(f['comparison'])}" for f in missed])


BLOCKS: dict[str, Callable[[dict], str]] = {"figures": figures_block, "overhead": overhead_block,
                                            "misses": misses_block}
BLOCK = re.compile(r"(<!-- bench:([\w-]+) -->\n)(.*?)(<!-- /bench:\2 -->)", re.S)


def render(text: str, result: dict) -> str:
    """``text`` with every bench block rewritten from ``result``; an unknown block name is an error."""

    def block(match: re.Match) -> str:
        name = match.group(2)
        if name not in BLOCKS:
            raise ValueError(f"unknown bench block {name!r}; known: {', '.join(BLOCKS)}")
        return f"{match.group(1)}{BLOCKS[name](result)}\n{match.group(4)}"

    return BLOCK.sub(block, text)


def outside_blocks(text: str) -> str:
    """``text`` without its bench blocks and fenced code (what a person wrote by hand)."""
    text = BLOCK.sub("", text)
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def render_documents(root: Path, result: dict) -> list[str]:
    """Rewrite the bench blocks of :data:`DOCUMENTS` from ``result``; the documents that changed."""
    changed = []
    for name in DOCUMENTS:
        path = root / name
        old = path.read_text(encoding="utf-8")
        new = render(old, result)
        if new != old:
            path.write_text(new, encoding="utf-8")
            changed.append(name)
    return changed


# A number with the unit of a measurement or a ratio (seconds, minutes, memory, a factor, a share).
QUOTED = re.compile(r"(?<![\w.])-?(\d[\d,]*(?:\.\d+)?)\s?(?:x|s|ms|min|MB|GB|GiB|MiB|%)(?!\w)")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def _numbers(value, found: set[float]) -> set[float]:
    if isinstance(value, bool):
        return found
    if isinstance(value, int | float):
        found.add(abs(float(value)))
    elif isinstance(value, str):
        found.update(float(n.replace(",", "")) for n in _NUMBER.findall(value))
    elif isinstance(value, dict):
        for item in value.values():
            _numbers(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _numbers(item, found)
    return found


def unbacked_figures(text: str, result: dict) -> list[str]:
    """Numbers ``text`` quotes by hand (outside bench blocks and code) that ``result`` does not hold at the
    precision quoted: a figure copied from an older run, or one no run measured."""
    held = _numbers(result, set())
    missing = []
    for match in QUOTED.finditer(outside_blocks(text)):
        quoted = match.group(1).replace(",", "")
        digits = len(quoted.split(".")[1]) if "." in quoted else 0
        if not any(round(v, digits) == float(quoted) for v in held):
            missing.append(match.group(0))
    return missing
