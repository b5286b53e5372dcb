"""Drift check speed and agreement: Evidently on the full data against Retrainer's fast path.

For each benchmark case of ``bench/drift_cases.py`` (20 columns with known drifted columns, some
built to land near Evidently's 0.1 threshold), on the same in-memory frames:

* **full Evidently**: ``Report([DataDriftPreset])`` on all rows (what a naive monitor runs);
* **ours, per check**: ``drift_table`` (exact per-column statistics against a cached reference
  profile) plus the Evidently report on day-stratified samples with those answers injected; this is
  what ``drift_monitor`` pays every day;
* **ours, per champion**: building the reference profile and its report sample (once per champion);
* **sampled Evidently**: Evidently alone on the same samples, to show what sampling without the
  exact statistics would change.

It checks that every column's decision agrees with full Evidently, then simulates months of daily
checks on generated data to measure the false-alarm rate and detection delays.

    python bench/bench_drift.py            # 1M vs 1M rows x 20 columns (several minutes)
    BENCH_QUICK=1 python bench/bench_drift.py   # 100k vs 100k rows

Writes ``bench/results/drift.json`` and prints a table.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import date, timedelta
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT)]

from bench.drift_cases import CASES, drift_case, simulate_daily_checks  # noqa: E402
from retrainer import drift  # noqa: E402
from retrainer.datagen import DriftSpec  # noqa: E402
from retrainer.deployment import find_deployment  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0", "false")
ROWS = int(os.environ.get("BENCH_DRIFT_ROWS", 100_000 if QUICK else 1_000_000))
SELECTED = [c for c in os.environ.get("BENCH_DRIFT_CASES", ",".join(CASES)).split(",") if c]
DRIFT_SHARE = 0.2
SAMPLE_ROWS = 20_000  # models/churn.yaml drift.report_sample_rows
WORKERS = 2  # models/churn.yaml drift.workers
RESULTS = ROOT / "bench" / "results" / "drift.json"


class Clock:
    """Wall and CPU seconds of a call (this machine is shared: CPU time is the steadier measure)."""

    def __init__(self, wall: float, cpu: float):
        self.wall, self.cpu = wall, cpu

    def __add__(self, other: Clock) -> Clock:
        return Clock(self.wall + other.wall, self.cpu + other.cpu)

    def to_dict(self) -> dict:
        return {"wall": round(self.wall, 3), "cpu": round(self.cpu, 3)}


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, Clock(time.perf_counter() - wall, time.process_time() - cpu)


def warm_up() -> None:
    """Import Evidently and plotly and run one tiny report, so no side pays first-use costs."""
    case = drift_case("no_drift", 2_000)
    specs = drift.column_specs(case.numeric, case.categorical)
    drift.evidently_drift(case.reference, case.current, specs, DRIFT_SHARE)
    profile = drift.ReferenceProfile.from_frame(case.reference, specs)
    table = drift.drift_table(profile, case.current, specs, DRIFT_SHARE)
    drift.drift_report(case.reference, case.current, table, specs)


def bench_case(name: str) -> dict:
    case, generated = timed(lambda: drift_case(name, ROWS))
    specs = drift.column_specs(case.numeric, case.categorical)

    full, full_s = timed(lambda: drift.evidently_drift(case.reference, case.current, specs, DRIFT_SHARE))

    def per_champion():
        profile = drift.ReferenceProfile.from_frame(case.reference, specs, workers=WORKERS)
        return profile, drift.stratified_sample(case.reference, SAMPLE_ROWS, seed=1)

    (profile, reference_sample), profile_s = timed(per_champion)

    def per_check():
        table = drift.drift_table(profile, case.current, specs, DRIFT_SHARE, reference_frame=lambda: case.reference,
                                  workers=WORKERS)
        current_sample = drift.stratified_sample(case.current, SAMPLE_ROWS, seed=2)
        snapshot = drift.drift_report(reference_sample, current_sample, table, specs)
        return table, snapshot, current_sample

    (ours, snapshot, current_sample), check_s = timed(per_check)
    stats_only, stats_s = timed(lambda: drift.drift_table(profile, case.current, specs, DRIFT_SHARE, workers=WORKERS))
    sampled, sampled_s = timed(lambda: drift.evidently_drift(reference_sample, current_sample, specs, DRIFT_SHARE))

    theirs = full.by_column()
    reported = drift.snapshot_table(snapshot, specs, DRIFT_SHARE).by_column()
    columns = []
    for mine in ours.columns:
        other = theirs[mine.column]
        columns.append({
            "column": mine.column,
            "method": mine.method,
            "threshold": mine.threshold,
            "score_full_evidently": other.score,
            "score_ours": mine.score,
            "abs_diff": abs(mine.score - other.score),
            "drifted_full_evidently": other.drifted,
            "drifted_ours": mine.drifted,
            "drifted_in_our_report": reported[mine.column].drifted,
            "computed_by": mine.computed_by,
            "score_sampled_evidently": sampled.by_column()[mine.column].score,
            "drifted_sampled_evidently": sampled.by_column()[mine.column].drifted,
            "expected_drift": mine.column in case.expected,
            "near_threshold": mine.column in case.near,
        })
    agree = sum(c["drifted_ours"] == c["drifted_full_evidently"] == c["drifted_in_our_report"] for c in columns)
    certain = [c for c in columns if not c["near_threshold"]]
    return {
        "case": name,
        "rows_reference": len(case.reference),
        "rows_current": len(case.current),
        "columns": len(columns),
        "seconds": {
            "generate": generated.to_dict(),
            "full_evidently": full_s.to_dict(),
            "ours_check": check_s.to_dict(),
            "ours_statistics_only": stats_s.to_dict(),
            "ours_reference_profile": profile_s.to_dict(),
            "sampled_evidently": sampled_s.to_dict(),
        },
        "speedup_check": {"wall": round(full_s.wall / check_s.wall, 1), "cpu": round(full_s.cpu / check_s.cpu, 1)},
        "speedup_check_with_profile": {
            "wall": round(full_s.wall / (check_s + profile_s).wall, 1),
            "cpu": round(full_s.cpu / (check_s + profile_s).cpu, 1),
        },
        "agree": agree,
        "max_abs_score_diff": max(c["abs_diff"] for c in columns),
        "drifted_full_evidently": sorted(c["column"] for c in columns if c["drifted_full_evidently"]),
        "expected_drift_found": all(c["drifted_ours"] == c["expected_drift"] for c in certain),
        "sampled_evidently_flips": sorted(c["column"] for c in columns
                                          if c["drifted_sampled_evidently"] != c["drifted_full_evidently"]),
        "per_column": columns,
    }


def false_alarm_and_delays() -> dict:
    policy = find_deployment(ROOT, explicit=ROOT / "models").load("churn").drift  # the demo model's policy
    first = date(2026, 5, 1)
    start = first + timedelta(days=5)
    seeds = (42, 7, 2024) if not QUICK else (42,)
    no_drift = [c for s in seeds for c in simulate_daily_checks(policy, first, 30, seed=s)]
    delays = {}
    for label, spec in {
        "abrupt (monthly_charges, num_support_calls)": DriftSpec(start=start, features=("monthly_charges", "num_support_calls")),
        "abrupt (tenure_months, payment_method)": DriftSpec(start=start, features=("tenure_months", "payment_method")),
        "gradual, 14-day ramp": DriftSpec(start=start, kind="gradual", features=("monthly_charges", "num_support_calls")),
    }.items():
        checks = simulate_daily_checks(policy, first, 20, drift=spec)
        retrains = [(date.fromisoformat(c.as_of) - start).days for c in checks if c.action == "retrain"]
        delays[label] = {"first_retrain_day": retrains[0] if retrains else None, "retrains_in_15_days": len(retrains)}
    return {
        "policy": policy.model_dump(include={"window_days", "drift_share", "critical_columns", "persistence", "cooldown_days"}),
        "rows_per_day": 2000,
        "no_drift_checks": len(no_drift),
        "false_alarm_signals": sum(c.signal for c in no_drift),
        "false_alarm_retrains": sum(c.action == "retrain" for c in no_drift),
        "largest_score_over_threshold": round(max(c.max_score for c in no_drift), 3),
        "detection": delays,
    }


def main() -> int:
    print(f"drift benchmark: {ROWS:,} vs {ROWS:,} rows x 20 columns, cases {SELECTED}{' (quick)' if QUICK else ''}")
    warm_up()
    cases = []
    for name in SELECTED:
        result = bench_case(name)
        cases.append(result)
        s = result["seconds"]
        print(f"  {name:<15} full Evidently {s['full_evidently']['wall']:7.1f}s | ours {s['ours_check']['wall']:5.2f}s "
              f"({result['speedup_check']['wall']:.0f}x) | agree {result['agree']}/{result['columns']}", flush=True)
    simulation = false_alarm_and_delays()
    out = {
        "rows": ROWS,
        "quick": QUICK,
        "drift_share": DRIFT_SHARE,
        "report_sample_rows": SAMPLE_ROWS,
        "workers": WORKERS,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "versions": {p: metadata.version(p) for p in ("evidently", "pandas", "numpy", "scipy", "pyarrow")},
        "cases": cases,
        "simulation": simulation,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")

    header = (f"{'case':<15} {'rows':>10} {'full Evidently':>16} {'ours per check':>16} {'speedup':>11} "
              f"{'profile':>7} {'agree':>6} {'max|dscore|':>11}  {'drifted (full Evidently)':<58} sampled-Evidently flips")
    print("\n" + header + "\n" + " " * 27 + "wall / cpu s" + " " * 5 + "wall / cpu s" + " " * 5 + "wall / cpu\n" + "-" * len(header))
    for r in cases:
        s = r["seconds"]
        full, ours, speed = s["full_evidently"], s["ours_check"], r["speedup_check"]
        ratio = f"{speed['wall']:.0f}x / {speed['cpu']:.0f}x"
        print(f"{r['case']:<15} {r['rows_current']:>10,} {full['wall']:>7.1f} / {full['cpu']:<6.1f} "
              f"{ours['wall']:>7.2f} / {ours['cpu']:<6.2f} {ratio:>11} "
              f"{s['ours_reference_profile']['wall']:>6.2f}s {r['agree']:>3}/{r['columns']:<2} "
              f"{r['max_abs_score_diff']:>11.1e}  {','.join(r['drifted_full_evidently']) or '-':<58} "
              f"{','.join(r['sampled_evidently_flips']) or '-'}")
    sim = simulation
    print(f"\nfalse alarms: {sim['false_alarm_signals']} drift signals and {sim['false_alarm_retrains']} retrains in "
          f"{sim['no_drift_checks']} daily checks without drift (largest column score "
          f"{sim['largest_score_over_threshold']:.2f} of its threshold)")
    for label, d in sim["detection"].items():
        print(f"detection: {label}: first retrain {d['first_retrain_day']} days after the start, "
              f"{d['retrains_in_15_days']} retrains in 15 days of daily checks")
    print(f"\nwritten {RESULTS.relative_to(ROOT)}")
    failed = [r["case"] for r in cases if r["agree"] != r["columns"] or not r["expected_drift_found"]]
    if failed:
        print(f"DISAGREEMENT in {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
