"""The data-quality gate: validate one newly ingested partition against a GX suite before training.

The suite (``validation_suites/*.json``) is data, not code: it lists the expectations and marks each
one ``meta.severity`` = ``critical`` (a failure stops the run) or ``warning`` (reported only). The
run's data interval reaches the suite through GX suite parameters (``{"$PARAMETER": "interval_start"}``).

The package, by concern: ``suite`` (reading and checking a suite), ``run`` (validating a partition or
a frame), ``results`` (the failed expectations with their evidence, the outcome, ``validation.json``),
``window`` (many partitions at once, same verdicts, fewer GX runs), ``gx`` (Great Expectations plumbing: its import, an in-memory context, memory between batches).

Great Expectations is imported inside the functions: importing it takes seconds, and modules that
merely import this package (DAG files, the CLI) should not pay for it.
"""

from __future__ import annotations

from retrainer.validate.gx import batches_released, import_gx
from retrainer.validate.results import MAX_EXAMPLES, FailedExpectation, ValidationOutcome
from retrainer.validate.run import (
    DOCS_DIR,
    DOCS_MODES,
    INTERVAL_PARAMETERS,
    REPORT_FILE,
    RESULT_FORMATS,
    PartitionUnreadable,
    read_partition,
    validate_frame,
    validate_partition,
)
from retrainer.validate.suite import SEVERITIES, load_suite, parse_suite
from retrainer.validate.window import PartitionToValidate, validate_partitions

__all__ = [
    "DOCS_DIR",
    "DOCS_MODES",
    "INTERVAL_PARAMETERS",
    "MAX_EXAMPLES",
    "REPORT_FILE",
    "RESULT_FORMATS",
    "SEVERITIES",
    "FailedExpectation",
    "PartitionToValidate",
    "PartitionUnreadable",
    "ValidationOutcome",
    "batches_released",
    "import_gx",
    "load_suite",
    "parse_suite",
    "read_partition",
    "validate_frame",
    "validate_partition",
    "validate_partitions",
]
