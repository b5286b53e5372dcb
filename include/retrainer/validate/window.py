"""Validating many partitions at once (a first run, a backfill's window): the same suite, far fewer GX runs.

A GX run has a fixed cost of about 0.3 s for a 50-expectation suite, whatever the batch's size (building
each expectation's metric graph), so 28 daily partitions of a few thousand rows spend almost all their
gate time on it. Here the suite is split in two, and each half runs where it gives the same answer:

* **row-wise** expectations (each row passes or fails on its own values: ranges without suite parameters,
  sets, nulls, patterns, types and the column set, with ``mostly`` 1) run ONCE on the partitions stacked
  together. Such an expectation holds on the stack exactly when it holds on every partition, provided
  the partitions share one schema (same columns, same dtypes; checked first, else every partition is
  validated alone). The structural finite rule is row-wise too;
* **per-partition** expectations (row counts, means, proportions, uniqueness, ``mostly`` < 1, anything
  using the interval parameters) run on each partition with its own interval.

A partition passes when nothing failed in either half (warnings included). Any other partition, and
every partition of a stack where a row-wise expectation or the finite rule failed, is validated alone
with the whole suite by :func:`retrainer.validate.run.validate_frame`, exactly as a single partition
is: its report, its evidence and its Data Docs are the usual ones. So the fast path only ever says
"passed", and it says so only when the whole suite would have.

Stacks hold at most ``chunk_rows`` rows (memory: large partitions gain nothing from stacking, their
fixed cost is small beside their checks). The stack's Data Docs site (one page: the row-wise half) is
``window_dir/data_docs``; each passing partition's ``validation.json`` records both runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from retrainer.validate.gx import (
    DOCS_SITE,
    arrow_strings,
    cached_docs_templates,
    ephemeral_context,
    import_gx,
    lean_gx_run,
)
from retrainer.validate.results import ValidationOutcome, json_safe, write_report
from retrainer.validate.run import (
    DOCS_DIR,
    REPORT_FILE,
    gx_run_id,
    naive_utc,
    non_finite_failures,
    partition_rows,
    read_partition,
    safe_label,
    suite_and_parameters,
    validate_frame,
)

if TYPE_CHECKING:
    import pandas as pd

CHUNK_ROWS = 1_000_000
T = TypeVar("T")
WINDOW_REPORT = "window.json"

# Expectations whose verdict on a row depends on that row only (given the schema).
ROW_WISE_TYPES = frozenset({
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_in_set",
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_null",
    "expect_column_values_to_match_regex",
    "expect_column_values_to_not_match_regex",
    "expect_column_values_to_match_regex_list",
    "expect_column_values_to_not_match_regex_list",
    "expect_column_values_to_match_like_pattern",
    "expect_column_values_to_not_match_like_pattern",
    "expect_column_values_to_match_like_pattern_list",
    "expect_column_values_to_not_match_like_pattern_list",
    "expect_column_values_to_match_strftime_format",
    "expect_column_values_to_be_dateutil_parseable",
    "expect_column_values_to_be_json_parseable",
    "expect_column_value_lengths_to_be_between",
    "expect_column_value_lengths_to_equal",
    "expect_column_values_to_be_in_type_list",
    "expect_column_values_to_be_of_type",
    "expect_column_pair_values_a_to_be_greater_than_b",
    "expect_column_pair_values_to_be_equal",
    "expect_column_pair_values_to_be_in_set",
    "expect_multicolumn_sum_to_equal",
    "expect_select_column_values_to_be_unique_within_record",
    # Schema expectations: the same answer on every partition of one schema.
    "expect_column_to_exist",
    "expect_table_columns_to_match_set",
    "expect_table_columns_to_match_ordered_list",
    "expect_table_column_count_to_equal",
    "expect_table_column_count_to_be_between",
})


@dataclass(frozen=True)
class PartitionToValidate:
    path: Path
    report_dir: Path  # receives validation.json (and Data Docs when validated alone)
    interval_start: datetime
    interval_end: datetime
    label: str = ""  # how the caller names it (e.g. its day)


def is_row_wise(configuration: dict) -> bool:
    """True when the expectation's verdict on a stack of same-schema partitions is its verdict on each."""
    kwargs = configuration.get("kwargs") or {}
    mostly = kwargs.get("mostly", 1.0)
    return (
        configuration.get("type") in ROW_WISE_TYPES
        and (mostly is None or float(mostly) >= 1.0)
        and "$PARAMETER" not in json.dumps(kwargs, default=str)
    )


def split_suite(suite) -> tuple[list[dict], list[dict]]:
    """The suite's expectation configurations: (row-wise, per-partition)."""
    configs = [exp.configuration.to_json_dict() for exp in suite.expectations]
    return [c for c in configs if is_row_wise(c)], [c for c in configs if not is_row_wise(c)]


def validate_partitions(
    partitions: Sequence[PartitionToValidate],
    suite_path: Path,
    window_dir: Path,
    *,
    result_format: str = "BOOLEAN_ONLY",
    build_docs: bool | str = True,
    chunk_rows: int = CHUNK_ROWS,
    after_each: Callable[[], None] | None = None,
    alone: Collection[str] = (),
) -> Iterator[tuple[PartitionToValidate, ValidationOutcome]]:
    """Validate every partition against the suite; yields (partition, outcome) in the given order.

    The outcome is what :func:`validate_partition` gives for that partition alone (see the module's
    docstring for why). Partitions whose label is in ``alone`` are always validated alone, with their
    own Data Docs (the run's own day, the one people open). ``after_each`` runs after each stack (e.g.
    ``batches_released``' release), when nothing here holds the stack's frames any more. Raises
    :class:`PartitionUnreadable` for a partition that cannot be read.
    """
    suite_path, window_dir = Path(suite_path), Path(window_dir)
    # Stacks are formed from the files' row counts, so a stack is read only once the last one is let go.
    for group in _grouped(partitions, lambda part: partition_rows(part.path), lambda part: part.label,
                          chunk_rows, alone):
        frames = [read_partition(part.path) for part in group]
        if len(group) == 1:
            yield group[0], _alone(group[0], frames.pop(), suite_path, result_format, build_docs)
        else:
            yield from _validate_stack(list(zip(group, frames, strict=True)), suite_path, window_dir,
                                       result_format, build_docs)
        del frames
        if after_each is not None:
            after_each()


def stack_groups(rows: Sequence[int], labels: Sequence[str], chunk_rows: int, alone: Collection[str]) -> list[list[int]]:
    """Which partitions are validated together: indices of consecutive partitions grouped until a group
    would hold more than ``chunk_rows`` rows; each one of ``alone`` (by label) is a group by itself."""
    return list(_grouped(range(len(rows)), rows.__getitem__, labels.__getitem__, chunk_rows, alone))


def _grouped(items: Iterable[T], rows: Callable[[T], int], label: Callable[[T], str], chunk_rows: int,
             alone: Collection[str]) -> Iterator[list[T]]:
    """The groups of :func:`stack_groups`, each yielded once the item after it is known to start a new
    one (``rows`` of an item is asked for when it comes up)."""
    group: list[T] = []
    total = 0
    for item in items:
        count, name = rows(item), label(item)
        if group and (total + count > chunk_rows or name in alone or label(group[-1]) in alone):
            yield group
            group, total = [], 0
        group.append(item)
        total += count
    if group:
        yield group


def _alone(part: PartitionToValidate, df: pd.DataFrame, suite_path: Path, result_format: str,
           build_docs: bool | str) -> ValidationOutcome:
    return validate_frame(
        df, suite_path, part.report_dir, partition_label=str(part.path), interval_start=part.interval_start,
        interval_end=part.interval_end, result_format=result_format, build_docs=build_docs,
    )


def _same_schema(frames: list[pd.DataFrame]) -> bool:
    first = frames[0]
    return all(
        list(df.columns) == list(first.columns) and all(df[c].dtype == first[c].dtype for c in first.columns)
        for df in frames[1:]
    )


def _validate_stack(
    stack: list[tuple[PartitionToValidate, pd.DataFrame]],
    suite_path: Path,
    window_dir: Path,
    result_format: str,
    build_docs: bool | str,
) -> Iterator[tuple[PartitionToValidate, ValidationOutcome]]:
    import pandas as pd

    frames = [arrow_strings(df) for _, df in stack]
    if not _same_schema(frames):
        for part, df in stack:
            yield part, _alone(part, df, suite_path, result_format, build_docs)
        return
    first = stack[0][0]
    suite, _ = suite_and_parameters(suite_path, first.interval_start, first.interval_end, None)
    row_wise, per_partition = split_suite(suite)
    label = f"{safe_label(str(first.path))}..{safe_label(str(stack[-1][0].path))}"
    with lean_gx_run():
        stacked = pd.concat(frames, ignore_index=True, copy=False)
        stacked_run = _run(suite.name, "rows", row_wise, stacked, {}, label, window_dir if build_docs is True else None)
        clean_rows = stacked_run["success"] and not non_finite_failures(stacked)
    del stacked
    if build_docs is True and clean_rows:
        _write_window_report(window_dir, stacked_run, [str(p.path) for p, _ in stack])
    runner = _Runner(suite.name, per_partition)
    for (part, df), frame in zip(stack, frames, strict=True):
        day_run = runner.run(part, frame) if clean_rows else None
        if day_run is None or not day_run["success"]:
            yield part, _alone(part, df, suite_path, result_format, build_docs)
            continue
        yield part, _passed(part, suite.name, stacked_run, day_run, window_dir if build_docs is True else None)


class _Runner:
    """The per-partition half of the suite in one context, run partition after partition.

    Each run is GX's ``Validator`` on the definition's batch and suite, what ``ValidationDefinition.run``
    runs, without the two things that call adds around it: checking the definition against the
    context's stores and storing the result. Nothing reads these results from a store (a partition
    that passes gets no Data Docs page of its own; one that fails is validated again alone, with
    them), and the two cost about as much as the validation itself on a small partition.
    """

    def __init__(self, suite_name: str, configs: list[dict]) -> None:
        self.suite_name, self.configs = suite_name, configs
        self._definition = _definition(ephemeral_context(None), f"{suite_name}-per-partition", configs) if configs else None

    def run(self, part: PartitionToValidate, frame: pd.DataFrame) -> dict:
        params = {"interval_start": naive_utc(part.interval_start), "interval_end": naive_utc(part.interval_end)}
        if self._definition is None:
            return {"success": True, "evaluated": 0, "run_id": None, "gx_result": None, "parameters": params}
        from great_expectations.validator.v1_validator import Validator

        run_id = gx_run_id(safe_label(str(part.path)))
        with lean_gx_run():
            validator = Validator(batch_definition=self._definition.batch_definition, result_format="BOOLEAN_ONLY",
                                  batch_parameters={"dataframe": frame})
            result = validator.validate_expectation_suite(self._definition.suite, params)
        result.meta.update({"run_id": run_id, "validation_time": run_id.run_time, "validation_id": self._definition.id})
        return _outcome(result, run_id.run_name, params)


def _definition(context, name: str, configs: list[dict]):
    gx = import_gx()
    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=configs))
    batch = (
        context.data_sources.add_pandas("retrainer_window")
        .add_dataframe_asset("partitions")
        .add_batch_definition_whole_dataframe("whole")
    )
    return context.validation_definitions.add(gx.ValidationDefinition(name=f"{name}-def", data=batch, suite=suite))


def _execute(definition, frame: pd.DataFrame, params: dict, label: str) -> dict:
    run_id = gx_run_id(label)
    result = definition.run(
        batch_parameters={"dataframe": frame},
        expectation_parameters=params,
        result_format="BOOLEAN_ONLY",
        run_id=run_id,
    )
    return _outcome(result, run_id.run_name, params)


def _outcome(result, run_name: str, params: dict) -> dict:
    evaluated = int(result.statistics.get("evaluated_expectations", len(result.results)))
    return {"success": bool(result.success) and all(r.success for r in result.results), "evaluated": evaluated,
            "run_id": run_name, "gx_result": result.to_json_dict(), "parameters": json_safe(params)}


def _run(suite_name: str, half: str, configs: list[dict], frame: pd.DataFrame, params: dict, label: str,
         window_dir: Path | None) -> dict:
    """The row-wise half on the stack; its Data Docs page into ``window_dir`` when given."""
    if not configs:
        return {"success": True, "evaluated": 0, "run_id": None, "gx_result": None, "parameters": {}, "docs": None}
    docs_dir = window_dir / DOCS_DIR if window_dir is not None else None
    context = ephemeral_context(docs_dir)
    outcome = _execute(_definition(context, f"{suite_name}-{half}", configs), frame, params, label)
    outcome["docs"] = None
    if docs_dir is not None and outcome["success"]:
        with cached_docs_templates():
            context.build_data_docs(site_names=[DOCS_SITE])
        index = docs_dir / "index.html"
        outcome["docs"] = str(index) if index.exists() else None
    return outcome


def _write_window_report(window_dir: Path, stacked_run: dict, paths: list[str]) -> None:
    from retrainer.storage import write_json_atomic

    write_json_atomic(window_dir / WINDOW_REPORT, {"partitions": paths, **{k: stacked_run[k] for k in (
        "success", "evaluated", "run_id", "docs", "gx_result")}})


def _passed(part: PartitionToValidate, suite_name: str, stacked_run: dict, day_run: dict,
            window_dir: Path | None) -> ValidationOutcome:
    """The outcome (and validation.json) of a partition both halves passed."""
    part.report_dir.mkdir(parents=True, exist_ok=True)
    outcome = ValidationOutcome(
        success=True,
        partition=str(part.path),
        suite_name=suite_name,
        evaluated=stacked_run["evaluated"] + day_run["evaluated"],
        failed=[],
        report_json=str(part.report_dir / REPORT_FILE),
        data_docs_index=stacked_run.get("docs"),
        run_id=day_run["run_id"] or stacked_run["run_id"],
    )
    gx_result: dict[str, Any] = {
        "validated_as": "stacked with the window's other partitions: row-wise expectations once on the stack "
                        "(run_id of rows_run), the others on this partition",
        "rows_run": {"run_id": stacked_run["run_id"], "evaluated": stacked_run["evaluated"],
                     "report": str(window_dir / WINDOW_REPORT) if window_dir is not None else None},
        "partition_run": day_run["gx_result"],
    }
    write_report(outcome, gx_result, day_run["parameters"])
    return outcome
