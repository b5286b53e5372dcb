"""The drift ledger ``<reports_dir>/drift/ledger.json``: every check and every drift-triggered retrain."""

from __future__ import annotations

import json

from retrainer.config import Params
from retrainer.monitor.paths import ledger_path, locked_beside
from retrainer.storage import write_json_atomic

TRIGGER_REASON = "drift"


def load_ledger(params: Params) -> dict[str, list[dict]]:
    """``{"checks": [...], "triggers": [...]}``; empty lists when no check ran yet."""
    path = ledger_path(params)
    if not path.exists():
        return {"checks": [], "triggers": []}
    try:
        ledger = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: the drift ledger is not valid JSON ({exc}); fix or move it away") from None
    return {"checks": list(ledger.get("checks", [])), "triggers": list(ledger.get("triggers", []))}


def _update_ledger(params: Params, key: str, record: dict) -> None:
    """Insert or replace (by as_of) one record, under the ledger lock, atomically.

    A check record always says whether a drift-triggered retrain was started for its date, so a
    rerun of the check does not hide the trigger.
    """
    path = ledger_path(params)
    with locked_beside(path):
        ledger = load_ledger(params)
        entries = [e for e in ledger[key] if e["as_of"] != record["as_of"]]
        entries.append(record)
        ledger[key] = sorted(entries, key=lambda e: e["as_of"])
        started = {t["as_of"]: t["training_run_id"] for t in ledger["triggers"]}
        for check in ledger["checks"]:
            check["triggered"] = check["as_of"] in started
            check["training_run_id"] = started.get(check["as_of"])
        write_json_atomic(path, ledger)


def record_check(params: Params, record: dict) -> None:
    _update_ledger(params, "checks", record)


def record_trigger(params: Params, as_of: str, training_run_id: str, report: str, champion_version: str) -> dict:
    """Note a drift-triggered training run in the ledger (the cooldown counts from its as-of date)."""
    trigger = {
        "as_of": as_of,
        "training_run_id": training_run_id,
        "report": report,
        "champion_version": champion_version,
        "reason": TRIGGER_REASON,
    }
    _update_ledger(params, "triggers", trigger)
    return trigger
