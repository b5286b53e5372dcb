"""Train: fit the model (a built-in estimator or the team's factory) on a prepared training set and log
everything to MLflow.

Idempotent per run key: when a finished MLflow run already carries the key (a retried task, a rerun
of the same date with the same data, code and config), that run is returned instead of a new one.

A package: ``estimators`` (the built-ins per task), ``factory`` (``model.factory``), ``frames`` (the
model's input and label columns, MLflow dataset entities), ``predict`` (outputs and metrics per task),
``allocator`` (glibc's settings for the length of a fit); this module is the step itself. Their public
names are importable from here.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from retrainer.config import Params
from retrainer.errors import GateFailed, ModelCheckFailed
from retrainer.lineage import code_version, config_hash, git_info, lineage_record
from retrainer.prepare import PreparedData
from retrainer.tracking import (
    AS_OF_TAG,
    ATTEMPT_TAG,
    RUN_KEY_TAG,
    attempt_id,
    end_abandoned_runs,
    ensure_experiment,
    find_finished_run,
    mlflow_client,
)
from retrainer.train.allocator import reuse_freed_memory
from retrainer.train.frames import (
    SCHEMA_SAMPLE_ROWS,
    dataset_input,
    feature_frame,
    fit_frame,
    python_strings,
    training_labels,
)
from retrainer.train.predict import (
    PREDICT_BATCH_ROWS,
    drift_score,
    labelled_outputs,
    model_classes,
    predict_scores,
    score,
)

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

__all__ = [
    "PREDICT_BATCH_ROWS", "SCHEMA_SAMPLE_ROWS", "TrainedModel", "build_pipeline", "dataset_input", "drift_score",
    "feature_frame", "fit_frame", "fit_pipeline", "labelled_outputs", "model_classes", "predict_scores", "python_strings",
    "reuse_freed_memory", "score", "train_model", "training_labels", "training_metric_rows",
]


@dataclass(frozen=True)
class TrainedModel:
    run_id: str
    model_uri: str
    run_key: str
    metrics: dict[str, float]
    reused: bool

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict) -> TrainedModel:
        return cls(**payload)


def build_pipeline(params: Params) -> Any:
    """The unfitted model: the built-in ``model.estimator`` behind its column preprocessing
    (``retrainer.train.estimators``), or what the team's ``model.factory`` returns (``retrainer.train.factory``)."""
    if params.model.factory:
        from retrainer.train import factory

        return factory.build(params)
    from retrainer.train.estimators import builtin_pipeline

    return builtin_pipeline(params)


def training_metric_rows(train: pd.DataFrame, params: Params) -> pd.DataFrame:
    """The rows of the training set its ``train_*`` metrics are measured on.

    Every row up to ``model.train_metrics_max_rows``; beyond, a sample of that many rows drawn with
    ``project.seed`` (the same rows for the same set, so a rerun or a reproduction logs the same
    figures). Scoring all of a 4-million-row training set took about a sixth of the train step.
    """
    cap = params.model.train_metrics_max_rows
    if cap is None or len(train) <= cap:
        return train
    return train.sample(n=cap, random_state=params.project.seed).sort_index()


def _own_types(model: Any) -> list[str]:
    import skops.io

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def _model_requirements() -> list[str]:
    from importlib import metadata

    import mlflow.sklearn

    pins = {f"{name}=={metadata.version(name)}" for name in ("numpy", "pandas", "scipy")}
    return sorted(set(mlflow.sklearn.get_default_pip_requirements(include_skops=True)) | pins)


def train_model(
    params: Params,
    prepared: PreparedData,
    run_key: str,
    context: dict[str, str],
    prepared_gate: dict | None = None,
) -> TrainedModel:
    """Fit, evaluate on train and holdout, and log model, datasets and lineage to MLflow.

    ``context`` carries where the run came from (dag_id, run_id, try number, reason, note); it
    becomes MLflow tags. The steps: reuse the finished run of this run key if there is one, else fit,
    check and measure the model, then log the run.
    """
    import json

    from retrainer.storage import read_frame

    experiment_id = ensure_experiment(params)
    _end_killed_attempts(params, experiment_id, run_key, context)
    previous = find_finished_run(params, experiment_id, run_key)
    if previous is not None:
        return _reused(previous, run_key)
    train, holdout = read_frame(prepared.train_path), read_frame(prepared.holdout_path)
    manifest = json.loads(open(prepared.manifest_path, encoding="utf-8").read())  # noqa: PTH123, SIM115
    model, example = _fit(params, train)
    metrics = _measure(params, prepared.as_of, model, train, holdout)
    run = _RunRecord(prepared, run_key, context, prepared_gate, manifest)
    run_id, model_uri = _log_run(params, experiment_id, run, model, example, train, holdout, metrics)
    return TrainedModel(run_id=run_id, model_uri=model_uri, run_key=run_key, metrics=metrics, reused=False)


def _end_killed_attempts(params: Params, experiment_id: str, run_key: str, context: dict[str, str]) -> None:
    """An earlier attempt killed mid-run (kill -9, a lost worker) left its MLflow run RUNNING: end it."""
    import logging

    for run_id in end_abandoned_runs(params, experiment_id, run_key, context):
        logging.getLogger(__name__).warning("MLflow run %s of run key %s was left RUNNING by a killed attempt: "
                                            "marked KILLED", run_id, run_key)


def _reused(previous: Any, run_key: str) -> TrainedModel:
    """The model of a finished run that already carries this run key (a retry or a same-input rerun)."""
    return TrainedModel(
        run_id=previous.info.run_id,
        model_uri=previous.data.tags.get("retrainer.model_uri", f"runs:/{previous.info.run_id}/model"),
        run_key=run_key,
        metrics={k: float(v) for k, v in previous.data.metrics.items()},
        reused=True,
    )


def fit_pipeline(params: Params, train: pd.DataFrame) -> Pipeline:
    """The model of ``params`` fitted on the training set ``train`` (as ``prepare`` wrote it), as training
    fits it and a reproduction fits it again."""
    from retrainer.gates import non_finite_problems

    x_train, y_train = fit_frame(train, params), training_labels(train, params)
    # A suite edited by hand must not let an infinite number reach the estimator.
    problems = non_finite_problems(x_train, list(params.dataset.numeric_features), "training set")
    if problems:
        raise GateFailed("train refuses non-finite features:\n" + "\n".join(problems))
    model = build_pipeline(params)
    with reuse_freed_memory():
        model.fit(x_train, y_train)
    return model


def _fit(params: Params, train: pd.DataFrame) -> tuple[Pipeline, pd.DataFrame]:
    """The fitted pipeline and five input rows (MLflow's input example and signature)."""
    # The example is what the model serves (feature_frame), whatever it was fitted on.
    return fit_pipeline(params, train), feature_frame(train.head(5), params)


def _measure(
    params: Params, as_of: str, model: Pipeline, train: pd.DataFrame, holdout: pd.DataFrame
) -> dict[str, float]:
    """``train_*`` and ``holdout_*`` metrics; ModelCheckFailed first if its holdout predictions are broken."""
    from retrainer.gates import prediction_problems
    from retrainer.metrics import all_metrics

    holdout_scores = predict_scores(model, holdout, params)
    y, (aligned,), classes = labelled_outputs(params, holdout, [(model, holdout_scores)])
    problems = prediction_problems(holdout_scores, f"holdout of as_of={as_of}", params.dataset.task, y)
    if problems:
        # Nothing is logged or registered for a broken model: the run stops before MLflow sees it.
        raise ModelCheckFailed("model check failed:\n" + "\n".join(problems))
    train_metrics = score(model, training_metric_rows(train, params), params)
    holdout_metrics = all_metrics(y, aligned, task=params.dataset.task, classes=classes)
    measured = {**{f"train_{k}": v for k, v in train_metrics.items()}, **{f"holdout_{k}": v for k, v in holdout_metrics.items()}}
    # An undefined metric (mape of a zero label) is left out: MLflow and the task's JSON output hold numbers.
    return {k: v for k, v in measured.items() if math.isfinite(v)}


@dataclass(frozen=True)
class _RunRecord:
    """What a training run records besides the model: its inputs and where it came from."""

    prepared: PreparedData
    run_key: str
    context: dict[str, str]
    prepared_gate: dict | None
    manifest: dict[str, Any]

    def tags(self, params: Params) -> dict[str, str]:
        prepared, manifest = self.prepared, self.manifest
        return {
            RUN_KEY_TAG: self.run_key,
            AS_OF_TAG: prepared.as_of,
            ATTEMPT_TAG: attempt_id(),
            "retrainer.data_hash": prepared.data_hash,
            "retrainer.code_version": code_version(),
            "retrainer.config_hash": config_hash(params),
            "retrainer.params_digest": params.digest,
            "retrainer.partitions": ",".join(f"{p['day']}:{p['md5']}" for p in manifest["partitions"])[:5000],
            "retrainer.task": params.dataset.task,
            **_factory_tags(params),
            **{f"retrainer.{k}": v for k, v in git_info(params.root).items()},
            **{f"airflow.{k}": str(v) for k, v in self.context.items() if v not in (None, "")},
        }

    def params(self, params: Params) -> dict[str, Any]:
        return {
            "task": params.dataset.task,
            "estimator": params.model.estimator or f"factory:{params.model.factory}",
            **{f"hp.{k}": v for k, v in params.model.hyperparameters.items()},
            "as_of": self.prepared.as_of,
            "window_days": self.manifest["window_days"],
            "holdout_days": self.manifest["holdout_days"],
            "partitions": len(self.manifest["partitions"]),
            "seed": params.project.seed,
            "train_metrics_max_rows": params.model.train_metrics_max_rows,
        }


def _log_run(
    params: Params,
    experiment_id: str,
    run: _RunRecord,
    model: Pipeline,
    example: pd.DataFrame,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    metrics: dict[str, float],
) -> tuple[str, str]:
    """One MLflow run with the parameters, metrics, datasets, model and lineage; its id and model URI."""
    import mlflow

    client = mlflow_client(params)
    prepared, label = run.prepared, params.dataset.label
    run_name = f"train-{prepared.as_of}-{run.run_key[:8]}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=run.tags(params)) as active:
        run_id = active.info.run_id
        mlflow.log_params(run.params(params))
        mlflow.log_metrics(metrics)
        with warnings.catch_warnings():
            # MLflow warns that a local path "can be interpreted in multiple ways" and that integer
            # columns cannot hold missing values; neither applies (the model's inputs are floats).
            warnings.simplefilter("ignore", UserWarning)
            mlflow.log_input(dataset_input(train, prepared.train_path, label, "train"), context="training")
            mlflow.log_input(dataset_input(holdout, prepared.holdout_path, label, "holdout"), context="holdout")
        model_uri = _log_model(params, model, example)
        mlflow.log_artifact(prepared.manifest_path, artifact_path="lineage")
        record = lineage_record(params, prepared.manifest_path, run.run_key, run.context, run.prepared_gate)
        mlflow.log_dict(record, "lineage/lineage.json")
        client.set_tag(run_id, "retrainer.manifest_sha256", record["manifest_sha256"])
        client.set_tag(run_id, "retrainer.model_uri", model_uri)
    return run_id, model_uri


def _factory_tags(params: Params) -> dict[str, str]:
    if not params.model.factory:
        return {}
    from retrainer.train import factory

    return {"retrainer.factory": params.model.factory, "retrainer.factory_sha256": factory.source_sha256(params)}


def _log_model(params: Params, model: Any, example: pd.DataFrame) -> str:
    """Log the fitted model (skops format, stated requirements) to the active run; its model URI.

    The signature is the task's output (the class probabilities, or the predicted number). A factory's
    model carries the factory's code (``code_paths``): MLflow puts it on the import path when it loads
    the model, so ``models:/<name>@champion`` loads where the project is not installed.
    """
    import mlflow
    from mlflow.models import infer_signature

    regression = params.dataset.task == "regression"
    output = model.predict(example) if regression else model.predict_proba(example)
    code_paths = None
    if params.model.factory:
        from retrainer.train import factory

        code_paths = [str(factory.code_path(params))]
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=infer_signature(example, output),
        input_example=example,
        pyfunc_predict_fn="predict" if regression else "predict_proba",
        code_paths=code_paths,
        # skops (safe loading) refuses types it does not know; these are the types of the model we
        # just fitted in this process, so trusting exactly them is safe.
        skops_trusted_types=_own_types(model),
        # Stated, not inferred: inference re-imports the model in a subprocess (about 20 s a run).
        pip_requirements=_model_requirements(),
    )
    return info.model_uri
