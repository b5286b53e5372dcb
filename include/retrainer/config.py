"""The schema of a params file: one model's configuration (a models/<name>.yaml merged over the shared
file, see retrainer.deployment, or a single params.yaml).

Loading fails fast: an unknown key, a wrong type or a bad value raises ``ConfigError`` naming
the file, the dotted key and the reason. Relative paths and relative SQLite URLs resolve against
the folder that holds the params file, so a run does not depend on the current directory.

Long because it is the one schema of every section of the file (the task tables and their checks live in
retrainer.tasks); the drift and notification sections are the next to move out if it grows.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from retrainer.names import NOTIFY_EVENTS

# The learning tasks: their metrics, primary metrics, default guards and built-in estimators.
from retrainer.tasks import DEFAULT_GUARDS, TASK_METRICS, Task, task_defaults, task_problem

PARAMS_ENV = "RETRAINER_PARAMS"
DEFAULT_PARAMS_FILE = "params.yaml"
# Where a deployment's endpoints differ from params.yaml, its environment says so (docker-compose.yaml
# and `make up-distributed` set them): these never change what a model learns, only where data and
# runs live, and they keep credentials out of the params file.
# Not MLflow's own MLFLOW_TRACKING_URI: mlflow.set_tracking_uri() writes that one into os.environ, so a
# long-lived process would carry one store's URI over to the next params file. Credentials for a server
# come from MLflow's MLFLOW_TRACKING_USERNAME/PASSWORD.
TRACKING_URI_ENV = "RETRAINER_TRACKING_URI"
SOURCE_URL_ENV = "RETRAINER_SOURCE_URL"
DVC_REMOTE_URL_ENV = "RETRAINER_DVC_REMOTE_URL"


class ConfigError(ValueError):
    """params.yaml is missing, unreadable or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProjectConfig(_Strict):
    seed: int = 42
    data_dir: str = "data"
    reports_dir: str = "reports"


class SourceConfig(_Strict):
    url: str
    table: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class DatasetConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    # binary: a 0/1 label; multiclass: a label with a few classes (text or integers); regression: a number.
    task: Task = "binary"
    entity_id: str
    event_time: str
    label: str
    numeric_features: list[str] = Field(min_length=1)
    categorical_features: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _columns_distinct(self) -> DatasetConfig:
        names = [self.entity_id, self.event_time, self.label, *self.numeric_features, *self.categorical_features]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"columns named more than once: {repeated}")
        return self

    @property
    def features(self) -> list[str]:
        return [*self.numeric_features, *self.categorical_features]


class ValidationConfig(_Strict):
    raw_suite: str
    prepared_suite: str | None = None
    result_format: Literal["BOOLEAN_ONLY", "BASIC", "SUMMARY", "COMPLETE"] = "BOOLEAN_ONLY"
    # A feature that alone separates the label with at least this AUC is treated as target leakage.
    leakage_max_auc: float = Field(default=0.98, gt=0.5, le=1.0)
    # Regression: a feature that alone explains this share of the label's variance is leakage.
    leakage_max_r2: float = Field(default=0.95, gt=0.0, le=1.0)


class PrepareConfig(_Strict):
    window_days: int = Field(ge=2, le=3660)
    holdout_days: int = Field(ge=1)
    min_train_rows: int = Field(ge=10)
    # Quarantined or unreadable days are left out of a window; the run fails when fewer days with data
    # than this remain (a count, and/or a share of the window's days). None: no such floor.
    min_window_days: int | None = Field(default=None, ge=1)
    min_window_share: float | None = Field(default=None, gt=0, le=1)

    def min_days(self, window: int) -> int:
        """The fewest days with data a window of ``window`` days may have."""
        import math

        share = math.ceil(self.min_window_share * window) if self.min_window_share else 0
        return max(self.min_window_days or 0, share)

    @model_validator(mode="after")
    def _holdout_inside_window(self) -> PrepareConfig:
        if self.holdout_days >= self.window_days:
            raise ValueError(
                f"holdout_days ({self.holdout_days}) must be smaller than window_days ({self.window_days})"
            )
        return self


class ModelConfig(_Strict):
    registered_name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    # A built-in estimator (TASK_ESTIMATORS) or the team's own: exactly one of the two.
    estimator: Literal["hist_gradient_boosting", "random_forest", "logistic_regression", "ridge"] | None = None
    # "package.module:function", called with numeric_features, categorical_features, hyperparameters, seed
    # and task (keyword arguments); returns an unfitted scikit-learn estimator taking a frame of the features.
    factory: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
    hyperparameters: dict[str, int | float | str | bool | None] = Field(default_factory=dict)
    # Training-set metrics are a diagnostic (the train/holdout gap), not a gate: past this many rows
    # they are measured on a seeded sample of the training set, as scikit-learn's own boosting scores
    # its training set on a sample. None: every row.
    train_metrics_max_rows: int | None = Field(default=200_000, ge=1_000)

    @model_validator(mode="after")
    def _estimator_or_factory(self) -> ModelConfig:
        if (self.estimator is None) == (self.factory is None):
            raise ValueError("set exactly one of model.estimator (a built-in) and model.factory (module:function)")
        return self


class BootstrapConfig(_Strict):
    resamples: int = Field(default=1000, ge=100, le=100_000)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)


class SlicesConfig(_Strict):
    features: list[str] = Field(default_factory=list)
    tolerance: float = Field(default=0.03, ge=0)
    min_rows: int = Field(default=200, ge=1)


class GuardsConfig(_Strict):
    # Metric -> max regression. Unset: DEFAULT_GUARDS of the dataset's task.
    metrics: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_GUARDS["binary"]))
    max_latency_ratio: float | None = Field(default=2.0, gt=1.0)
    latency_slack_ms: float = Field(default=1.0, ge=0)
    latency_repeats: int = Field(default=5, ge=1, le=50)

    @field_validator("metrics")
    @classmethod
    def _tolerances_not_negative(cls, value: dict[str, float]) -> dict[str, float]:
        negative = sorted(k for k, v in value.items() if v < 0)
        if negative:
            raise ValueError(f"tolerances must be >= 0: {negative}")
        return value


class EvaluationConfig(_Strict):
    # One of retrainer.tasks.PRIMARY_METRICS of the dataset's task; unset: its DEFAULT_PRIMARY_METRIC.
    primary_metric: str = "roc_auc"
    absolute_floor: float
    min_improvement: float = Field(default=0.0, ge=0)
    bootstrap: BootstrapConfig = BootstrapConfig()
    slices: SlicesConfig = SlicesConfig()
    guards: GuardsConfig = GuardsConfig()


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> timedelta:
    """A duration from params.yaml: ``"3d"``, ``"12h"``, ``"30m"``, ``"90s"`` (or a number of seconds)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a duration such as '3d', '12h', '30m' or '90s', got {value!r}")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", value)
    if not match:
        raise ValueError(f"expected a duration such as '3d', '12h', '30m' or '90s', got {value!r}")
    return timedelta(seconds=float(match[1]) * _DURATION_UNITS[match[2]])


class RegistryConfig(_Strict):
    promotion: Literal["auto", "manual"] = "auto"
    history_length: int = Field(default=20, ge=1, le=200)
    lock_dir: str | None = None
    lock_timeout_s: float = Field(default=120.0, gt=0)
    # promotion: manual: how long the training run's approval task waits; no answer by then rejects.
    approval_timeout: timedelta = timedelta(days=3)
    # Who may answer the approval task (Airflow user ids; SimpleAuthManager: the user name). Empty:
    # everyone allowed to change the training DAG's runs (Airflow's DAG edit permission; not viewers).
    approvers: list[str] = Field(default_factory=list)

    @field_validator("approval_timeout", mode="before")
    @classmethod
    def _duration(cls, value: object) -> timedelta:
        return parse_duration(value)

    @field_validator("approval_timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError(f"must be at least 1 second, got {value.total_seconds():g}s")
        return value

    @field_validator("approvers")
    @classmethod
    def _approvers_named_once(cls, value: list[str]) -> list[str]:
        blank = [v for v in value if not v.strip()]
        if blank:
            raise ValueError("user ids must not be empty")
        repeated = sorted({v for v in value if value.count(v) > 1})
        if repeated:
            raise ValueError(f"users named more than once: {repeated}")
        return value


class ScoringConfig(_Strict):
    output_dir: str = "data/predictions"
    url: str = "sqlite:///data/predictions.db"
    table: str = Field(default="predictions", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    shadow: bool = True
    threshold: float = Field(default=0.5, gt=0, lt=1)


class MlflowConfig(_Strict):
    tracking_uri: str
    artifact_root: str = ".mlflow/artifacts"
    experiment: str = "retrainer-training"


class DvcConfig(_Strict):
    remote_name: str = Field(default="local", pattern=r"^[A-Za-z0-9_-]+$")
    remote_url: str


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[str, ...] = Weekday.__args__


class LandingConfig(_Strict):
    """Files dropped into ``folder`` are claimed into ``staging``, split into daily partitions and
    trigger `training` for each day they cover (the `ingest_landing` DAG)."""

    folder: str = "data/landing"
    staging: str = "data/staging"
    quarantine: str = "data/quarantine/landing"
    # A file modified less than this many seconds ago may still be being written: wait for it.
    settle_seconds: float = Field(default=2.0, ge=0, le=3600)
    trigger_training: bool = True


class ScheduleConfig(_Strict):
    """What the daily `training` schedule does beyond the rolling window."""

    # Runs whose as-of date falls on this weekday train on ``full_retrain_window_days`` instead of
    # prepare.window_days (null: never). Decided by the as-of date, so backfills reproduce it.
    full_retrain_weekday: Weekday | None = None
    full_retrain_window_days: int = Field(default=90, ge=2, le=3660)
    # The DAGs' cron schedules (UTC). Data-interval timetables: each run covers the interval before it.
    training_cron: str = "0 0 * * *"
    drift_cron: str = "30 1 * * *"
    scoring_cron: str = "0 2 * * *"

    @field_validator("training_cron", "drift_cron", "scoring_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"not a cron expression: {value!r}")
        return value

    def window_for(self, as_of: date, default: int) -> int:
        """The window length of a run as of ``as_of`` when no explicit length was requested."""
        if self.full_retrain_weekday and WEEKDAYS[as_of.weekday()] == self.full_retrain_weekday:
            return self.full_retrain_window_days
        return default


class RunConfig(_Strict):
    as_of: str = "latest"
    # The model `dvc repro` reproduces in a models/ deployment (dvc.yaml reads it); null: the only one.
    model: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

    @field_validator("as_of")
    @classmethod
    def _date_or_latest(cls, value: str) -> str:
        if value != "latest":
            date.fromisoformat(value)
        return value


# Evidently 0.7 drift methods usable on tabular columns (its registry minus the text-only ones).
# tests/unit/test_drift_stats.py checks this list against the installed Evidently.
DriftMethod = Literal[
    "TVD", "anderson", "chisquare", "cramer_von_mises", "ed", "empirical_mmd", "es", "fisher_exact",
    "g_test", "hellinger", "jensenshannon", "kl_div", "ks", "mannw", "psi", "t_test", "wasserstein", "z",
]
# The champion's predicted probability in batch-scoring outputs (retrainer.scoring): prediction drift is
# checked on this column, and per-column drift overrides may name it.
PREDICTION_COLUMN = "score"


class DriftPersistenceConfig(_Strict):
    """Drift must be seen in ``required`` of the last ``checks`` checks before it triggers a retrain."""

    checks: int = Field(default=3, ge=1, le=365)
    required: int = Field(default=2, ge=1)

    @model_validator(mode="after")
    def _required_within_checks(self) -> DriftPersistenceConfig:
        if self.required > self.checks:
            raise ValueError(f"required ({self.required}) must not exceed checks ({self.checks})")
        return self


class DriftPerformanceConfig(_Strict):
    """Performance drift: the champion's metric on recent labelled rows against its holdout metric."""

    # Retrain when the metric falls more than this below the champion's holdout value...
    max_drop: float = Field(default=0.05, ge=0)
    # ...or below this absolute value (null: no absolute floor).
    floor: float | None = None
    # Fewer labelled rows in the window than this: performance is not judged.
    min_labelled_rows: int = Field(default=500, ge=1)


class DriftConfig(_Strict):
    """The `drift_monitor` DAG: Evidently checks of recent data against the champion's training data."""

    window_days: int = Field(default=7, ge=1, le=366)
    min_current_rows: int = Field(default=1000, ge=1)
    drift_share: float = Field(default=0.2, gt=0, le=1)
    critical_columns: list[str] = Field(default_factory=list)
    methods: dict[str, DriftMethod] = Field(default_factory=dict)
    thresholds: dict[str, float] = Field(default_factory=dict)
    persistence: DriftPersistenceConfig = DriftPersistenceConfig()
    cooldown_days: int = Field(default=7, ge=0, le=3660)
    performance: DriftPerformanceConfig = DriftPerformanceConfig()
    prediction_drift_is_critical: bool = False
    reference_dir: str = "data/reference"
    reference_max_rows: int = Field(default=2_000_000, ge=1000)
    report_sample_rows: int = Field(default=20_000, ge=100)
    workers: int = Field(default=2, ge=1, le=64)
    experiment: str = "retrainer-monitoring"


# Notifier kinds (plugins/retrainer_notifier.py builds each from Airflow's maintained providers) and the
# options each may take in params.yaml. Nothing secret goes here: tokens, passwords, webhook URLs and
# headers live in the Airflow connection named by ``conn_id``.
NotifierKind = Literal["slack", "slack_webhook", "smtp", "apprise", "http", "webhook"]
NOTIFIER_OPTIONS: dict[str, tuple[str, ...]] = {
    "slack": ("channel", "username"),  # SlackNotifier (Slack API token in the connection)
    "slack_webhook": (),  # SlackWebhookNotifier (the webhook URL/token in the connection)
    "smtp": ("to", "from_email", "cc", "bcc"),  # SmtpNotifier (server and login in the connection)
    "apprise": ("tag",),  # AppriseNotifier (the Apprise URLs in the connection)
    "http": ("endpoint", "method"),  # HttpNotifier: the event as JSON to the connection's URL + endpoint
    "webhook": (),  # the event as JSON POSTed to the URL of the connection (host, or password)
}
NOTIFIER_REQUIRED_OPTIONS: dict[str, tuple[str, ...]] = {"smtp": ("to",)}
DEFAULT_WEBHOOK_CONN = "retrainer_webhook"
OptionValue = str | int | bool | list[str]


class NotifierConfig(_Strict):
    """One notifier: where (an Airflow connection id), how (the kind) and for which events."""

    kind: NotifierKind
    conn_id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=250)
    events: list[str] = Field(default_factory=lambda: list(NOTIFY_EVENTS), min_length=1)
    options: dict[str, OptionValue] = Field(default_factory=dict)

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        unknown = [e for e in value if e not in NOTIFY_EVENTS]
        if unknown:
            raise ValueError(f"unknown events {unknown} (known: {', '.join(NOTIFY_EVENTS)})")
        return value

    @model_validator(mode="after")
    def _options_of_the_kind(self) -> NotifierConfig:
        allowed = NOTIFIER_OPTIONS[self.kind]
        unknown = sorted(set(self.options) - set(allowed))
        if unknown:
            raise ValueError(
                f"options {unknown} are not options of kind {self.kind!r} (allowed: {list(allowed) or 'none'}; "
                "secrets belong in the Airflow connection)"
            )
        missing = [o for o in NOTIFIER_REQUIRED_OPTIONS.get(self.kind, ()) if not self.options.get(o)]
        if missing:
            raise ValueError(f"kind {self.kind!r} needs options {missing}")
        return self

    def wants(self, event: str) -> bool:
        return event in self.events


def default_notifications() -> list[NotifierConfig]:
    """Today's behaviour: the event as JSON to the connection ``retrainer_webhook`` when it exists."""
    return [NotifierConfig(kind="webhook", conn_id=DEFAULT_WEBHOOK_CONN)]


class DeadlinesConfig(_Strict):
    """Airflow Deadline Alerts: how long a run may take before the configured notifiers hear of it.

    ``training``: scheduled runs must finish this long after their scheduled day ends (the data
    interval's end); other runs (manual, drift-triggered, backfill) this long after they were queued.
    ``drift_monitor`` and ``batch_scoring``: this long after the run was queued. null: no alert.
    """

    training: timedelta | None = timedelta(hours=6)
    drift_monitor: timedelta | None = timedelta(hours=2)
    batch_scoring: timedelta | None = timedelta(hours=2)

    @field_validator("training", "drift_monitor", "batch_scoring", mode="before")
    @classmethod
    def _duration(cls, value: object) -> timedelta | None:
        return None if value is None else parse_duration(value)

    @field_validator("training", "drift_monitor", "batch_scoring")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError(f"a deadline must be longer than 0 seconds, got {value.total_seconds():g}s")
        return value


class Params(_Strict):
    project: ProjectConfig = ProjectConfig()
    source: SourceConfig
    dataset: DatasetConfig
    validation: ValidationConfig
    prepare: PrepareConfig
    model: ModelConfig
    evaluation: EvaluationConfig
    mlflow: MlflowConfig
    dvc: DvcConfig
    landing: LandingConfig = LandingConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    run: RunConfig = RunConfig()
    registry: RegistryConfig = RegistryConfig()
    scoring: ScoringConfig = ScoringConfig()
    drift: DriftConfig = DriftConfig()
    notifications: list[NotifierConfig] = Field(default_factory=default_notifications)
    deadlines: DeadlinesConfig = DeadlinesConfig()

    # Not part of the file: where it was read from, to resolve relative paths.
    root: Path = Field(default=Path("."), exclude=True)
    source_file: Path | None = Field(default=None, exclude=True)
    digest: str = Field(default="", exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _task_defaults(cls, raw: Any) -> Any:
        """The primary metric and guards a task gets when params.yaml names none."""
        return task_defaults(raw)

    @model_validator(mode="after")
    def _metrics_fit_the_task(self) -> Params:
        problem = task_problem(self.dataset.task, self.evaluation.primary_metric,
                               list(self.evaluation.guards.metrics), self.model.estimator)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def higher_is_better(self) -> bool:
        """Whether a larger value of the primary metric is better."""
        return TASK_METRICS[self.dataset.task][self.evaluation.primary_metric]

    @model_validator(mode="after")
    def _slices_are_categorical(self) -> Params:
        unknown = [f for f in self.evaluation.slices.features if f not in self.dataset.categorical_features]
        if unknown:
            raise ValueError(
                f"evaluation.slices.features must be categorical features of the dataset, not {unknown}"
            )
        return self

    @model_validator(mode="after")
    def _drift_columns_are_features(self) -> Params:
        known = set(self.dataset.features)
        drift = self.drift
        named = {
            "drift.critical_columns": drift.critical_columns,
            "drift.methods": list(drift.methods),
            "drift.thresholds": list(drift.thresholds),
        }
        for key, columns in named.items():
            unknown = sorted(set(columns) - known - {PREDICTION_COLUMN})
            if unknown:
                raise ValueError(f"{key}: not features of dataset {self.dataset.name!r}: {unknown}")
        return self

    def path(self, relative: str | Path) -> Path:
        """Resolve a path from params.yaml against the params file's folder."""
        p = Path(relative)
        return p if p.is_absolute() else (self.root / p)

    @property
    def data_dir(self) -> Path:
        return self.path(self.project.data_dir)

    @property
    def reports_dir(self) -> Path:
        return self.path(self.project.reports_dir)

    @property
    def drift_reports_dir(self) -> Path:
        return self.reports_dir / "drift"

    @property
    def reference_dir(self) -> Path:
        return self.path(self.drift.reference_dir)

    @property
    def source_url(self) -> str:
        return resolve_sqlite_url(os.environ.get(SOURCE_URL_ENV) or self.source.url, self.root)

    @property
    def tracking_uri(self) -> str:
        return resolve_sqlite_url(os.environ.get(TRACKING_URI_ENV) or self.mlflow.tracking_uri, self.root)

    @property
    def artifact_root(self) -> Path:
        return self.path(self.mlflow.artifact_root)

    @property
    def scoring_url(self) -> str:
        return resolve_sqlite_url(self.scoring.url, self.root)

    @property
    def landing_dir(self) -> Path:
        return self.path(self.landing.folder)

    @property
    def staging_dir(self) -> Path:
        return self.path(self.landing.staging)

    @property
    def landing_quarantine_dir(self) -> Path:
        return self.path(self.landing.quarantine)

    @property
    def dvc_remote_url(self) -> str:
        url = os.environ.get(DVC_REMOTE_URL_ENV) or self.dvc.remote_url
        return url if "://" in url else str(self.path(url))


def resolve_sqlite_url(url: str, root: Path) -> str:
    """Make a relative ``sqlite:///rel/path.db`` URL absolute against ``root``."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite:///:memory:":
        return prefix + str((root / url[len(prefix) :]).resolve())
    return url


def params_file(explicit: str | Path | None = None) -> Path:
    """The params file in force: an explicit path, else $RETRAINER_PARAMS, else ./params.yaml."""
    return Path(explicit or os.environ.get(PARAMS_ENV) or DEFAULT_PARAMS_FILE).resolve()


def load_params(path: str | Path | None = None) -> Params:
    """Read and validate params.yaml; raise ConfigError naming the file, key and reason."""
    file = params_file(path)
    raw_bytes = read_bytes(file)
    return params_from_document(
        read_document(file, raw_bytes), file, root=file.parent, digest=hashlib.sha256(raw_bytes).hexdigest()
    )


def read_bytes(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read params file ({exc.strerror or exc})") from exc


def read_document(file: Path, raw_bytes: bytes | None = None) -> dict:
    """One params file's YAML mapping (not validated yet); ConfigError naming the file if it is not one."""
    text = read_bytes(file) if raw_bytes is None else raw_bytes
    try:
        # libyaml's loader when PyYAML has it: every DAG file reads the model files when it is parsed.
        raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        try:
            yaml.safe_load(text)  # the pure-Python loader's message quotes the offending line
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
        raise
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: the top level must be a mapping, got {type(raw).__name__}")
    for reserved in ("root", "source_file", "digest"):
        if reserved in raw:
            raise ConfigError(f"{file}: {reserved}: unknown key (extra inputs are not permitted)")
    return raw


def params_from_document(
    raw: dict, file: Path, root: Path, digest: str, where: Callable[[str], str] | None = None
) -> Params:
    """Validate a params mapping read from ``file``; relative paths resolve against ``root``.
    ``where(key)`` names the file a key came from when several files were merged (retrainer.deployment)."""
    try:
        return Params(**raw, root=root, source_file=file, digest=digest)
    except ValidationError as exc:
        raise ConfigError(f"{file}: invalid params:\n{_describe(exc, where)}") from None


def _describe(exc: ValidationError, where: Callable[[str], str] | None = None) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        if where is not None:
            key = f"{key} ({where(key)})"
        reason = err["msg"]
        if err["type"] == "extra_forbidden":
            reason = "unknown key"
        elif "input" in err and not isinstance(err["input"], dict | list):
            reason = f"{reason} (got {err['input']!r})"
        lines.append(f"  - {key}: {reason}")
    return "\n".join(lines)
