"""The learning tasks (``dataset.task``): each one's metrics and their directions, the metrics its gate may
judge on, its default guards and its built-in estimators; and the checks params.yaml's settings get against
the task (``retrainer.config`` runs them, ``retrainer.metrics`` computes the metrics)."""

from __future__ import annotations

from typing import Any, Literal

# Each task's metrics: name -> True when higher is better.
# The gate turns every difference into an improvement with these directions; retrainer.metrics computes them.
Task = Literal["binary", "multiclass", "regression"]
TASK_METRICS: dict[str, dict[str, bool]] = {
    "binary": {
        "roc_auc": True, "average_precision": True, "accuracy": True, "f1": True,
        "log_loss": False, "brier": False, "calibration_error": False,
    },
    "multiclass": {
        "macro_f1": True, "accuracy": True, "balanced_accuracy": True, "roc_auc_ovr": True,
        "log_loss": False, "calibration_error": False,  # calibration error of the top class
    },
    "regression": {"rmse": False, "mae": False, "r2": True, "mape": False},  # mape: labels never zero
}
# The metrics a task's gate may use as its primary metric (the others are guards and diagnostics).
PRIMARY_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "average_precision", "accuracy", "f1", "log_loss"),
    "multiclass": ("macro_f1", "accuracy", "balanced_accuracy", "log_loss", "roc_auc_ovr"),
    "regression": ("rmse", "mae", "r2", "mape"),
}
DEFAULT_PRIMARY_METRIC = {"binary": "roc_auc", "multiclass": "macro_f1", "regression": "rmse"}
# Guards when params.yaml names none: calibration for classification; no calibration guard for regression.
DEFAULT_GUARDS: dict[str, dict[str, float]] = {
    "binary": {"calibration_error": 0.02}, "multiclass": {"calibration_error": 0.02}, "regression": {},
}
# Built-in estimators per task (model.estimator): a gradient boosting, a random forest and a linear model.
TASK_ESTIMATORS: dict[str, tuple[str, ...]] = {
    "binary": ("hist_gradient_boosting", "random_forest", "logistic_regression"),
    "multiclass": ("hist_gradient_boosting", "random_forest", "logistic_regression"),
    "regression": ("hist_gradient_boosting", "random_forest", "ridge"),
}


def task_defaults(raw: Any) -> Any:
    """A raw params mapping with the task's primary metric and guards filled in where it names none."""
    if not isinstance(raw, dict) or not isinstance(raw.get("dataset"), dict):
        return raw
    task = raw["dataset"].get("task", "binary")
    if task not in TASK_METRICS or not isinstance(raw.get("evaluation", {}), dict):
        return raw  # the field validation names the bad value
    evaluation = dict(raw.get("evaluation") or {})
    evaluation.setdefault("primary_metric", DEFAULT_PRIMARY_METRIC[task])
    guards = evaluation.get("guards")
    if guards is None or (isinstance(guards, dict) and "metrics" not in guards):
        evaluation["guards"] = {**(guards or {}), "metrics": dict(DEFAULT_GUARDS[task])}
    return {**raw, "evaluation": evaluation}


def task_problem(task: str, primary: str, guards: list[str], estimator: str | None) -> str | None:
    """Why the primary metric, a guard or the built-in estimator does not fit ``task`` (naming the key), or None."""
    if primary not in PRIMARY_METRICS[task]:
        return (f"evaluation.primary_metric: {primary!r} does not fit dataset.task {task!r} "
                f"(one of {', '.join(PRIMARY_METRICS[task])})")
    for name in guards:
        if name not in TASK_METRICS[task]:
            return (f"evaluation.guards.metrics.{name}: not a metric of dataset.task {task!r} "
                    f"(one of {', '.join(TASK_METRICS[task])})")
    if estimator is not None and estimator not in TASK_ESTIMATORS[task]:
        return (f"model.estimator: {estimator!r} does not fit dataset.task {task!r} "
                f"(one of {', '.join(TASK_ESTIMATORS[task])}, or model.factory)")
    return None
