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
