"""Evaluate: score the challenger and the current champion on the same holdout and decide.

The gate (``evaluation`` in params.yaml) passes a challenger only if it

1. clears an absolute floor on the primary metric,
2. beats the champion: the lower end of the paired bootstrap interval of its improvement (holdout
   rows resampled with a seed, both models scored on each resample) lies above ``min_improvement``,
   so an improvement that noise could explain is not promoted,
3. regresses on no slice (each value of the configured categorical features, if it has enough rows)
   by more than ``slices.tolerance``, and on no guard metric (calibration, log loss, predict latency)
   by more than its tolerance.

Whether a passing challenger may actually replace the champion is decided here too: not when it is
the champion already, not when it was trained as of an older date than the champion (a backfill:
evaluated and reported as historical), not when a rollback demoted it. The decision is a JSON file
with every number, interval and reason; the register step acts on it, and the champion it was made
against is recorded so that the move of ``champion`` can be a check-and-set.

A package because the three parts are read apart (as one module they were over 600 lines):

* ``gate``: the rules on numbers alone, one function each, composed by ``apply_gate``;
* ``decision``: the ``Decision`` record, its JSON and its table;
* ``challenger``: the step itself (``evaluate_challenger``: MLflow models, promotability, files, logging).
"""

from retrainer.evaluate.challenger import (
    LATENCY_SAMPLE_ROWS,
    MISSING_SEGMENT,
    evaluate_challenger,
    predict_latency_ms,
    segments_of,
)
from retrainer.evaluate.decision import Decision
from retrainer.evaluate.gate import GateOutcome, apply_gate

__all__ = [
    "LATENCY_SAMPLE_ROWS",
    "MISSING_SEGMENT",
    "Decision",
    "GateOutcome",
    "apply_gate",
    "evaluate_challenger",
    "predict_latency_ms",
    "segments_of",
]
