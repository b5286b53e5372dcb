"""The `drift_monitor` DAG's library: one drift check for an as-of date, and the retrain decision.

A check compares the most recent ``drift.window_days`` of ingested partitions (current) with the
training data of the current ``champion`` (reference):

* **Reference, once per champion** (:mod:`~retrainer.monitor.reference`). Built from the champion
  run's training set (its ``train.parquet``, else the training partitions its lineage manifest lists,
  restored from DVC if needed), stored under ``<drift.reference_dir>/<model>/v<version>/`` as
  ``reference.parquet`` (DVC-tracked), a :class:`~retrainer.drift.ReferenceProfile` and a sample for
  the report's plots. Later checks against the same champion only load the profile.
* **Data drift** per feature with Evidently's method and threshold (``retrainer.drift``), the
  **prediction drift** of the champion's batch-scoring outputs (``retrainer.scoring``) when they
  exist (:mod:`~retrainer.monitor.window`), and **performance drift** when enough rows of the window
  carry labels (:mod:`~retrainer.monitor.performance`: the champion's metric on them against its
  holdout metric; the batch scores of those rows when present, else the champion scores them here).
* **Outputs** (:mod:`~retrainer.monitor.check`): Evidently's HTML and JSON report and our
  ``summary.json`` under ``<reports_dir>/drift/<date>/``, an MLflow run in the monitoring experiment,
  and a check record in the ledger ``<reports_dir>/drift/ledger.json`` (:mod:`~retrainer.monitor.ledger`).
* **Decision** (:mod:`~retrainer.monitor.decision`): :func:`decide` is a pure function of the
  ledger's history, today's outcome and the ``drift`` params: a drift signal (drifted share, a
  critical column, performance) must persist (``required`` of the last ``checks`` checks) and no
  drift-triggered retrain may have happened within ``cooldown_days``.

Nothing here reads the clock: the as-of date is an input.
"""

from __future__ import annotations

from retrainer.monitor.champion import Champion, current_champion, feature_specs
from retrainer.monitor.check import check_key, log_check, run_check
from retrainer.monitor.decision import Action, CheckOutcome, RetrainDecision, decide, drift_signals
from retrainer.monitor.ledger import TRIGGER_REASON, load_ledger, record_check, record_trigger
from retrainer.monitor.paths import LEDGER_FILE, ledger_path, reference_folder, report_folder
from retrainer.monitor.performance import performance_check
from retrainer.monitor.reference import Reference, champion_reference
from retrainer.monitor.window import DAY_COLUMN, CurrentWindow, batch_predictions, current_window

__all__ = [
    "DAY_COLUMN",
    "LEDGER_FILE",
    "TRIGGER_REASON",
    "Action",
    "Champion",
    "CheckOutcome",
    "CurrentWindow",
    "Reference",
    "RetrainDecision",
    "batch_predictions",
    "champion_reference",
    "check_key",
    "current_champion",
    "current_window",
    "decide",
    "drift_signals",
    "feature_specs",
    "ledger_path",
    "load_ledger",
    "log_check",
    "performance_check",
    "record_check",
    "record_trigger",
    "reference_folder",
    "report_folder",
    "run_check",
]
