"""Train: fit the scikit-learn pipeline on a prepared training set and log everything to MLflow.

Idempotent per run key: when a finished MLflow run already carries the key (a retried task, a rerun
of the same date with the same data, code and config), that run is returned instead of a new one.
"""

from __future__ import annotations

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

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.pipeline import Pipeline

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


def build_pipeline(params: Params) -> Pipeline:
    """Column preprocessing for numeric and categorical features, then the configured estimator.

    Histogram gradient boosting takes the categories as they are (ordinal codes, split on natively)
    and learns where missing values go: scikit-learn's recommended setup for it, which on this
    dataset fits in about 60% of the time of one-hot columns at the same training AUC, and predicts
    from 14 columns instead of 25. The other estimators get imputed numbers and one-hot categories.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    ds, cfg, seed = params.dataset, params.model, params.project.seed
    numeric, categorical = list(ds.numeric_features), list(ds.categorical_features)
    hyperparameters: dict[str, Any] = dict(cfg.hyperparameters)
    if cfg.estimator == "hist_gradient_boosting":
        max_bins = int(hyperparameters.get("max_bins", 255))
        encoder = OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=float("nan"),  # a category first seen in serving is treated as missing
            encoded_missing_value=float("nan"),
            # The boosting takes at most max_bins categories per feature; rarer ones share one code.
            max_categories=max_bins,
        )
        columns = ColumnTransformer(
            [("numeric", "passthrough", numeric), ("categorical", encoder, categorical)],
            verbose_feature_names_out=False,
        )
        hyperparameters.setdefault("categorical_features", list(range(len(numeric), len(numeric) + len(categorical))))
    else:
        numeric_steps = [SimpleImputer(strategy="median")]
        if cfg.estimator == "logistic_regression":
            numeric_steps.append(StandardScaler())
        one_hot = make_pipeline(
            SimpleImputer(strategy="constant", fill_value="__missing__"),
            OneHotEncoder(handle_unknown="ignore", sparse_output=False),
        )
        columns = ColumnTransformer(
            [("numeric", make_pipeline(*numeric_steps), numeric), ("categorical", one_hot, categorical)],
            verbose_feature_names_out=False,
        )
    estimators: dict[str, Any] = {
        "hist_gradient_boosting": HistGradientBoostingClassifier,
        "random_forest": RandomForestClassifier,
        "logistic_regression": LogisticRegression,
    }
    estimator_cls = estimators[cfg.estimator]
    try:
        estimator = estimator_cls(random_state=seed, **hyperparameters)
    except TypeError as exc:
        raise ValueError(f"params.yaml model.hyperparameters: not accepted by {cfg.estimator}: {exc}") from None
    return Pipeline([("columns", columns), ("estimator", estimator)])


def feature_frame(frame: pd.DataFrame, params: Params) -> pd.DataFrame:
    """The model's input columns with stable dtypes (ints with gaps become floats, categories strings)."""
    ds = params.dataset
    x = frame[list(ds.features)].copy()
    for column in ds.numeric_features:
        x[column] = x[column].astype("float64")
    for column in ds.categorical_features:
        x[column] = python_strings(x[column])
    return x


def python_strings(values: pd.Series) -> pd.Series:
    """Text as Python ``str`` objects with ``None`` for missing (what scikit-learn's encoders and
    MLflow's schema inference take), whether it was read as ``object`` or Arrow-backed strings."""
    return values.astype("object").where(values.notna(), None)


PREDICT_BATCH_ROWS = 100_000


def predict_scores(model: Any, frame: pd.DataFrame, params: Params) -> np.ndarray:
    """The positive-class probability of every row of ``frame``, predicted in batches of rows.

    Batches keep the model's input copy (the text columns as Python objects, and for the one-hot
    estimators a dense float matrix) to one batch at a time instead of the whole frame. Each row's
    prediction does not depend on the others, so the result is the same as one call.
    """
    import numpy as np

    if len(frame) <= PREDICT_BATCH_ROWS:
        return model.predict_proba(feature_frame(frame, params))[:, 1]
    return np.concatenate(
        [
            model.predict_proba(feature_frame(frame.iloc[start : start + PREDICT_BATCH_ROWS], params))[:, 1]
            for start in range(0, len(frame), PREDICT_BATCH_ROWS)
        ]
    )


def score(model: Any, frame: pd.DataFrame, params: Params) -> dict[str, float]:
    """Classification metrics of ``model`` on ``frame`` (which holds the label)."""
    from retrainer.metrics import all_metrics

    return all_metrics(frame[params.dataset.label].astype(int).to_numpy(), predict_scores(model, frame, params))


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


SCHEMA_SAMPLE_ROWS = 10_000  # also MLflow's own digest sample (mlflow.data.digest_utils.MAX_ROWS)


def dataset_input(frame: pd.DataFrame, source: str, label: str, name: str):
    """``mlflow.data.from_pandas`` for a large frame, without MLflow's two passes over every cell.

    MLflow infers a dataset's schema element by element in Python and its digest maps ``type`` over
    the whole frame (not just the rows it hashes): about 11 s per million rows, growing with the
    window (bench/bench_scale.py found it). Here the column types are inferred from the first
    rows, whether a column is required (has no missing value) from a vectorised check of all rows,
    and the digest is MLflow's own algorithm with a vectorised type check; the result is the same
    dataset entity (name, digest, source, schema, profile) MLflow would log.
    """
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.data.digest_utils import get_normalized_md5_digest
    from mlflow.types import ColSpec, Schema
    from mlflow.types.utils import _infer_schema

    # Text read as Arrow-backed strings is what ingest wrote as Python strings (None for NULL):
    # MLflow sees the sampled rows that way, so the entity is the one it logs for the object frame.
    arrow_text = [c for c in frame.columns if isinstance(frame[c].dtype, pd.StringDtype)]
    head = frame.head(SCHEMA_SAMPLE_ROWS).copy()
    for column in arrow_text:
        head[column] = python_strings(head[column])
    # MLflow hashes the first rows of the columns whose every value is a str (checked with a vectorised
    # type scan here; a text column qualifies when it has no missing value) and the numeric ones.
    string_columns = pd.Index(
        [
            c
            for c in frame.columns
            if (c in arrow_text and not frame[c].hasnans)
            or (frame[c].dtype == object and pd.api.types.infer_dtype(frame[c], skipna=False) == "string")
        ]
    )
    hashed = head[string_columns.union(head.select_dtypes(include="number").columns)]
    digest = get_normalized_md5_digest(
        [pd.util.hash_pandas_object(hashed).values, np.int64(len(frame))] + [str(c).encode() for c in frame.columns]
    )
    dataset = mlflow.data.from_pandas(frame, source=source, targets=label, name=name, digest=digest)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # MLflow's hint about integer columns and missing values
        sampled = _infer_schema(head)
    has_missing = frame.isna().any()
    dataset.schema = Schema(  # a cached_property: setting it replaces MLflow's full-frame inference
        [ColSpec(type=c.type, name=c.name, required=not bool(has_missing[c.name])) for c in sampled.inputs]
    )
    return dataset


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


def _fit(params: Params, train: pd.DataFrame) -> tuple[Pipeline, pd.DataFrame]:
    """The fitted pipeline and five input rows (MLflow's input example and signature)."""
    from retrainer.gates import non_finite_problems

    x_train, y_train = feature_frame(train, params), train[params.dataset.label].astype(int)
    # A suite edited by hand must not let an infinite number reach the estimator.
    problems = non_finite_problems(x_train, list(params.dataset.numeric_features), "training set")
    if problems:
        raise GateFailed("train refuses non-finite features:\n" + "\n".join(problems))
    model = build_pipeline(params)
    model.fit(x_train, y_train)
    # The fit's input copy goes with this frame; the metrics read ``train`` itself.
    return model, x_train.head(5)


def _measure(
    params: Params, as_of: str, model: Pipeline, train: pd.DataFrame, holdout: pd.DataFrame
) -> dict[str, float]:
    """``train_*`` and ``holdout_*`` metrics; ModelCheckFailed first if its holdout predictions are broken."""
    from retrainer.gates import prediction_problems
    from retrainer.metrics import all_metrics

    holdout_scores = predict_scores(model, holdout, params)
    problems = prediction_problems(holdout_scores, f"holdout of as_of={as_of}")
    if problems:
        # Nothing is logged or registered for a broken model: the run stops before MLflow sees it.
        raise ModelCheckFailed("model check failed:\n" + "\n".join(problems))
    train_metrics = score(model, training_metric_rows(train, params), params)
    holdout_metrics = all_metrics(holdout[params.dataset.label].astype(int).to_numpy(), holdout_scores)
    return {**{f"train_{k}": v for k, v in train_metrics.items()}, **{f"holdout_{k}": v for k, v in holdout_metrics.items()}}


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
            **{f"retrainer.{k}": v for k, v in git_info(params.root).items()},
            **{f"airflow.{k}": str(v) for k, v in self.context.items() if v not in (None, "")},
        }

    def params(self, params: Params) -> dict[str, Any]:
        return {
            "estimator": params.model.estimator,
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
        model_uri = _log_model(model, example)
        mlflow.log_artifact(prepared.manifest_path, artifact_path="lineage")
        record = lineage_record(params, prepared.manifest_path, run.run_key, run.context, run.prepared_gate)
        mlflow.log_dict(record, "lineage/lineage.json")
        client.set_tag(run_id, "retrainer.manifest_sha256", record["manifest_sha256"])
        client.set_tag(run_id, "retrainer.model_uri", model_uri)
    return run_id, model_uri


def _log_model(model: Pipeline, example: pd.DataFrame) -> str:
    """Log the fitted pipeline (skops format, stated requirements) to the active run; its model URI."""
    import mlflow
    from mlflow.models import infer_signature

    info = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=infer_signature(example, model.predict_proba(example)),
        input_example=example,
        pyfunc_predict_fn="predict_proba",
        # skops (safe loading) refuses types it does not know; these are the types of the model we
        # just fitted in this process, so trusting exactly them is safe.
        skops_trusted_types=_own_types(model),
        # Stated, not inferred: inference re-imports the model in a subprocess (about 20 s a run).
        pip_requirements=_model_requirements(),
    )
    return info.model_uri
