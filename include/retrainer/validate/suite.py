"""Reading a suite: GX 1.x JSON whose every expectation carries ``meta.severity``, checked strictly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrainer.errors import SuiteInvalid
from retrainer.validate.gx import import_gx

if TYPE_CHECKING:
    import great_expectations as gx


SEVERITIES = ("critical", "warning")
# What gx.ExpectationSuite(...) and ExpectationConfiguration(...) accept in GX 1.24.
_SUITE_KEYS = frozenset({"name", "expectations", "suite_parameters", "meta", "notes", "id"})
_EXPECTATION_KEYS = frozenset(
    {"type", "kwargs", "meta", "notes", "description", "severity", "id", "rendered_content"}
)


def load_suite(path: Path) -> gx.ExpectationSuite:
    """Read a GX 1.x suite JSON; raise SuiteInvalid (a ValueError) naming the file and the problem.

    GX's own constructor logs and silently drops an expectation whose type it does not know, so
    each expectation is built here first: a typo in the suite must fail loudly, not weaken the gate.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteInvalid(f"{path}: cannot read validation suite ({exc.strerror or exc})") from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SuiteInvalid(f"{path}: validation suite is not valid JSON: {exc}") from exc
    return parse_suite(raw, path)


def parse_suite(raw: Any, where: Path | str) -> gx.ExpectationSuite:
    """Build a suite from its JSON object (as load_suite does); errors name ``where``."""
    path = where  # a file, or wherever the object came from
    if not isinstance(raw, dict):
        raise SuiteInvalid(f"{path}: validation suite must be a JSON object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _SUITE_KEYS)
    if unknown:
        raise SuiteInvalid(f"{path}: unknown suite keys {unknown}; allowed: {sorted(_SUITE_KEYS)}")
    if not isinstance(raw.get("name"), str) or not raw["name"]:
        raise SuiteInvalid(f"{path}: suite 'name' must be a non-empty string")
    expectations = raw.get("expectations")
    if not isinstance(expectations, list) or not expectations:
        raise SuiteInvalid(f"{path}: suite 'expectations' must be a non-empty list")

    gx = import_gx()
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    checked = [
        _check_expectation(path, i, exp, ExpectationConfiguration) for i, exp in enumerate(expectations)
    ]
    try:
        suite = gx.ExpectationSuite(**{**raw, "expectations": checked})
    except Exception as exc:  # GX raises TypeError, ValueError or its own errors here
        raise SuiteInvalid(f"{path}: invalid validation suite: {exc}") from exc
    if len(suite.expectations) != len(checked):
        raise SuiteInvalid(
            f"{path}: GX kept {len(suite.expectations)} of {len(checked)} expectations; see the GX log"
        )
    return suite


def _check_expectation(path: Path | str, index: int, exp: Any, configuration_cls: type) -> dict:
    where = f"{path}: expectation #{index}"
    if not isinstance(exp, dict):
        raise SuiteInvalid(f"{where}: must be a JSON object, got {type(exp).__name__}")
    kind = exp.get("type")
    where = f"{where} ({kind})"
    unknown = sorted(set(exp) - _EXPECTATION_KEYS)
    if unknown:
        raise SuiteInvalid(f"{where}: unknown keys {unknown}")
    if not isinstance(kind, str) or not isinstance(exp.get("kwargs"), dict):
        raise SuiteInvalid(f"{where}: needs a string 'type' and an object 'kwargs'")
    meta = exp.get("meta")
    severity = meta.get("severity") if isinstance(meta, dict) else None
    if severity not in SEVERITIES:
        raise SuiteInvalid(f"{where}: meta.severity must be one of {SEVERITIES}, got {severity!r}")
    if exp.get("severity", severity) != severity:
        raise SuiteInvalid(f"{where}: severity {exp['severity']!r} disagrees with meta.severity {severity!r}")
    # GX 1.24 has its own severity field; mirror meta.severity into it so Data Docs agree.
    checked = {**exp, "severity": severity}
    try:
        configuration_cls(**checked).to_domain_obj()
    except Exception as exc:  # unknown type, pydantic validation error, bad kwargs
        reason = str(exc).strip().replace("\n", "; ")
        raise SuiteInvalid(f"{where}: invalid expectation: {reason}") from exc
    return checked
