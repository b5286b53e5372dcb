"""Running the gate: one partition (or frame) against a suite, with the run's data interval."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrainer.validate.gx import (
    DOCS_SITE,
    arrow_strings,
    cached_docs_templates,
    ephemeral_context,
    import_gx,
    lean_gx_run,
)
from retrainer.validate.results import FailedExpectation, ValidationOutcome, failed_expectation, write_report
from retrainer.validate.suite import load_suite

if TYPE_CHECKING:
    import great_expectations as gx
    import pandas as pd


RESULT_FORMATS = ("BOOLEAN_ONLY", "BASIC", "SUMMARY", "COMPLETE")
DOCS_MODES = (True, False, "on_failure")
INTERVAL_PARAMETERS = ("interval_start", "interval_end")
REPORT_FILE = "validation.json"
DOCS_DIR = "data_docs"
_DATASOURCE, _ASSET, _BATCH = "retrainer_pandas", "partition", "whole_partition"


class PartitionUnreadable(ValueError):
    """The partition file is missing, truncated or otherwise not readable as Parquet."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: partition unreadable: {reason}")
        self.path = str(path)
        self.reason = reason


def validate_frame(
    df: pd.DataFrame,
    suite_path: Path,
    report_dir: Path,
    *,
    partition_label: str,
    interval_start: datetime,
    interval_end: datetime,
    result_format: str = "BOOLEAN_ONLY",
    build_docs: bool | str = True,
    extra_parameters: dict[str, Any] | None = None,
) -> ValidationOutcome:
    """Validate a DataFrame; write ``report_dir/validation.json`` and (optionally) Data Docs.

    Interval bounds may be naive (taken as UTC, like event_time) or aware (converted to UTC).
    ``extra_parameters`` supplies any other suite parameters the suite names (e.g. ``min_rows``).
    ``build_docs``: True always, False never, ``"on_failure"`` only when an expectation failed
    (rendering the site costs about 1 s a run, more than most checks).
    """
    suite_path, report_dir = Path(suite_path), Path(report_dir)
    _check_arguments(df, result_format, build_docs)
    suite, params = suite_and_parameters(suite_path, interval_start, interval_end, extra_parameters)

    report_dir.mkdir(parents=True, exist_ok=True)
    docs_dir = report_dir / DOCS_DIR
    context = ephemeral_context(docs_dir if build_docs else None)  # "on_failure" is truthy
    run = _run_suite(context, suite, df, params, result_format, partition_label)
    docs_built = build_docs is True or (build_docs == "on_failure" and bool(run.failed))
    if docs_built:
        with cached_docs_templates():
            context.build_data_docs(site_names=[DOCS_SITE])
    failed = [failed_expectation(r, run.detailed.get(id(r), r), run.df) for r in run.failed]
    failed += non_finite_failures(run.df)

    index = docs_dir / "index.html"
    outcome = ValidationOutcome(
        success=not any(f.severity == "critical" for f in failed),
        partition=partition_label,
        suite_name=run.suite.name,
        evaluated=int(run.result.statistics.get("evaluated_expectations", len(run.result.results))),
        failed=failed,
        report_json=str(report_dir / REPORT_FILE),
        data_docs_index=str(index) if docs_built and index.exists() else None,
        run_id=run.name,
    )
    write_report(outcome, run.result.to_json_dict(), params)
    return outcome


def _check_arguments(df: Any, result_format: str, build_docs: bool | str) -> None:
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"validate_frame expects a pandas DataFrame, got {type(df).__name__}")
    if result_format not in RESULT_FORMATS:
        raise ValueError(f"result_format must be one of {RESULT_FORMATS}, got {result_format!r}")
    if build_docs not in DOCS_MODES:
        raise ValueError(f"build_docs must be one of {DOCS_MODES}, got {build_docs!r}")


def suite_and_parameters(
    suite_path: Path, interval_start: datetime, interval_end: datetime, extra_parameters: dict[str, Any] | None
) -> tuple[gx.ExpectationSuite, dict[str, Any]]:
    """The suite, and the parameters it names: the run's interval (naive UTC) and the extra ones."""
    start, end = naive_utc(interval_start), naive_utc(interval_end)
    if not start < end:
        raise ValueError(f"interval_start ({start}) must be before interval_end ({end})")
    suite = load_suite(suite_path)
    params = {**(extra_parameters or {}), "interval_start": start, "interval_end": end}
    missing = sorted(set(suite.suite_parameter_options) - set(params))
    if missing:
        raise ValueError(
            f"{suite_path}: suite uses parameters {missing} that validation does not supply "
            f"(supplied: {list(params)})"
        )
    return suite, params


@dataclass(frozen=True)
class _SuiteRun:
    name: str  # the GX run name
    suite: Any  # the suite as added to the context
    result: Any  # GX's ExpectationSuiteValidationResult
    failed: list  # the results that did not succeed
    detailed: dict  # {id(failed result): its SUMMARY re-run}
    df: pd.DataFrame  # the frame as validated (Arrow-backed strings)


def _run_suite(context, suite, df: pd.DataFrame, params: dict, result_format: str, partition_label: str) -> _SuiteRun:
    """One validation of ``df`` in ``context``; failures re-run with details when the format has none."""
    gx = import_gx()
    suite = context.suites.add(suite)
    batch_definition = (
        context.data_sources.add_pandas(_DATASOURCE)
        .add_dataframe_asset(_ASSET)
        .add_batch_definition_whole_dataframe(_BATCH)
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite.name}-{_ASSET}", data=batch_definition, suite=suite)
    )
    run_id = gx_run_id(safe_label(partition_label))
    with lean_gx_run():
        df = arrow_strings(df)  # inside: under Copy-on-Write, assign() copies no other column
        # A ValidationDefinition run rather than a Checkpoint: the same validation and stored result
        # (which Data Docs are built from) without the Checkpoint's store round trips (~0.2 s a run).
        result = definition.run(
            batch_parameters={"dataframe": df},
            expectation_parameters=params,
            result_format=result_format,
            run_id=run_id,
        )
        failed_results = [r for r in result.results if not r.success]
        if failed_results and result_format in ("BOOLEAN_ONLY", "BASIC"):
            detailed = _rerun_with_details(batch_definition, suite, failed_results, df, params)
        else:
            detailed = {id(r): r for r in failed_results}
    return _SuiteRun(run_id.run_name, suite, result, failed_results, detailed, df)


def validate_partition(
    partition: Path,
    suite_path: Path,
    report_dir: Path,
    *,
    interval_start: datetime,
    interval_end: datetime,
    result_format: str = "BOOLEAN_ONLY",
    build_docs: bool | str = True,
) -> ValidationOutcome:
    """Read one Parquet partition (file or dataset folder) and validate it; see validate_frame."""
    df = read_partition(partition)
    return validate_frame(
        df,
        suite_path,
        report_dir,
        partition_label=str(partition),
        interval_start=interval_start,
        interval_end=interval_end,
        result_format=result_format,
        build_docs=build_docs,
    )


def read_partition(partition: Path) -> pd.DataFrame:
    """Read a Parquet partition the way the gate validates it: text columns as Arrow-backed strings
    (``storage.read_frame``), so GX's set, uniqueness and null checks run in Arrow. A numeric column
    that arrived as text is a ``string`` column here, which every numeric type check rejects.
    """
    from retrainer.storage import read_frame

    partition = Path(partition)
    if not partition.exists():
        raise PartitionUnreadable(partition, "no such file or directory")
    try:
        return read_frame(partition)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError and others for damaged files
        raise PartitionUnreadable(partition, f"{type(exc).__name__}: {exc}") from exc


def partition_rows(partition: Path) -> int:
    """How many rows a Parquet partition (file or dataset folder) holds, from its metadata alone."""
    import pyarrow.dataset as pads

    partition = Path(partition)
    if not partition.exists():
        raise PartitionUnreadable(partition, "no such file or directory")
    try:
        return pads.dataset(partition, format="parquet").count_rows()
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError and others for damaged files
        raise PartitionUnreadable(partition, f"{type(exc).__name__}: {exc}") from exc


def _rerun_with_details(batch_definition, suite, failed_results: list, df, params: dict) -> dict:
    """Re-run only the failed expectations with SUMMARY, which lists unexpected values.

    SUMMARY on the whole suite costs about twice BOOLEAN_ONLY; on the failures alone it is cheap.
    Returns {id(original result): detailed result}.
    """
    gx = import_gx()
    wanted = {r.expectation_config.id for r in failed_results}
    # The suite's own configurations, so $PARAMETER references are resolved again for this batch.
    configs = [exp.configuration.to_json_dict() for exp in suite.expectations if exp.id in wanted]
    if not configs:
        return {}
    subset = gx.ExpectationSuite(name=f"{suite.name}-failed", expectations=configs)
    batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
    rerun = batch.validate(
        subset,
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": 20},
        expectation_parameters=params,
    )
    detail_by_id = {r.expectation_config.id: r for r in rerun.results}
    return {
        id(r): detail_by_id[r.expectation_config.id]
        for r in failed_results
        if r.expectation_config.id in detail_by_id
    }


def naive_utc(value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"interval bounds must be datetimes, got {type(value).__name__}")
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    # A plain datetime: pendulum/pandas subclasses serialise differently inside GX.
    return datetime(
        value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond
    )


def safe_label(label: str) -> str:
    """A run name usable as a Data Docs path segment: the last two path parts, no slashes."""
    tail = "_".join(Path(label).parts[-2:]) or "partition"
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", tail)[-80:]


def gx_run_id(label: str):
    """The GX run id of one validation of ``label`` (a :func:`safe_label`): named by the label and the
    time, which is the Data Docs folder of its result. Validation's one read of the clock: when a check
    ran is a fact of its report, never an input of its verdict."""
    from great_expectations.core.run_identifier import RunIdentifier

    run_time = datetime.now(UTC)
    return RunIdentifier(run_name=f"{label}__{run_time:%Y%m%dT%H%M%S%fZ}", run_time=run_time)


def non_finite_failures(df: pd.DataFrame) -> list[FailedExpectation]:
    """The gate's structural rule: ``inf``/``-inf`` in any numeric column is a critical failure, whatever
    the suite says (retrainer.gates.non_finite_values); reported like an expectation of the suite."""
    from retrainer.gates import FINITE_CHECK, non_finite_values

    return [
        FailedExpectation(expectation_type=FINITE_CHECK, column=name, kwargs={"column": name}, severity="critical",
                          unexpected_examples=found["examples"], unexpected_count=found["rows"])
        for name, found in non_finite_values(df).items()
    ]
