"""The names everyone shares: DAG ids, assets, pools, registry aliases.

One home for each, imported by the DAGs, the plugins, the launcher, the library and the tests. Only the
standard library is used here, so a DAG file can import it at parse time.
"""

from __future__ import annotations

from pathlib import Path

# DAG ids (and the tag every Retrainer DAG carries).
TRAINING_DAG = "training"
DRIFT_MONITOR_DAG = "drift_monitor"
INGEST_LANDING_DAG = "ingest_landing"
BATCH_SCORING_DAG = "batch_scoring"
PROMOTE_DAG = "promote"
ROLLBACK_DAG = "rollback"
DAG_TAG = "retrainer"
ALL_DAGS = (TRAINING_DAG, DRIFT_MONITOR_DAG, INGEST_LANDING_DAG, BATCH_SCORING_DAG, PROMOTE_DAG, ROLLBACK_DAG)

# Many models, one deployment (retrainer.deployment): one params file per model, models/<name>.yaml, plus
# an optional shared file every model file overrides key by key. Each model's DAGs are the same kinds,
# with ids suffixed "__<name>" and the tag "model:<name>". A deployment of one params.yaml (no models/
# folder) keeps the bare ids above.
MODELS_DIR = "models"
SHARED_MODEL_FILE = "_shared.yaml"
MODEL_SEPARATOR = "__"
MODEL_TAG_PREFIX = "model:"
# A model's name is its file's stem: a DAG-id part (letters, digits, "_", "-"; files starting "_" are
# not models). Its DAG ids stay within Airflow's 250 characters.
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$"


def model_files(folder: Path) -> dict[str, Path]:
    """name -> file of the model files in ``folder`` (``*.yaml``/``*.yml`` not starting with "_" or "."),
    sorted by name. The one rule of what is a model file (retrainer.deployment; the launcher, without
    the library's dependencies)."""
    if not folder.is_dir():
        return {}
    files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    return {p.stem: p for p in files if not p.name.startswith(("_", "."))}


def dag_id(kind: str, model: str | None = None) -> str:
    """The DAG id of ``kind`` (one of ALL_DAGS) for ``model`` (None: a single-params-file deployment)."""
    return f"{kind}{MODEL_SEPARATOR}{model}" if model else kind


def split_dag_id(value: str) -> tuple[str, str | None]:
    """(kind, model) of a Retrainer DAG id; model None for a bare id. ValueError for any other id."""
    for kind in ALL_DAGS:
        if value == kind:
            return kind, None
        if value.startswith(kind + MODEL_SEPARATOR) and len(value) > len(kind) + len(MODEL_SEPARATOR):
            return kind, value[len(kind) + len(MODEL_SEPARATOR) :]
    raise ValueError(f"not a Retrainer DAG id: {value!r}")


def model_of(value: str) -> str | None:
    """The model of a DAG id (its ``__<name>`` suffix); None for a bare id or a DAG that is not Retrainer's."""
    try:
        return split_dag_id(value)[1]
    except ValueError:
        return None


def model_tag(model: str) -> str:
    return f"{MODEL_TAG_PREFIX}{model}"

# The Airflow asset updated whenever raw partitions are written (extra: the days); drift_monitor runs on it.
RAW_PARTITIONS_ASSET = "retrainer_raw_partitions"


def raw_partitions_asset(model: str | None = None) -> str:
    """The raw-partitions asset of one model (``retrainer_raw_partitions__<name>``; bare for one params file)."""
    return f"{RAW_PARTITIONS_ASSET}{MODEL_SEPARATOR}{model}" if model else RAW_PARTITIONS_ASSET

# The Airflow pool of one slot that serializes DVC work on the repository (DVC takes a repo-wide lock).
# One pool for all models: they share the one DVC repository, so their DVC steps take turns.
DVC_POOL = "dvc"

# MLflow registry aliases.
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "champion-previous"
REGISTRY_ALIASES = (CHAMPION, CHALLENGER, PREVIOUS_CHAMPION)

# Notification events (params.yaml ``notifications[].events``; plugins/retrainer_notifier.py sends them).
EVENT_FAILURE = "failure"  # a task failed for good (after its retries)
EVENT_QUARANTINE = "quarantine"  # a day's batch failed the raw-data gate and was quarantined
EVENT_DRIFT_RETRAIN = "drift_retrain"  # drift_monitor triggered a retrain
EVENT_PROMOTION = "promotion"  # a version became champion (auto, promote DAG or approval)
EVENT_ROLLBACK = "rollback"  # the champion was rolled back
EVENT_APPROVAL_PENDING = "approval_pending"  # a challenger waits for a person's approval
EVENT_DEADLINE_MISSED = "deadline_missed"  # a run did not finish by its deadline (params.yaml ``deadlines``)
NOTIFY_EVENTS = (EVENT_FAILURE, EVENT_QUARANTINE, EVENT_DRIFT_RETRAIN, EVENT_PROMOTION, EVENT_ROLLBACK,
                 EVENT_APPROVAL_PENDING, EVENT_DEADLINE_MISSED)

# The answers of a training run's approval task (registry.promotion: manual; Airflow ApprovalOperator's labels).
APPROVE = "Approve"
REJECT = "Reject"
