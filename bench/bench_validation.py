"""Benchmark the data-quality gate: Great Expectations against the same checks in plain pandas.

One generated daily partition (1M rows; 200k with BENCH_QUICK=1), written as the ingest step
writes partitions (text as ``object`` columns, zstd Parquet), is validated against
validation_suites/churn_raw.json, in one process, repetitions interleaved so both sides see the
same machine load:

* GX gate: ``validate_partition`` as the training DAG calls it (reads the Parquet file, Data Docs
  on), the same without Data Docs, and ``validate_frame`` on a frame already in memory;
* a first run's window: 28 small daily partitions validated as the training DAG's validate step does
  (``validate_partitions``: read, GX, reports, Data Docs), each partition alone as before
  (``validate_partition`` in a loop), and the pandas checks partition by partition;
* pandas: an independent re-implementation of every expectation type the suite uses, driven by
  the same suite JSON (same columns, bounds, ``mostly``, parameters), on the same file / frame.

The two must agree expectation by expectation (on the clean partition and on a broken one),
otherwise the benchmark fails: a fast check that checks less would prove nothing. The one-time
GX import is timed in a fresh interpreter and reported apart from the ratio.

    python bench/bench_validation.py            # writes bench/results/validation.json
    BENCH_QUICK=1 python bench/bench_validation.py
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from retrainer import validate  # noqa: E402
from retrainer.datagen import IncidentSpec, generate_day  # noqa: E402
from retrainer.ingest import write_partition  # noqa: E402

SUITE = ROOT / "validation_suites" / "churn_raw.json"
RESULTS = ROOT / "bench" / "results" / "validation.json"
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
ROWS = int(os.environ.get("BENCH_VALIDATION_ROWS", 200_000 if QUICK else 1_000_000))
REPEATS = int(os.environ.get("BENCH_VALIDATION_REPEATS", 3 if QUICK else 5))
DAY = date(2026, 1, 15)
SEED = 42
TARGET_RATIO = 5.0
# A first run's window: 28 daily partitions of the demo's size (100k rows in all; quick: 28k).
WINDOW_DAYS = 28
WINDOW_ROWS = int(os.environ.get("BENCH_VALIDATION_WINDOW_ROWS", 28_000 if QUICK else 100_000))
WINDOW_BAD_DAY = 20  # the agreement run breaks this day of the window
# A day with several incidents: exercises the failure path (details for failed expectations).
INCIDENTS = (
    IncidentSpec(DAY, "unseen_category", column="region", fraction=0.01),
    IncidentSpec(DAY, "out_of_range", column="tenure_months", fraction=0.01),
    IncidentSpec(DAY, "duplicate_keys", fraction=0.001),
)


# --- the same checks in plain pandas ---------------------------------------------------------------


def _resolve(value: Any, params: dict) -> Any:
    if isinstance(value, dict) and set(value) == {"$PARAMETER"}:
        return params[value["$PARAMETER"]]
    return value


def _map_result(considered: int, unexpected: int, mostly: float) -> tuple[bool, int]:
    # GX: a column map expectation over zero non-null rows is vacuously true.
    if considered == 0:
        return True, unexpected
    return (considered - unexpected) / considered >= mostly, unexpected


def _between(values: pd.Series, kw: dict) -> pd.Series:
    """True where a non-null value lies outside the bounds."""
    lo, hi = kw.get("min_value"), kw.get("max_value")
    if isinstance(lo, datetime) or isinstance(hi, datetime):
        lo = None if lo is None else pd.Timestamp(lo)
        hi = None if hi is None else pd.Timestamp(hi)
    bad = np.zeros(len(values), dtype=bool)
    if lo is not None:
        bad |= (values <= lo).to_numpy() if kw.get("strict_min") else (values < lo).to_numpy()
    if hi is not None:
        bad |= (values >= hi).to_numpy() if kw.get("strict_max") else (values > hi).to_numpy()
    return pd.Series(bad, index=values.index)


_NATIVE_TYPES = {"int": (int, np.integer), "float": (float, np.floating), "datetime": (datetime, pd.Timestamp)}


def _type_ok(series: pd.Series, type_list: list[str]) -> tuple[bool, Any]:
    dtype = series.dtype
    if not pd.api.types.is_object_dtype(dtype):
        return str(dtype) in type_list, str(dtype)
    # An object column (e.g. text where numbers belong): every non-null value must be of a listed kind.
    kinds = tuple(
        t for name, types in _NATIVE_TYPES.items() if any(name in x.lower() for x in type_list) for t in types
    )
    values = series.dropna()
    bad = int((~values.map(lambda v: isinstance(v, kinds) and not isinstance(v, bool))).sum()) if kinds else len(values)
    return bad == 0, "object"


def pandas_checks(df: pd.DataFrame, suite: dict, params: dict) -> list[dict]:
    """Evaluate every expectation of ``suite`` on ``df``; one {type, column, success} per expectation."""
    results = []
    n = len(df)
    for exp in suite["expectations"]:
        kind = exp["type"]
        kw = {k: _resolve(v, params) for k, v in exp["kwargs"].items()}
        column = kw.get("column")
        entry = {"type": kind, "column": column, "severity": exp["meta"]["severity"]}
        if column is not None and column not in df.columns:
            results.append({**entry, "success": False, "error": "missing column"})
            continue
        s = df[column] if column is not None else None
        mostly = kw.get("mostly", 1.0)
        if kind == "expect_table_columns_to_match_set":
            expected = set(kw["column_set"])
            ok = set(df.columns) == expected if kw.get("exact_match", True) else expected <= set(df.columns)
        elif kind == "expect_table_row_count_to_be_between":
            ok = (kw.get("min_value") is None or n >= kw["min_value"]) and (
                kw.get("max_value") is None or n <= kw["max_value"]
            )
        elif kind == "expect_column_values_to_not_be_null":
            ok = True if n == 0 else (n - int(s.isna().sum())) / n >= mostly
        elif kind == "expect_column_values_to_be_unique":
            values = s.dropna()
            ok, _ = _map_result(len(values), int(values.duplicated(keep=False).sum()), mostly)
        elif kind == "expect_column_values_to_match_regex":
            values = s.dropna()
            matched = values.str.contains(kw["regex"], regex=True) if len(values) else values
            ok, _ = _map_result(len(values), int((~matched.astype(bool)).sum()), mostly)
        elif kind == "expect_column_values_to_be_in_set":
            values = s.dropna()
            ok, _ = _map_result(len(values), int((~values.isin(kw["value_set"])).sum()), mostly)
        elif kind == "expect_column_values_to_be_between":
            values = s.dropna()
            try:
                ok, _ = _map_result(len(values), int(_between(values, kw).sum()), mostly)
            except TypeError:  # text in a numeric column: GX reports an error, the check fails
                ok = False
        elif kind == "expect_column_values_to_be_in_type_list":
            ok, _ = _type_ok(s, kw["type_list"])
        elif kind == "expect_column_mean_to_be_between":
            try:
                mean = float(s.mean())
            except TypeError:
                mean = float("nan")
            ok = not np.isnan(mean) and kw["min_value"] <= mean <= kw["max_value"]
        elif kind == "expect_column_proportion_of_non_null_values_to_be_between":
            share = float(s.notna().mean()) if n else float("nan")
            ok = not np.isnan(share) and kw["min_value"] <= share <= kw["max_value"]
        else:
            raise NotImplementedError(f"the pandas baseline has no implementation of {kind}")
        results.append({**entry, "success": bool(ok)})
    return results


# --- timing ------------------------------------------------------------------------------------


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def _gx_import_seconds() -> float:
    """GX import in a fresh interpreter (what a task process pays once)."""
    code = (
        "import time, sys; sys.path.insert(0, sys.argv[1]); t = time.perf_counter();"
        " from retrainer.validate import import_gx; import_gx(); print(time.perf_counter() - t)"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter running a fixed snippet
        [sys.executable, "-c", code, str(ROOT / "include")], check=True, capture_output=True, text=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def _as_ingested(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as the ingest step writes it: text arrives from SQL as ``object`` columns."""
    return frame.astype({c: object for c, t in frame.dtypes.items() if isinstance(t, pd.StringDtype)})


def _read(path: Path) -> pd.DataFrame:
    # The gate's own reader when it has one, so both sides get the same frame.
    reader = getattr(validate, "read_partition", None)
    return reader(path) if reader else pd.read_parquet(path)


def _failed_keys(outcome: validate.ValidationOutcome) -> set[tuple[str, str | None]]:
    return {(f.expectation_type, f.column) for f in outcome.failed}


def _pandas_failed_keys(results: list[dict]) -> set[tuple[str, str | None]]:
    return {(r["type"], r["column"]) for r in results if not r["success"]}


def main() -> int:
    suite = json.loads(SUITE.read_text(encoding="utf-8"))
    start = datetime(DAY.year, DAY.month, DAY.day)
    interval = {"interval_start": start, "interval_end": start + timedelta(days=1)}

    print(f"validation benchmark: {ROWS:,} rows, {len(suite['expectations'])} expectations, {REPEATS} repeats")
    import_seconds = [_gx_import_seconds() for _ in range(2)]

    with tempfile.TemporaryDirectory(prefix="bench-validation-") as tmp:
        tmp_path = Path(tmp)
        clean_file, broken_file = tmp_path / "clean.parquet", tmp_path / "broken.parquet"
        write_partition(_as_ingested(generate_day(DAY, ROWS, SEED)), clean_file)
        write_partition(_as_ingested(generate_day(DAY, ROWS, SEED, incidents=INCIDENTS)), broken_file)
        validate.import_gx()
        counter = iter(range(10_000))

        def report_dir() -> Path:
            return tmp_path / f"report{next(counter)}"

        def gx_partition(path: Path, docs: bool) -> validate.ValidationOutcome:
            return validate.validate_partition(path, SUITE, report_dir(), build_docs=docs, **interval)

        def gx_frame(df: pd.DataFrame) -> validate.ValidationOutcome:
            return validate.validate_frame(
                df, SUITE, report_dir(), partition_label="bench", build_docs=False, **interval
            )

        def pandas_partition(path: Path) -> list[dict]:
            return pandas_checks(_read(path), suite, interval)

        frames = {"clean": _read(clean_file), "broken": _read(broken_file)}
        # The frame pandas' default reader gives (text as Python objects), for comparison.
        object_frame = pd.read_parquet(clean_file)
        files = {"clean": clean_file, "broken": broken_file}

        # Warm-up, and the agreement check that makes the comparison meaningful.
        agreement = {}
        for name in ("clean", "broken"):
            gx_failed = _failed_keys(gx_partition(files[name], docs=False))
            pd_failed = _pandas_failed_keys(pandas_partition(files[name]))
            agreement[name] = {"gx_failed": sorted(map(list, gx_failed)), "same": gx_failed == pd_failed}
            if gx_failed != pd_failed:
                print(f"DISAGREEMENT on {name}: GX only {gx_failed - pd_failed}, pandas only {pd_failed - gx_failed}")
        if not agreement["broken"]["gx_failed"] or agreement["clean"]["gx_failed"]:
            print("the clean partition must pass and the broken one fail")
            return 1

        cases = {
            "gx_partition_docs": lambda: gx_partition(clean_file, docs=True),
            "gx_partition": lambda: gx_partition(clean_file, docs=False),
            "pandas_partition": lambda: pandas_partition(clean_file),
            "gx_frame": lambda: gx_frame(frames["clean"]),
            "pandas_frame": lambda: pandas_checks(frames["clean"], suite, interval),
            "gx_frame_object_text": lambda: gx_frame(object_frame),
            "pandas_frame_object_text": lambda: pandas_checks(object_frame, suite, interval),
            "read_partition": lambda: _read(clean_file),
            "gx_partition_failing_docs": lambda: gx_partition(broken_file, docs=True),
            "gx_frame_failing": lambda: gx_frame(frames["broken"]),
            "pandas_frame_failing": lambda: pandas_checks(frames["broken"], suite, interval),
        }
        wall: dict[str, list[float]] = {name: [] for name in cases}
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(REPEATS):
            for name, run in cases.items():  # interleaved: machine load hits every case alike
                w0, c0 = time.perf_counter(), time.process_time()
                run()
                cpu[name].append(time.process_time() - c0)
                wall[name].append(time.perf_counter() - w0)

    window = _window_benchmark(suite)
    med = {name: _median(values) for name, values in wall.items()}
    med_cpu = {name: _median(values) for name, values in cpu.items()}
    pairs = {
        "checks": ("gx_frame", "pandas_frame"),
        "checks_object_text": ("gx_frame_object_text", "pandas_frame_object_text"),
        "gate_with_docs": ("gx_partition_docs", "pandas_partition"),
        "gate_without_docs": ("gx_partition", "pandas_partition"),
        "failing_checks": ("gx_frame_failing", "pandas_frame_failing"),
    }
    ratios = {k: med[a] / med[b] for k, (a, b) in pairs.items()}
    ratios_cpu = {k: med_cpu[a] / med_cpu[b] for k, (a, b) in pairs.items()}
    result = {
        "benchmark": "validation",
        "rows": ROWS,
        "expectations": len(suite["expectations"]),
        "repeats": REPEATS,
        "quick": QUICK,
        "median_seconds": {k: round(v, 4) for k, v in med.items()},
        "median_cpu_seconds": {k: round(v, 4) for k, v in med_cpu.items()},
        "samples_seconds": {k: [round(x, 4) for x in v] for k, v in wall.items()},
        "ratio_gx_over_pandas": {k: round(v, 2) for k, v in ratios.items()},
        "ratio_gx_over_pandas_cpu": {k: round(v, 2) for k, v in ratios_cpu.items()},
        "target_ratio": TARGET_RATIO,
        # Wall time is what a run waits for; CPU time is steadier on a shared, busy machine.
        "meets_target": {"wall": ratios["checks"] <= TARGET_RATIO, "cpu": ratios_cpu["checks"] <= TARGET_RATIO},
        "gx_import_seconds": [round(x, 3) for x in import_seconds],
        "agreement": agreement,
        "window": window,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
            "pandas": pd.__version__,
            "great_expectations": _gx_version(),
        },
        "command": ("BENCH_QUICK=1 " if QUICK else "") + "python bench/bench_validation.py",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp_file = RESULTS.with_name(f".{RESULTS.name}.tmp")
    tmp_file.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_file, RESULTS)
    _print_table(result)
    return 0 if all(a["same"] for a in agreement.values()) and window["agreement"]["same"] else 1


def _window_partitions(root: Path, incidents: tuple = ()) -> list:
    first = DAY - timedelta(days=WINDOW_DAYS - 1)
    parts = []
    for i in range(WINDOW_DAYS):
        day = first + timedelta(days=i)
        path = root / f"dt={day.isoformat()}" / "part.parquet"
        frame = generate_day(day, WINDOW_ROWS // WINDOW_DAYS, SEED + i, incidents=[x for x in incidents if x.day == day])
        write_partition(_as_ingested(frame), path)
        start = datetime(day.year, day.month, day.day)
        parts.append(validate.PartitionToValidate(path, root / "reports" / day.isoformat(), start,
                                                  start + timedelta(days=1), day.isoformat()))
    return parts


def _window_benchmark(suite: dict) -> dict:
    """A first run's 28 partitions: the validate step's gate, the old one-GX-run-per-partition loop and
    pandas, interleaved; the per-day verdicts of the step's gate and pandas must agree on a broken window."""
    with tempfile.TemporaryDirectory(prefix="bench-window-") as tmp:
        root = Path(tmp)
        clean = _window_partitions(root / "clean")
        bad_day = clean[WINDOW_BAD_DAY].interval_start.date()
        broken = _window_partitions(root / "broken", (
            IncidentSpec(bad_day, "out_of_range", column="tenure_months", fraction=0.02),
            IncidentSpec(bad_day, "duplicate_keys", fraction=0.01),
        ))
        counter = iter(range(10_000))

        def step_gate(parts: list) -> dict:
            out = root / f"window{next(counter)}"
            # As the validate step calls it: the run's own (last) day alone, with its full Data Docs.
            outcomes = validate.validate_partitions(parts, SUITE, out, build_docs=True, alone={parts[-1].label})
            return {p.label: o for p, o in outcomes}

        def one_by_one(parts: list) -> None:
            for p in parts:
                validate.validate_partition(p.path, SUITE, root / f"alone{next(counter)}", build_docs=True,
                                            interval_start=p.interval_start, interval_end=p.interval_end)

        def pandas_gate(parts: list) -> dict:
            return {p.label: pandas_checks(_read(p.path), suite, {"interval_start": p.interval_start,
                                                                  "interval_end": p.interval_end}) for p in parts}

        gx_days = {day: _failed_keys(o) for day, o in step_gate(broken).items()}
        pd_days = {day: _pandas_failed_keys(r) for day, r in pandas_gate(broken).items()}
        agreement = {"same": gx_days == pd_days and bool(gx_days[bad_day.isoformat()])
                     and not any(v for d, v in gx_days.items() if d != bad_day.isoformat()),
                     "gx_failed_on_bad_day": sorted(map(list, gx_days[bad_day.isoformat()]))}
        cases = {"gx_window_step": lambda: step_gate(clean), "gx_window_one_by_one": lambda: one_by_one(clean),
                 "pandas_window": lambda: pandas_gate(clean), "gx_window_step_failing": lambda: step_gate(broken)}
        wall: dict[str, list[float]] = {name: [] for name in cases}
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(REPEATS):
            for name, run in cases.items():
                w0, c0 = time.perf_counter(), time.process_time()
                run()
                cpu[name].append(time.process_time() - c0)
                wall[name].append(time.perf_counter() - w0)
    med = {k: round(_median(v), 4) for k, v in wall.items()}
    med_cpu = {k: round(_median(v), 4) for k, v in cpu.items()}
    return {
        "days": WINDOW_DAYS, "rows": WINDOW_ROWS, "median_seconds": med, "median_cpu_seconds": med_cpu,
        "samples_seconds": {k: [round(x, 4) for x in v] for k, v in wall.items()},
        "ratio_step_over_pandas": round(med["gx_window_step"] / med["pandas_window"], 2),
        "ratio_step_over_pandas_cpu": round(med_cpu["gx_window_step"] / med_cpu["pandas_window"], 2),
        "ratio_one_by_one_over_pandas": round(med["gx_window_one_by_one"] / med["pandas_window"], 2),
        "speedup_step_over_one_by_one": round(med["gx_window_one_by_one"] / med["gx_window_step"], 2),
        "agreement": agreement, "target_ratio": TARGET_RATIO,
    }


def _gx_version() -> str:
    import great_expectations as gx

    return gx.__version__


def _print_table(result: dict) -> None:
    med, cpu = result["median_seconds"], result["median_cpu_seconds"]
    rows = [
        ("gate as the DAG runs it (read + GX + Data Docs)", "gx_partition_docs", "pandas_partition"),
        ("gate without Data Docs (read + GX)", "gx_partition", "pandas_partition"),
        ("checks on the frame the gate reads (Arrow text)", "gx_frame", "pandas_frame"),
        ("checks on pandas' default frame (object text)", "gx_frame_object_text", "pandas_frame_object_text"),
        ("checks on a failing frame (details included)", "gx_frame_failing", "pandas_frame_failing"),
    ]
    title = f"median of {result['repeats']}, {result['rows']:,} rows"
    print(f"\n{title:<50} {'wall: GX':>9} {'pandas':>7} {'GX/pd':>6}   {'cpu: GX':>8} {'pandas':>7} {'GX/pd':>6}")
    for label, gx_key, pd_key in rows:
        print(
            f"{label:<50} {med[gx_key]:>9.2f} {med[pd_key]:>7.2f} {med[gx_key] / med[pd_key]:>5.1f}x"
            f"   {cpu[gx_key]:>8.2f} {cpu[pd_key]:>7.2f} {cpu[gx_key] / cpu[pd_key]:>5.1f}x"
        )
    for label, key in (
        ("failing partition as the DAG runs it", "gx_partition_failing_docs"),
        ("reading the partition (inside both gate rows)", "read_partition"),
    ):
        print(f"{label:<50} {med[key]:>9.2f} {'':>15}   {cpu[key]:>8.2f}")
    print(f"GX import (fresh interpreter, not in the ratios): {result['gx_import_seconds']} s")
    ratio, ratio_cpu = result["ratio_gx_over_pandas"]["checks"], result["ratio_gx_over_pandas_cpu"]["checks"]
    print(f"checks ratio: {ratio}x wall, {ratio_cpu}x cpu (target <= {result['target_ratio']}x)")
    w = result["window"]
    print(f"first run's window ({w['days']} partitions, {w['rows']:,} rows): validate step "
          f"{w['median_seconds']['gx_window_step']:.2f} s, one GX run per partition {w['median_seconds']['gx_window_one_by_one']:.2f} s, "
          f"pandas {w['median_seconds']['pandas_window']:.2f} s: {w['ratio_step_over_pandas']}x "
          f"(cpu {w['ratio_step_over_pandas_cpu']}x; before: {w['ratio_one_by_one_over_pandas']}x); "
          f"verdicts {'agree' if w['agreement']['same'] else 'DIFFER'}")
    print(f"written: {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
