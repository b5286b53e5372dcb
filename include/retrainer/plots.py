"""Figures of an evaluation, logged to the challenger's MLflow run: the ones people look at.

* ``confusion_matrix``: challenger (and champion) at the scoring threshold,
* ``roc_pr``: ROC and precision-recall curves of both models on the same holdout,
* ``calibration``: reliability curves (what the calibration guard measures),
* ``champion_vs_challenger``: the improvement and its bootstrap interval, overall and per slice, against
  the gate's rules, and the guard metrics side by side.

Those are binary's. Multiclass gets ``confusion_matrix`` (rows: true class, columns: predicted, each row
normalised) and ``champion_vs_challenger``; regression gets ``predicted_vs_actual``, ``residuals``
(residual against prediction, and their distribution) and ``champion_vs_challenger``.

Figures are plain ``matplotlib.figure.Figure`` objects (no pyplot state, Agg backend), so task
processes without a display can draw them and nothing leaks between runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

    from retrainer.evaluate.decision import Decision

PASS_COLOR, FAIL_COLOR, NEUTRAL_COLOR = "#2e7d32", "#c62828", "#607d8b"


def _figure(width: float, height: float) -> Figure:
    import matplotlib

    matplotlib.use("Agg")  # sklearn's displays import pyplot; never let it look for a display
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def evaluation_figures(
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray | None,
    decision: Decision,
    threshold: float = 0.5,
    task: str = "binary",
) -> dict[str, Figure]:
    if task == "multiclass":
        return {"confusion_matrix": multiclass_confusion(y, _models(challenger, champion, decision), decision),
                "champion_vs_challenger": comparison_figure(decision)}
    if task == "regression":
        return {**regression_figures(y, _models(challenger, champion, decision), decision),
                "champion_vs_challenger": comparison_figure(decision)}
    return _binary_figures(y, challenger, champion, decision, threshold)


def _models(challenger: np.ndarray, champion: np.ndarray | None, decision: Decision) -> list[tuple[str, Any]]:
    models: list[tuple[str, Any]] = [("challenger", challenger)]
    if champion is not None:
        models.append((f"champion v{decision.champion_version}" if decision.champion_version else "champion", champion))
    return models


def multiclass_confusion(y: np.ndarray, models: list[tuple[str, Any]], decision: Decision) -> Figure:
    """Each model's confusion matrix over the decision's classes, rows normalised to the true class."""
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    classes = decision.classes or [str(i) for i in range(models[0][1].shape[1])]
    size = max(4.2, 0.45 * len(classes) + 2.5)
    fig = _figure(size * len(models), size * 0.9)
    for ax, (name, proba) in zip(fig.subplots(1, len(models), squeeze=False)[0], models, strict=True):
        ConfusionMatrixDisplay.from_predictions(
            y.astype(int), np.argmax(proba, axis=1), labels=list(range(len(classes))), display_labels=classes,
            normalize="true", values_format=".2f", ax=ax, colorbar=False, xticks_rotation="vertical",
        )
        ax.set_title(f"{name}: recall per true class")
    return fig


def regression_figures(y: np.ndarray, models: list[tuple[str, Any]], decision: Decision) -> dict[str, Figure]:
    """Predicted against actual (with the diagonal), and residuals against prediction with their histogram."""
    import numpy as np

    colors = [PASS_COLOR, NEUTRAL_COLOR]
    fig = _figure(5.5, 5.0)
    ax = fig.subplots()
    for (name, predicted), color in zip(models, colors, strict=False):
        ax.scatter(y, predicted, s=4, alpha=0.35, color=color, label=name)
    low, high = float(np.min(y)), float(np.max(y))
    ax.plot([low, high], [low, high], linestyle=":", color=FAIL_COLOR, label="predicted = actual")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title(f"Predicted vs actual on the holdout ({len(y)} rows, as of {decision.as_of})")
    ax.legend(loc="upper left")
    out = {"predicted_vs_actual": fig}

    fig = _figure(10, 4.2)
    scatter_ax, hist_ax = fig.subplots(1, 2)
    for (name, predicted), color in zip(models, colors, strict=False):
        residual = y - predicted
        scatter_ax.scatter(predicted, residual, s=4, alpha=0.35, color=color, label=name)
        hist_ax.hist(residual, bins=50, alpha=0.5, color=color, label=name)
    scatter_ax.axhline(0, color=FAIL_COLOR, linestyle=":")
    scatter_ax.set_xlabel("predicted")
    scatter_ax.set_ylabel("residual (actual - predicted)")
    scatter_ax.legend(loc="upper right")
    hist_ax.set_xlabel("residual")
    hist_ax.set_title("Residuals")
    out["residuals"] = fig
    return out


def _binary_figures(
    y: np.ndarray, challenger: np.ndarray, champion: np.ndarray | None, decision: Decision, threshold: float
) -> dict[str, Figure]:
    from sklearn.calibration import CalibrationDisplay
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    champion_name = f"champion v{decision.champion_version}" if decision.champion_version else "champion"
    models: list[tuple[str, Any]] = [("challenger", challenger)]
    if champion is not None:
        models.append((champion_name, champion))
    figures: dict[str, Figure] = {}

    fig = _figure(4.2 * len(models), 3.8)
    for ax, (name, scores) in zip(fig.subplots(1, len(models), squeeze=False)[0], models, strict=True):
        ConfusionMatrixDisplay.from_predictions(y, (scores >= threshold).astype(int), ax=ax, colorbar=False)
        ax.set_title(f"{name} (threshold {threshold:g})")
    figures["confusion_matrix"] = fig

    fig = _figure(10, 4.2)
    roc_ax, pr_ax = fig.subplots(1, 2)
    for name, scores in models:
        RocCurveDisplay.from_predictions(y, scores, name=name, ax=roc_ax)
        PrecisionRecallDisplay.from_predictions(y, scores, name=name, ax=pr_ax)
    roc_ax.plot([0, 1], [0, 1], linestyle=":", color=NEUTRAL_COLOR)
    roc_ax.set_title(f"ROC on the holdout ({len(y)} rows, as of {decision.as_of})")
    pr_ax.set_title("Precision-recall")
    figures["roc_pr"] = fig

    fig = _figure(5.5, 4.5)
    ax = fig.subplots()
    for name, scores in models:
        CalibrationDisplay.from_predictions(y, scores, n_bins=10, name=name, ax=ax)
    ax.set_title("Calibration (10 equal-width bins)")
    figures["calibration"] = fig

    figures["champion_vs_challenger"] = comparison_figure(decision)
    return figures


def comparison_figure(decision: Decision) -> Figure:
    """Improvement with its interval (overall and per slice) beside the gate's lines, and the guards."""
    metric = decision.primary_metric
    fig = _figure(11, max(3.5, 0.45 * (len(decision.slices) + 4)))
    left, right = fig.subplots(1, 2, width_ratios=[3, 2])

    if decision.champion_metrics is None or decision.improvement_ci is None:
        judged = [s for s in decision.slices if s.get("challenger") is not None]
        labels = [f"{s['feature']}={s['value']}" for s in judged] + ["whole holdout"]
        values = [s["challenger"] for s in judged] + [decision.challenger_metrics[metric]]
        left.barh(labels, values, color=NEUTRAL_COLOR)
        left.axvline(decision.absolute_floor, color=FAIL_COLOR, linestyle="--", label="absolute floor")
        left.set_xlabel(metric)
        left.set_title("challenger (no champion to compare with)")
        left.legend(loc="lower right")
        right.axis("off")
        return fig

    rows = [
        (
            "whole holdout",
            decision.improvement,
            decision.improvement_ci,
            decision.min_improvement,
            bool(next((c["passed"] for c in decision.checks if c["check"] == "beats_champion"), False)),
        )
    ]
    for s in decision.slices:
        if s.get("judged"):
            rows.append(
                (f"{s['feature']}={s['value']}", s["change"], [s["ci_low"], s["ci_high"]], -s["tolerance"], s["passed"])
            )
    rows.reverse()
    for i, (_label, change, ci, line, passed) in enumerate(rows):
        color = PASS_COLOR if passed else FAIL_COLOR
        left.errorbar(
            change, i, xerr=[[change - ci[0]], [ci[1] - change]], fmt="o", color=color, capsize=3
        )
        left.plot([line, line], [i - 0.4, i + 0.4], color=color, linestyle="--", linewidth=1)
    left.axvline(0, color=NEUTRAL_COLOR, linewidth=0.8)
    left.set_yticks(range(len(rows)), [r[0] for r in rows])
    pct = round((decision.confidence or 0.95) * 100)
    left.set_xlabel(f"change in {metric} (challenger - champion, + is better), {pct}% interval")
    left.set_title(
        f"challenger vs champion v{decision.champion_version}: dashes = rule "
        "(overall: min improvement, slices: -tolerance)",
        fontsize=9,
    )

    guards = decision.guards
    if guards:
        names = [g["guard"] for g in guards]
        challenger_values = [g["challenger"] for g in guards]
        champion_values = [g["champion"] for g in guards]
        positions = list(range(len(guards)))
        right.barh([p + 0.2 for p in positions], champion_values, height=0.4, color=NEUTRAL_COLOR, label="champion")
        right.barh(
            [p - 0.2 for p in positions],
            challenger_values,
            height=0.4,
            color=[PASS_COLOR if g["passed"] else FAIL_COLOR for g in guards],
            label="challenger",
        )
        right.set_yticks(positions, [n.replace("predict_latency", "predict cpu ms/1k rows") for n in names])
        right.set_xscale("log")
        right.set_title("guards (lower is better, red: beyond tolerance)", fontsize=9)
        right.legend(loc="lower right")
    else:
        right.axis("off")
    return fig
