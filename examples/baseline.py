"""The champion's holdout metrics against a trivial baseline on the same holdout rows.

After a run (``retrainer --params examples/<name>/params.yaml run --as-of D``), this reads the
champion's prepared training and holdout sets from its run folder and scores, with the project's own
metrics, a baseline that ignores the features: the training mean (regression), the training set's
majority class with its class shares as probabilities (multiclass), the positive rate (binary).

    python examples/baseline.py --params examples/flight_delay/params.yaml
"""

from __future__ import annotations

import argparse
import json
from datetime import date


def baseline(params_file: str) -> dict:
    import mlflow
    import numpy as np
    import pandas as pd

    from retrainer.config import load_params
    from retrainer.metrics import all_metrics
    from retrainer.names import CHAMPION
    from retrainer.storage import run_dir
    from retrainer.tracking import AS_OF_TAG, RUN_KEY_TAG, current_alias, mlflow_client
    from retrainer.train import labelled_outputs, model_classes, predict_scores

    params = load_params(params_file)
    champion = current_alias(params, CHAMPION)
    run = mlflow_client(params).get_run(champion.run_id)
    folder = run_dir(params.data_dir, date.fromisoformat(run.data.tags[AS_OF_TAG]), run.data.tags[RUN_KEY_TAG])
    train, holdout = pd.read_parquet(folder / "train.parquet"), pd.read_parquet(folder / "holdout.parquet")
    task, label = params.dataset.task, params.dataset.label
    model = mlflow.sklearn.load_model(f"models:/{params.model.registered_name}/{champion.version}")
    output = predict_scores(model, holdout, params)
    if task == "multiclass":
        from retrainer.metrics.multiclass import align_classes

        shares = train[label].value_counts(normalize=True)  # as probabilities: argmax is the majority class
        majority = (list(shares.index), np.tile(shares.to_numpy(), (len(holdout), 1)))
        names, y, (scored, constant) = align_classes(list(holdout[label]), [(model_classes(model), output), majority])
    else:
        y, (scored,), names = labelled_outputs(params, holdout, [(model, output)])
        mean = train[label].astype("float64").mean()  # the training mean, or the positive rate
        constant = np.full(len(holdout), float(mean))
    ours = all_metrics(y, scored, task=task, classes=names)
    base = all_metrics(y, constant, task=task, classes=names)
    metrics = [m for m in ours if "." not in m and m not in ("rows", "label_mean", "positive_rate")]
    return {
        "model": f"{params.model.registered_name} v{champion.version}", "as_of": run.data.tags[AS_OF_TAG],
        "task": task, "train_rows": len(train), "holdout_rows": len(holdout),
        "baseline": "training mean" if task == "regression" else "majority class / class shares",
        "metrics": {m: {"model": round(ours[m], 4), "baseline": round(base[m], 4)} for m in metrics},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True)
    print(json.dumps(baseline(parser.parse_args(argv).params), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
