"""Performance drift: the champion's metric on the window's labelled rows against its holdout metric."""

from __future__ import annotations

from typing import Any

from retrainer.config import PREDICTION_COLUMN, Params
from retrainer.monitor.champion import Champion, champion_model, predict_with_model
from retrainer.monitor.window import DAY_COLUMN, CurrentWindow


def performance_check(
    params: Params, champion: Champion, window: CurrentWindow, predictions
) -> dict[str, Any]:
    """The champion's metric on the window's labelled rows against its holdout metric and floor."""
    import math

    from retrainer.metrics import METRIC_DIRECTIONS, metric_value

    ds, cfg = params.dataset, params.drift.performance
    metric = champion.metric_name
    frame = window.table.drop_columns([DAY_COLUMN]).to_pandas()
    labelled = frame[frame[ds.label].notna()]
    result: dict[str, Any] = {"metric": metric, "labelled_rows": len(labelled), "champion_holdout": champion.holdout_metric}
    if len(labelled) < cfg.min_labelled_rows:
        result.update(judged=False, degraded=None, note=f"{len(labelled)} labelled rows < min_labelled_rows {cfg.min_labelled_rows}")
        return result
    source = "champion scored by the monitor"
    proba = None
    # Batch outputs' ``score`` is the whole output for binary and regression; multiclass needs every class.
    if predictions is not None and ds.task != "multiclass":
        keys = [k for k in (ds.entity_id, ds.event_time) if k in predictions.columns and k in labelled.columns]
        if keys:
            joined = labelled.merge(predictions[[*keys, PREDICTION_COLUMN]].drop_duplicates(keys), on=keys, how="inner")
            if len(joined) >= cfg.min_labelled_rows:
                labelled, proba, source = joined, joined[PREDICTION_COLUMN].to_numpy(), "batch-scoring outputs"
    if proba is None:
        proba = predict_with_model(params, champion, labelled)
    # The project's one metric implementation, as the holdout baseline it is compared with was measured.
    from retrainer.train import labelled_outputs

    model = champion_model(params, champion) if ds.task == "multiclass" else None  # its classes_
    y, (output,), _ = labelled_outputs(params, labelled, [(model, proba)])
    value = metric_value(metric, y, output, task=ds.task)
    higher = METRIC_DIRECTIONS[metric]
    base = champion.holdout_metric
    bounds = []
    if base is not None:
        bounds.append(base - cfg.max_drop if higher else base + cfg.max_drop)
    if cfg.floor is not None:
        bounds.append(cfg.floor)
    if not bounds or math.isnan(value):
        result.update(value=value, judged=False, degraded=None, source=source, note="no floor to compare with")
        return result
    floor = max(bounds) if higher else min(bounds)
    degraded = value < floor if higher else value > floor
    note = (
        f"{metric} {value:.4f} on {len(labelled)} labelled rows "
        f"{'below' if degraded and higher else 'above' if degraded else 'within'} the floor {floor:.4f} "
        f"(champion holdout {base if base is None else round(base, 4)}, max_drop {cfg.max_drop})"
    )
    result.update(value=value, floor=floor, judged=True, degraded=degraded, source=source, rows=len(labelled), note=note)
    return result
