"""retrainer.validate.gx: the GX run's costs switched off change no answer GX gives."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from retrainer.validate import gx as rgx

ROOT = Path(__file__).resolve().parents[2]
SUITES = sorted((ROOT / "validation_suites").glob("*.json"))
RUNTIME_CONFIGURATIONS = (None, {}, {"result_format": "SUMMARY"}, {"result_format": {"result_format": "COMPLETE"}},
                          {"catch_exceptions": False, "include_config": False})


def _extra_expectations(gx):
    """Expectations of kinds and arguments the shipped suites lack (row conditions, parameters, notes)."""
    e = gx.expectations
    return [
        e.ExpectColumnValuesToBeBetween(column="x", min_value={"$PARAMETER": "low"}, max_value=3, mostly=0.9,
                                        row_condition='y=="a"', condition_parser="pandas", severity="warning"),
        e.ExpectColumnPairValuesAToBeGreaterThanB(column_A="a", column_B="b", or_equal=True, ignore_row_if="either_value_is_missing"),
        e.ExpectCompoundColumnsToBeUnique(column_list=["a", "b"], notes="why", meta={"owner": "team"}),
        e.ExpectTableRowCountToBeBetween(min_value=1, max_value=None),
        e.ExpectColumnProportionOfNonNullValuesToBeBetween(column="x", min_value=0.5, strict_min=True),
        e.ExpectColumnValuesToMatchRegex(column="s", regex="^a", mostly=1.0, description="starts with a"),
    ]


def _expectations():
    gx = rgx.import_gx()
    found = []
    for path in SUITES:
        suite = gx.ExpectationSuite(**{k: v for k, v in json.loads(path.read_text()).items()
                                        if k in ("name", "expectations", "meta")})
        found += [(f"{path.stem}:{i}:{exp.expectation_type}", exp) for i, exp in enumerate(suite.expectations)]
    found += [(f"extra:{i}:{exp.expectation_type}", exp) for i, exp in enumerate(_extra_expectations(gx))]
    return found


def _gx_getters(expectation) -> dict:
    keys = set(expectation.domain_keys) | set(expectation.success_keys) | set(expectation.runtime_keys) | {"no_such_key"}
    return {
        "domain": expectation._get_domain_kwargs(),
        "success": expectation._get_success_kwargs(),
        "runtime": [expectation._get_runtime_kwargs(runtime_configuration=c) for c in RUNTIME_CONFIGURATIONS],
        "one": {key: expectation._get_success_kwarg(key) for key in sorted(keys)},
        "one_default": expectation._get_success_kwarg("no_such_key", default="fallback"),
    }


def test_the_shipped_suites_are_all_compared():
    names = {name.split(":")[0] for name, _ in _expectations()}
    assert {"churn_raw", "churn_prepared", "extra"} <= names
    assert len(_expectations()) > 60


def test_reading_an_expectations_arguments_once_gives_what_gx_gives_for_every_expectation():
    expectations = _expectations()
    theirs = {name: _gx_getters(exp) for name, exp in expectations}
    with rgx.lean_gx_run():
        ours = {name: _gx_getters(exp) for name, exp in expectations}
    for name in theirs:
        assert ours[name] == theirs[name], name


def test_the_pinned_gx_gets_the_faster_getters_and_gets_its_own_back_after_the_run():
    from great_expectations.expectations.expectation import Expectation

    assert rgx._gx_version().startswith(rgx.KWARGS_GETTERS_CHECKED), (
        f"GX {rgx._gx_version()} is not the version the argument getters were checked against: compare "
        "Expectation._get_*_kwargs with retrainer.validate.gx's and extend KWARGS_GETTERS_CHECKED")
    own = {name: Expectation.__dict__[name] for name in rgx._KWARGS_GETTERS}
    with rgx.lean_gx_run():
        assert all(Expectation.__dict__[name] is getter for name, getter in rgx._KWARGS_GETTERS.items())
        with rgx.lean_gx_run():  # nested (a failure's detailed re-run inside a run)
            pass
        assert all(Expectation.__dict__[name] is getter for name, getter in rgx._KWARGS_GETTERS.items())
    assert {name: Expectation.__dict__[name] for name in rgx._KWARGS_GETTERS} == own


def test_overlapping_runs_on_two_threads_leave_gx_its_own_getters():
    from great_expectations.expectations.expectation import Expectation

    own = {name: Expectation.__dict__[name] for name in rgx._KWARGS_GETTERS}
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with rgx.lean_gx_run():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second() -> None:
        first_in.wait(10)
        with rgx.lean_gx_run():
            second_in.set()
            first_out.wait(10)
            # the first run ended while this one runs: this one still has the faster getters
            assert Expectation.__dict__["_get_runtime_kwargs"] is rgx._KWARGS_GETTERS["_get_runtime_kwargs"]

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert {name: Expectation.__dict__[name] for name in rgx._KWARGS_GETTERS} == own


def test_another_gx_version_keeps_its_own_getters(monkeypatch):
    from great_expectations.expectations.expectation import Expectation

    monkeypatch.setattr(rgx, "KWARGS_GETTERS_CHECKED", ("0.0.",))
    own = Expectation.__dict__["_get_runtime_kwargs"]
    with rgx.lean_gx_run():
        assert Expectation.__dict__["_get_runtime_kwargs"] is own


@pytest.mark.parametrize("result_format", ["BOOLEAN_ONLY", "SUMMARY"])
def test_a_failing_validation_gives_the_same_result_with_and_without_the_faster_getters(tmp_path, result_format):
    import pandas as pd

    gx = rgx.import_gx()
    frame = pd.DataFrame({"x": [1.0, 2.0, 50.0, None, 4.0], "y": ["a", "a", "b", "a", None],
                          "a": [3, 2, 1, 0, 5], "b": [1, 1, 1, 1, 1], "s": ["ab", "ax", "b", "a", "c"]})

    def run() -> dict:
        context = rgx.ephemeral_context(None)
        suite = context.suites.add(gx.ExpectationSuite(name="s", expectations=_extra_expectations(gx)))
        batch = context.data_sources.add_pandas("p").add_dataframe_asset("a").add_batch_definition_whole_dataframe("w")
        definition = context.validation_definitions.add(gx.ValidationDefinition(name="d", data=batch, suite=suite))
        result = definition.run(batch_parameters={"dataframe": frame}, expectation_parameters={"low": 0},
                                result_format=result_format).to_json_dict()
        return [{k: r[k] for k in ("success", "result", "expectation_config")} for r in result["results"]]

    def without_ids(results: list[dict]) -> list[dict]:
        return [{**r, "expectation_config": {k: v for k, v in r["expectation_config"].items() if k != "id"}}
                for r in results]

    theirs = run()
    with rgx.lean_gx_run():
        ours = run()
    assert without_ids(ours) == without_ids(theirs)
    assert not all(r["success"] for r in theirs)
