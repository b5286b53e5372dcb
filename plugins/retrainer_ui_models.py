"""The control room's list of models: one row per model of the deployment (retrainer.deployment), each
with its champion, challenger, last training run, last gate, last drift check and quarantined days.

Plain functions over params and the REST API's run records (fetched by the plugin with the caller's
token), tested without Airflow. Each model's detail page is ``retrainer_ui_data.overview``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import retrainer_ui_data as ui_data

from retrainer.config import Params
from retrainer.names import CHALLENGER, CHAMPION, TRAINING_DAG, dag_id


def _card(params: Params, alias: str) -> dict | None:
    card = ui_data.model_card(params, alias)
    if card is None:
        return None
    return {k: card[k] for k in ("name", "version", "metric_name", "metric_value", "as_of", "gate", "links")}


def _last_gate(params: Params) -> dict | None:
    gates = ui_data.gate_results(params, limit=1)
    return {k: gates[0][k] for k in ("day", "status", "report")} if gates else None


def _last_drift(params: Params) -> dict | None:
    checks = ui_data.drift_history(params, limit=1)["checks"]
    return {k: checks[-1][k] for k in ("as_of", "drifted_share", "decision", "report")} if checks else None


def _last_run(run: dict | None) -> dict | None:
    if not run:
        return None
    return {k: run.get(k) for k in ("dag_run_id", "state", "run_type", "logical_date", "run_after", "end_date")}


def model_row(name: str | None, params: Params, last_run: dict | None) -> dict:
    """One model's row; a part that cannot be read carries its error (the other models still show)."""
    sections: dict[str, Callable[[], Any]] = {
        "champion": lambda: _card(params, CHAMPION),
        "challenger": lambda: _card(params, CHALLENGER),
        "last_gate": lambda: _last_gate(params),
        "last_drift": lambda: _last_drift(params),
        "quarantined_days": lambda: [q["day"] for q in ui_data.quarantined(params)],
    }
    row: dict[str, Any] = {
        "name": name or params.dataset.name,
        "model": name,
        "registered_name": params.model.registered_name,
        "primary_metric": params.evaluation.primary_metric,
        "training_dag": dag_id(TRAINING_DAG, name),
        "last_run": _last_run(last_run),
        "errors": {},
    }
    for key, read in sections.items():
        try:
            row[key] = read()
        except Exception as exc:  # noqa: BLE001 - shown in the model's row
            row[key] = None
            row["errors"][key] = f"{type(exc).__name__}: {exc}"
    return row


def models_overview(models: dict[str | None, Params], last_runs: dict[str, dict | None],
                    refused: dict[str, str] | None = None) -> dict:
    """Every model's row (``last_runs``: training DAG id -> its newest run), and the model files that build
    no DAG with why (file -> message)."""
    rows = [model_row(name, params, last_runs.get(dag_id(TRAINING_DAG, name))) for name, params in models.items()]
    return {"models": rows, "refused": dict(refused or {})}
