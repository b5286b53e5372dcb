"""The model version holding the ``champion`` alias, the columns checked against it, and its scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retrainer.config import PREDICTION_COLUMN, Params
from retrainer.errors import NoChampion

if TYPE_CHECKING:
    from retrainer.drift import ColumnSpec


@dataclass(frozen=True)
class Champion:
    name: str
    version: str
    run_id: str
    as_of: str
    run_key: str
    holdout_metric: float | None
    metric_name: str


def current_champion(params: Params) -> Champion:
    """The model version holding the `champion` alias, with its run's lineage; NoChampion if none."""
    from retrainer.names import CHAMPION
    from retrainer.tracking import AS_OF_TAG, RUN_KEY_TAG, current_alias, mlflow_client

    version = current_alias(params, CHAMPION)
    if version is None:
        raise NoChampion(
            f"model {params.model.registered_name!r} has no champion yet: nothing to check drift against "
            "(train one with the `training` DAG first)"
        )
    run = mlflow_client(params).get_run(version.run_id)
    metric = params.evaluation.primary_metric
    return Champion(
        name=params.model.registered_name,
        version=str(version.version),
        run_id=version.run_id,
        as_of=run.data.tags.get(AS_OF_TAG, ""),
        run_key=run.data.tags.get(RUN_KEY_TAG, ""),
        holdout_metric=run.data.metrics.get(f"holdout_{metric}"),
        metric_name=metric,
    )


def feature_specs(params: Params, with_prediction: bool = False) -> list[ColumnSpec]:
    from retrainer.drift import NUMERIC, ColumnSpec, column_specs

    cfg = params.drift
    specs = column_specs(params.dataset.numeric_features, params.dataset.categorical_features, cfg.methods, cfg.thresholds)
    if with_prediction:
        specs.append(
            ColumnSpec(PREDICTION_COLUMN, NUMERIC, cfg.methods.get(PREDICTION_COLUMN), cfg.thresholds.get(PREDICTION_COLUMN))
        )
    return specs


_MODELS: dict[tuple[str, str, str], Any] = {}


def champion_model(params: Params, champion: Champion) -> Any:
    """The champion's fitted model, loaded once per process and version."""
    key = (params.tracking_uri, champion.name, champion.version)
    if key not in _MODELS:
        import mlflow

        from retrainer.tracking import mlflow_client

        mlflow_client(params)  # point MLflow at our store before loading
        _MODELS.clear()
        _MODELS[key] = mlflow.sklearn.load_model(f"models:/{champion.name}/{champion.version}")
    return _MODELS[key]


def predict_with_model(params: Params, champion: Champion, frame) -> Any:
    """The champion's output for each row of ``frame`` in the task's shape (``retrainer.train.predict_scores``)."""
    from retrainer.train import predict_scores

    return predict_scores(champion_model(params, champion), frame, params)


def score_with_model(params: Params, champion: Champion, frame) -> Any:
    """The champion's one number per row of ``frame`` (a pandas frame): the positive-class probability
    (binary), the prediction (regression) or the top class's probability (multiclass)."""
    from retrainer.train import drift_score

    return drift_score(predict_with_model(params, champion, frame))
