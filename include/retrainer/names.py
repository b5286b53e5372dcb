"""The names everyone shares: DAG ids, assets, pools, registry aliases.

One home for each, imported by the DAGs, the plugins, the launcher, the library and the tests. Only the
standard library is used here, so a DAG file can import it at parse time.
"""

from __future__ import annotations

# DAG ids (and the tag every Retrainer DAG carries).
TRAINING_DAG = "training"
DRIFT_MONITOR_DAG = "drift_monitor"
INGEST_LANDING_DAG = "ingest_landing"
BATCH_SCORING_DAG = "batch_scoring"
PROMOTE_DAG = "promote"
ROLLBACK_DAG = "rollback"
DAG_TAG = "retrainer"
ALL_DAGS = (TRAINING_DAG, DRIFT_MONITOR_DAG, INGEST_LANDING_DAG, BATCH_SCORING_DAG, PROMOTE_DAG, ROLLBACK_DAG)

# The Airflow asset updated whenever raw partitions are written (extra: the days); drift_monitor runs on it.
RAW_PARTITIONS_ASSET = "retrainer_raw_partitions"

# The Airflow pool of one slot that serializes DVC work on the repository (DVC takes a repo-wide lock).
DVC_POOL = "dvc"

# MLflow registry aliases.
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "champion-previous"
REGISTRY_ALIASES = (CHAMPION, CHALLENGER, PREVIOUS_CHAMPION)

# The answers of a training run's approval task (registry.promotion: manual; Airflow ApprovalOperator's labels).
APPROVE = "Approve"
REJECT = "Reject"
