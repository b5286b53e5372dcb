"""What a model predicts, per task, and its metrics on labelled rows.

``predict_scores`` returns the model's output in the shape the metrics take (``retrainer.metrics``):
binary, the positive-class probability; multiclass, the class probabilities (rows x classes, in the
order of the model's ``classes_``); regression, the predicted number. ``labelled_outputs`` turns the
labels of a frame and one or more models' outputs into arrays the metrics and the gate judge (for
multiclass over one class order, so a champion and a challenger that know different classes compare
on the same columns). ``drift_score`` is the one number per row that batch scoring writes as ``score``
and prediction drift watches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retrainer.config import Params
from retrainer.train.frames import feature_frame, training_labels

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

PREDICT_BATCH_ROWS = 100_000


def _predict(model: Any, x: pd.DataFrame, task: str) -> np.ndarray:
    import numpy as np

    if task == "regression":
        return np.asarray(model.predict(x), dtype=np.float64)
    proba = np.asarray(model.predict_proba(x), dtype=np.float64)
    return proba[:, 1] if task == "binary" else proba


def predict_scores(model: Any, frame: pd.DataFrame, params: Params) -> np.ndarray:
    """The model's output for every row of ``frame`` (see the module docstring), predicted in batches.

    Batches keep the model's input copy (the text columns as Python objects, and for the one-hot
    estimators a dense float matrix) to one batch at a time instead of the whole frame. Each row's
    prediction does not depend on the others, so the result is the same as one call.
    """
    import numpy as np

    task = params.dataset.task
    if len(frame) <= PREDICT_BATCH_ROWS:
        return _predict(model, feature_frame(frame, params), task)
    return np.concatenate(
        [
            _predict(model, feature_frame(frame.iloc[start : start + PREDICT_BATCH_ROWS], params), task)
            for start in range(0, len(frame), PREDICT_BATCH_ROWS)
        ]
    )


def model_classes(model: Any) -> list:
    """The classes of a fitted classifier (a Pipeline's last step's), as Python values."""
    classes = getattr(model, "classes_", None)
    if classes is None and hasattr(model, "steps"):
        classes = getattr(model.steps[-1][1], "classes_", None)
    if classes is None:
        raise ValueError(f"{type(model).__name__} has no classes_: not a fitted classifier")
    return [c.item() if hasattr(c, "item") else c for c in classes]


def labelled_outputs(
    params: Params, frame: pd.DataFrame, outputs: list[tuple[Any, np.ndarray]]
) -> tuple[np.ndarray, list[np.ndarray], list | None]:
    """The labels of ``frame`` and each (model, output) pair's output, ready for the metrics.

    Returns (labels, outputs, classes): binary 0/1 labels and regression numbers as they are; multiclass
    labels as indices into ``classes`` (the union of the models' classes and the labels seen) and each
    probability matrix with one column per class of it. ``classes`` is None except for multiclass.
    """
    import numpy as np

    labels = training_labels(frame, params)
    if params.dataset.task != "multiclass":
        return labels.to_numpy(dtype=np.float64), [np.asarray(o) for _, o in outputs], None
    from retrainer.metrics.multiclass import align_classes

    classes, y, aligned = align_classes(labels.tolist(), [(model_classes(m), o) for m, o in outputs])
    return y.astype(np.float64), aligned, classes


def score(model: Any, frame: pd.DataFrame, params: Params) -> dict[str, float]:
    """The task's metrics of ``model`` on ``frame`` (which holds the label)."""
    from retrainer.metrics import all_metrics

    y, (output,), classes = labelled_outputs(params, frame, [(model, predict_scores(model, frame, params))])
    return all_metrics(y, output, task=params.dataset.task, classes=classes)


def drift_score(output: np.ndarray) -> np.ndarray:
    """One number per row: the binary probability, the regression prediction, or the multiclass top-class
    probability (the model's confidence)."""
    import numpy as np

    output = np.asarray(output, dtype=np.float64)
    return output.max(axis=1) if output.ndim == 2 else output
