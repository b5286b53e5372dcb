"""The errors the loop's steps raise, in one place so callers (the Airflow glue, the CLI, other steps)
can tell the outcomes apart without importing the step that raised them.

Each says what a retry would do: a gate failure, missing data or a registry refusal gives the same
answer again; a flaky source does not.
"""

from __future__ import annotations


class SourceError(RuntimeError):
    """The source cannot be reached or read; the message names the (password-masked) URL."""


class NoData(RuntimeError):
    """The source has no rows for the as-of date: nothing to train on, nothing was written."""


class NoChampion(NoData):
    """There is no champion model yet, so there is no reference to check drift against."""


class GateFailed(RuntimeError):
    """A data-quality gate stopped the run; the message lists each failed expectation and the report."""


class SuiteInvalid(ValueError):
    """A validation suite file cannot be read or is not a valid suite (the message names the file and the
    problem): a configuration mistake, so a retry gives the same answer."""


class InsufficientData(ValueError):
    """The window does not hold enough usable rows to train and evaluate a model."""


class ModelCheckFailed(RuntimeError):
    """The fitted model's holdout predictions are unusable (NaN, out of range, constant)."""


class RegistryError(RuntimeError):
    """A registry operation could not be done; the message says why and what to do."""


class PromotionRefused(RegistryError):
    """A requested champion move is not allowed (unknown version, failed gate, missing reason...)."""


class ChampionMoved(RegistryError):
    """Check-and-set lost: the champion is not the one the decision or the request was made against."""


class PartitionNotReady(RuntimeError):
    """The day's partition is missing, not validated yet, or quarantined."""


class NoModel(RuntimeError):
    """The registry has no version under the alias a scoring task needs."""
