"""The data-quality gate: validate one newly ingested partition against a GX suite before training.

The suite (``validation_suites/*.json``) is data, not code: it lists the expectations and marks each
one ``meta.severity`` = ``critical`` (a failure stops the run) or ``warning`` (reported only). The
run's data interval reaches the suite through GX suite parameters (``{"$PARAMETER": "interval_start"}``).

Great Expectations is imported inside the functions: importing it takes seconds, and modules that
merely import this one (DAG files, the CLI) should not pay for it.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import great_expectations as gx
    import pandas as pd

SEVERITIES = ("critical", "warning")
RESULT_FORMATS = ("BOOLEAN_ONLY", "BASIC", "SUMMARY", "COMPLETE")
DOCS_MODES = (True, False, "on_failure")
INTERVAL_PARAMETERS = ("interval_start", "interval_end")
REPORT_FILE = "validation.json"
DOCS_DIR = "data_docs"
MAX_EXAMPLES = 5

# What gx.ExpectationSuite(...) and ExpectationConfiguration(...) accept in GX 1.24.
_SUITE_KEYS = frozenset({"name", "expectations", "suite_parameters", "meta", "notes", "id"})
_EXPECTATION_KEYS = frozenset(
    {"type", "kwargs", "meta", "notes", "description", "severity", "id", "rendered_content"}
)
_DOCS_SITE = "local_site"
_DATASOURCE, _ASSET, _BATCH = "retrainer_pandas", "partition", "whole_partition"


class PartitionUnreadable(ValueError):
    """The partition file is missing, truncated or otherwise not readable as Parquet."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: partition unreadable: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class FailedExpectation:
    expectation_type: str
    column: str | None
    kwargs: dict  # JSON-safe; suite parameters appear with the values used in this run
    severity: str  # "critical" | "warning"
    unexpected_examples: list  # up to MAX_EXAMPLES distinct bad values (for aggregates: the observed value)
    unexpected_count: int | None
    observed_value: Any = None  # JSON-safe; aggregates, dtypes, observed column lists
    error: str | None = None  # set when GX could not evaluate the expectation (e.g. a missing column)

    def describe(self) -> str:
        target = f" on {self.column}" if self.column else ""
        shown = {k: v for k, v in self.kwargs.items() if k != "column"}
        line = f"[{self.severity}] {self.expectation_type}{target} {_short_json(shown)}"
        if self.error:
            return f"{line}: could not be evaluated: {self.error}"
        if self.unexpected_count is not None:
            line += f": {self.unexpected_count} unexpected"
        elif self.observed_value is not None:
            line += f": observed {_short_json(self.observed_value)}"
        if self.unexpected_examples:
            line += f", e.g. {_short_json(self.unexpected_examples)}"
        return line


@dataclass(frozen=True)
class ValidationOutcome:
    success: bool  # False iff any CRITICAL expectation failed
    partition: str
    suite_name: str
    evaluated: int
    failed: list[FailedExpectation]
    report_json: str
    data_docs_index: str | None
    run_id: str

    def critical(self) -> list[FailedExpectation]:
        return [f for f in self.failed if f.severity == "critical"]

    def warnings(self) -> list[FailedExpectation]:
        return [f for f in self.failed if f.severity == "warning"]

    def message(self) -> str:
        verdict = "passed" if self.success else "FAILED"
        head = (
            f"Validation of {self.partition} against suite '{self.suite_name}' {verdict}: "
            f"{len(self.critical())} critical and {len(self.warnings())} warning failures "
            f"out of {self.evaluated} expectations (run {self.run_id})."
        )
        lines = [head, *(f"  - {f.describe()}" for f in self.failed)]
        lines.append(f"Report: {self.report_json}")
        if self.data_docs_index:
            lines.append(f"Data Docs: {self.data_docs_index}")
        return "\n".join(lines)


def load_suite(path: Path) -> gx.ExpectationSuite:
    """Read a GX 1.x suite JSON; raise ValueError naming the file and the problem.

    GX's own constructor logs and silently drops an expectation whose type it does not know, so
    each expectation is built here first: a typo in the suite must fail loudly, not weaken the gate.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read validation suite ({exc.strerror or exc})") from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: validation suite is not valid JSON: {exc}") from exc
    return parse_suite(raw, path)


def parse_suite(raw: Any, where: Path | str) -> gx.ExpectationSuite:
    """Build a suite from its JSON object (as load_suite does); errors name ``where``."""
    path = where  # a file, or wherever the object came from
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: validation suite must be a JSON object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _SUITE_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown suite keys {unknown}; allowed: {sorted(_SUITE_KEYS)}")
    if not isinstance(raw.get("name"), str) or not raw["name"]:
        raise ValueError(f"{path}: suite 'name' must be a non-empty string")
    expectations = raw.get("expectations")
    if not isinstance(expectations, list) or not expectations:
        raise ValueError(f"{path}: suite 'expectations' must be a non-empty list")

    gx = _import_gx()
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    checked = [
        _check_expectation(path, i, exp, ExpectationConfiguration) for i, exp in enumerate(expectations)
    ]
    try:
        suite = gx.ExpectationSuite(**{**raw, "expectations": checked})
    except Exception as exc:  # GX raises TypeError, ValueError or its own errors here
        raise ValueError(f"{path}: invalid validation suite: {exc}") from exc
    if len(suite.expectations) != len(checked):
        raise ValueError(
            f"{path}: GX kept {len(suite.expectations)} of {len(checked)} expectations; see the GX log"
        )
    return suite


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
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"validate_frame expects a pandas DataFrame, got {type(df).__name__}")
    if result_format not in RESULT_FORMATS:
        raise ValueError(f"result_format must be one of {RESULT_FORMATS}, got {result_format!r}")
    if build_docs not in DOCS_MODES:
        raise ValueError(f"build_docs must be one of {DOCS_MODES}, got {build_docs!r}")
    start, end = _naive_utc(interval_start), _naive_utc(interval_end)
    if not start < end:
        raise ValueError(f"interval_start ({start}) must be before interval_end ({end})")

    suite_path, report_dir = Path(suite_path), Path(report_dir)
    suite = load_suite(suite_path)
    params = {**(extra_parameters or {}), "interval_start": start, "interval_end": end}
    missing = sorted(set(suite.suite_parameter_options) - set(params))
    if missing:
        raise ValueError(
            f"{suite_path}: suite uses parameters {missing} that validation does not supply "
            f"(supplied: {list(params)})"
        )

    gx = _import_gx()
    from great_expectations.core.run_identifier import RunIdentifier

    report_dir.mkdir(parents=True, exist_ok=True)
    docs_dir = report_dir / DOCS_DIR
    context = _ephemeral_context(docs_dir if build_docs else None)  # "on_failure" is truthy
    suite = context.suites.add(suite)
    batch_definition = (
        context.data_sources.add_pandas(_DATASOURCE)
        .add_dataframe_asset(_ASSET)
        .add_batch_definition_whole_dataframe(_BATCH)
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite.name}-{_ASSET}", data=batch_definition, suite=suite)
    )
    run_time = datetime.now(UTC)
    run_name = f"{_safe_label(partition_label)}__{run_time:%Y%m%dT%H%M%S%fZ}"
    with _lean_pandas_engine():
        df = _arrow_strings(df)  # inside: under Copy-on-Write, assign() copies no other column
        # A ValidationDefinition run rather than a Checkpoint: the same validation and stored result
        # (which Data Docs are built from) without the Checkpoint's store round trips (~0.2 s a run).
        result = definition.run(
            batch_parameters={"dataframe": df},
            expectation_parameters=params,
            result_format=result_format,
            run_id=RunIdentifier(run_name=run_name, run_time=run_time),
        )
        failed_results = [r for r in result.results if not r.success]
        if failed_results and result_format in ("BOOLEAN_ONLY", "BASIC"):
            detailed = _rerun_with_details(batch_definition, suite, failed_results, df, params)
        else:
            detailed = {id(r): r for r in failed_results}
    docs_built = build_docs is True or (build_docs == "on_failure" and bool(failed_results))
    if docs_built:
        context.build_data_docs(site_names=[_DOCS_SITE])
    failed = [_failed_expectation(r, detailed.get(id(r), r), df) for r in failed_results]

    index = docs_dir / "index.html"
    outcome = ValidationOutcome(
        success=not any(f.severity == "critical" for f in failed),
        partition=partition_label,
        suite_name=suite.name,
        evaluated=int(result.statistics.get("evaluated_expectations", len(result.results))),
        failed=failed,
        report_json=str(report_dir / REPORT_FILE),
        data_docs_index=str(index) if docs_built and index.exists() else None,
        run_id=run_name,
    )
    _write_report(outcome, result.to_json_dict(), params)
    return outcome


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


@contextmanager
def batches_released() -> Iterator[Callable[[], None]]:
    """For a loop validating one batch after another: yields ``release()``, to call after each batch.

    GX keeps each batch's DataFrame (and its Arrow buffers) in reference cycles between the context,
    the execution engine and the batch; only a full garbage collection frees them, and with hundreds
    of thousands of long-lived objects (pandas, GX, MLflow...) Python runs one rarely. Validating
    28 daily partitions then held every one of them: about 14x a partition at 5M rows in the window
    (bench/bench_scale.py). The long-lived objects are frozen for the loop (``gc.freeze``: a
    collection skips them), so ``release()`` is a full collection of what the loop made: milliseconds.
    It then hands the freed memory back to the system (Arrow's pool and the C heap keep it otherwise),
    so the next batch starts from the same footprint instead of on top of the last one's leftovers.
    """
    import gc

    def release() -> None:
        gc.collect()
        _return_free_memory()

    gc.freeze()
    try:
        yield release
    finally:
        gc.unfreeze()


def _return_free_memory() -> None:
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, looked up once (``find_library`` runs ``ldconfig``); None elsewhere."""
    import ctypes
    import ctypes.util

    libc_name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(libc_name).malloc_trim if libc_name else None
    except (OSError, AttributeError):  # other C libraries have no such call
        return None


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


# --- GX plumbing -------------------------------------------------------------------------------


def _arrow_strings(df: pd.DataFrame) -> pd.DataFrame:
    """``string[python]`` columns as ``string[pyarrow]`` (lossless: same dtype name, values and NA).

    Converted once here rather than paid in every set, uniqueness and null check; ``object``
    columns are left alone because GX type-checks their values one by one.
    """
    import pandas as pd

    arrow = pd.StringDtype("pyarrow")
    converted = {
        name: df[name].astype(arrow)
        for name, dtype in df.dtypes.items()
        if isinstance(dtype, pd.StringDtype) and dtype.storage == "python"
    }
    return df.assign(**converted) if converted else df


@contextmanager
def _lean_pandas_engine() -> Iterator[None]:
    """Two costs of GX's pandas engine that buy the gate nothing, switched off for one run.

    * Copy-on-Write: for every column map expectation GX filters nulls out of the WHOLE batch
      (``df[df[column].notnull()]``); without Copy-on-Write pandas deep-copies all columns even
      when nothing is null (about 0.2 s per expectation on 1M rows). With it the copy is lazy.
      Copy-on-Write is pandas' own mode (the default from pandas 3), so GX cannot alter our frame.
    * The batch fingerprint: GX 1.24 MD5-hashes every pandas batch under 1 GB
      (``PandasExecutionEngine.get_batch_data_and_markers``, ``HASH_THRESHOLD = 1e9``) only to
      store it as ``batch_markers.pandas_data_fingerprint`` in the result; there is no setting to
      turn it off, and it costs ~1.7 s per 1M rows, again in the re-run of failures. The partition
      is identified by its path (and by DVC's hash) anyway, so the threshold is lowered for the run.
    """
    import pandas as pd
    from great_expectations.execution_engine import pandas_execution_engine as engine

    threshold = getattr(engine, "HASH_THRESHOLD", None)
    if threshold is not None:
        engine.HASH_THRESHOLD = 0
    try:
        with pd.option_context("mode.copy_on_write", True):
            yield
    finally:
        if threshold is not None:
            engine.HASH_THRESHOLD = threshold


def _import_gx():
    # Analytics would try the network; there is none here.
    os.environ["GX_ANALYTICS_ENABLED"] = "False"
    # GX's docs decorators log ~200 INFO lines at import once Airflow's structlog config is active;
    # leave the level alone when someone has set it on purpose.
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:
        gx_logger.setLevel(logging.WARNING)
    import great_expectations as gx

    return gx


def _ephemeral_context(docs_dir: Path | None):
    """An in-memory context: nothing is written to the CWD, and only docs_dir receives files."""
    gx = _import_gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    sites = {}
    if docs_dir is not None:
        sites[_DOCS_SITE] = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        # The default ephemeral config adds a docs site in a fresh temp folder; ours replaces it.
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites=sites,
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),  # tqdm bars would flood task logs
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _check_expectation(path: Path | str, index: int, exp: Any, configuration_cls: type) -> dict:
    where = f"{path}: expectation #{index}"
    if not isinstance(exp, dict):
        raise ValueError(f"{where}: must be a JSON object, got {type(exp).__name__}")
    kind = exp.get("type")
    where = f"{where} ({kind})"
    unknown = sorted(set(exp) - _EXPECTATION_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}")
    if not isinstance(kind, str) or not isinstance(exp.get("kwargs"), dict):
        raise ValueError(f"{where}: needs a string 'type' and an object 'kwargs'")
    meta = exp.get("meta")
    severity = meta.get("severity") if isinstance(meta, dict) else None
    if severity not in SEVERITIES:
        raise ValueError(f"{where}: meta.severity must be one of {SEVERITIES}, got {severity!r}")
    if exp.get("severity", severity) != severity:
        raise ValueError(f"{where}: severity {exp['severity']!r} disagrees with meta.severity {severity!r}")
    # GX 1.24 has its own severity field; mirror meta.severity into it so Data Docs agree.
    checked = {**exp, "severity": severity}
    try:
        configuration_cls(**checked).to_domain_obj()
    except Exception as exc:  # unknown type, pydantic validation error, bad kwargs
        reason = str(exc).strip().replace("\n", "; ")
        raise ValueError(f"{where}: invalid expectation: {reason}") from exc
    return checked


def _rerun_with_details(batch_definition, suite, failed_results: list, df, params: dict) -> dict:
    """Re-run only the failed expectations with SUMMARY, which lists unexpected values.

    SUMMARY on the whole suite costs about twice BOOLEAN_ONLY; on the failures alone it is cheap.
    Returns {id(original result): detailed result}.
    """
    gx = _import_gx()
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


# --- turning GX results into FailedExpectation -------------------------------------------------


def _failed_expectation(result, detail, df) -> FailedExpectation:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    column = kwargs.get("column")
    severity = (config.meta or {}).get("severity", "critical")
    base = {
        "expectation_type": config.type,
        "column": column,
        "kwargs": _json_safe(kwargs),
        "severity": severity if severity in SEVERITIES else "critical",
    }
    if column is not None and column not in df.columns:
        return FailedExpectation(
            **base, unexpected_examples=[], unexpected_count=None, error=f"column {column!r} is missing"
        )
    error = _exception_message(detail) or _exception_message(result)
    if error:
        return FailedExpectation(**base, unexpected_examples=[], unexpected_count=None, error=error)

    info = detail.result or {}
    observed = _json_safe(info.get("observed_value"))
    if config.type == "expect_column_values_to_be_in_type_list":
        examples, count = _type_offenders(df[column], kwargs.get("type_list") or [])
        return FailedExpectation(
            **base,
            unexpected_examples=examples,
            unexpected_count=count,
            observed_value=str(df[column].dtype),
        )
    if "partial_unexpected_counts" in info or "partial_unexpected_list" in info:
        values = [c["value"] for c in info.get("partial_unexpected_counts") or []]
        values = values or list(info.get("partial_unexpected_list") or [])
        count = info.get("unexpected_count")
        return FailedExpectation(
            **base,
            unexpected_examples=_distinct(values),
            unexpected_count=int(count) if count is not None else None,
            observed_value=observed,
        )
    mismatched = (info.get("details") or {}).get("mismatched")
    if isinstance(mismatched, dict):  # expect_table_columns_to_match_set
        examples = [f"missing: {c}" for c in mismatched.get("missing") or []]
        examples += [f"unexpected: {c}" for c in mismatched.get("unexpected") or []]
        return FailedExpectation(
            **base,
            unexpected_examples=examples[:MAX_EXAMPLES],
            unexpected_count=len(examples),
            observed_value=observed,
        )
    # Aggregate expectations (row count, mean, proportion): the observed value is the evidence.
    return FailedExpectation(
        **base,
        unexpected_examples=[] if observed is None else [observed],
        unexpected_count=None,
        observed_value=observed,
    )


def _exception_message(result) -> str | None:
    info = getattr(result, "exception_info", None) or {}
    # GX 1.x puts either one {raised_exception, exception_message} record here, or one per metric.
    records = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for record in records:
        if record.get("raised_exception") or record.get("exception_message"):
            message = str(record.get("exception_message") or "error").strip()
            return message.splitlines()[0][:300] if message else "error"
    return None


def _type_offenders(series: pd.Series, type_list: list) -> tuple[list, int | None]:
    """Values that do not parse as the expected kind: the strings in a numeric column, say.

    GX's own SUMMARY for this expectation lists every value of an object column, good ones too.
    """
    import pandas as pd

    is_text = isinstance(series.dtype, pd.StringDtype)
    if series.dtype != object and not is_text:
        return [], None  # the dtype itself is wrong (e.g. float where int is expected)
    values = series.dropna()
    if is_text:
        values = values.astype(object)
    names = " ".join(str(t).lower() for t in type_list)
    if "int" in names or "float" in names:
        bad = values[pd.to_numeric(values, errors="coerce").isna()]
    elif "datetime" in names:
        bad = values[pd.to_datetime(values, errors="coerce", format="mixed").isna()]
    else:
        bad = values[~values.map(lambda v: isinstance(v, str))]
    # A text column is wrong as a whole (its dtype says so); the values that do not even parse are the evidence.
    return _distinct(bad.tolist()), None if is_text else int(len(bad))


def _distinct(values: list) -> list:
    seen, out = set(), []
    for value in values:
        safe = _json_safe(value)
        key = json.dumps(safe, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(safe)
        if len(out) == MAX_EXAMPLES:
            break
    return out


def _json_safe(value: Any) -> Any:
    """Plain JSON types: NaN becomes None, timestamps ISO strings, numpy scalars Python numbers."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    if isinstance(value, datetime | date):
        return None if value != value else value.isoformat()  # NaT is a datetime unequal to itself
    if hasattr(value, "isoformat"):  # pandas Timestamp, numpy datetime64 via pandas
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        try:
            return _json_safe(value.item())
        except (TypeError, ValueError):
            pass
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _short_json(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _naive_utc(value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"interval bounds must be datetimes, got {type(value).__name__}")
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    # A plain datetime: pendulum/pandas subclasses serialise differently inside GX.
    return datetime(
        value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond
    )


def _safe_label(label: str) -> str:
    """A run name usable as a Data Docs path segment: the last two path parts, no slashes."""
    tail = "_".join(Path(label).parts[-2:]) or "partition"
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", tail)[-80:]


def _write_report(outcome: ValidationOutcome, gx_result: dict, params: dict) -> None:
    report = {
        "success": outcome.success,
        "partition": outcome.partition,
        "suite_name": outcome.suite_name,
        "run_id": outcome.run_id,
        "evaluated": outcome.evaluated,
        "critical_failures": len(outcome.critical()),
        "warning_failures": len(outcome.warnings()),
        "failed": [asdict(f) for f in outcome.failed],
        "suite_parameters": _json_safe(params),
        "data_docs_index": outcome.data_docs_index,
        "gx_result": gx_result,
    }
    path = Path(outcome.report_json)
    # Same folder as the target so os.replace is an atomic rename: readers never see half a file.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
import_gx = _import_gx  # public name (preload uses it); the drift helper renames the function itself
