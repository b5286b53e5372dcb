"""Batch scoring: score one day's validated partition with ``models:/<name>@champion`` (and, in shadow,
with ``@challenger``) and write the predictions twice:

* Parquet: ``<scoring.output_dir>/dt=YYYY-MM-DD/<model name>-v<N>.parquet`` (Hive-style ``dt`` folders, so a
  reader of the folder gets a ``dt`` column), plus ``dt=.../_scoring.json`` naming which version scored
  the day as champion and which in shadow, and how the two compare;
* SQL: table ``scoring.table`` at ``scoring.url`` (any SQLAlchemy URL), written with bound parameters.

Every row carries the model name, version and role. Both writes are idempotent per (day, model version):
the Parquet file is replaced atomically, and the SQL rows of that day and version are deleted and
inserted again in one transaction, so a retried or rerun task never duplicates or half-writes rows.
The alias is resolved to a version once per task, so every row of a file carries the version that
actually scored it even if the alias moves meanwhile. These outputs feed drift monitoring.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrainer.config import Params
from retrainer.errors import NoModel, PartitionNotReady
from retrainer.names import CHALLENGER, CHAMPION
from retrainer.storage import partition_dir, partition_file, write_json_atomic, write_with
from retrainer.tracking import current_alias, mlflow_client
from retrainer.train import feature_frame

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy as sa

MANIFEST = "_scoring.json"
SHADOW = "shadow"


def partition_status(params: Params, day: date) -> str:
    """``ready`` (in the training area with a passing validation report), ``quarantined``, ``failed_validation``,
    ``unvalidated`` or ``missing``."""
    raw = partition_file(params.data_dir, day)
    report = params.reports_dir / "validation" / f"dt={day.isoformat()}" / "validation.json"
    if raw.exists() and report.exists():
        return "ready" if json.loads(report.read_text(encoding="utf-8")).get("success") else "failed_validation"
    if partition_dir(params.data_dir, day, area="quarantine").exists():
        return "quarantined"
    return "unvalidated" if raw.exists() else "missing"


def _why(params: Params, day: date, status: str) -> str:
    """For a quarantined day: what kind of quarantine (failed gate, unreadable rows) and its failures."""
    from retrainer.quarantine import quarantine_record, short_reason

    record = quarantine_record(params, day) if status == "quarantined" else None
    return "" if record is None else f" ({record['kind']}: {short_reason(record['reason'])})"


def day_dir(params: Params, day: date) -> Path:
    return params.path(params.scoring.output_dir) / f"dt={day.isoformat()}"


def predictions_table(name: str, metadata: sa.MetaData | None = None) -> sa.Table:
    import sqlalchemy as sa

    metadata = metadata if metadata is not None else sa.MetaData()
    return sa.Table(
        name,
        metadata,
        sa.Column("scored_day", sa.Date, nullable=False),
        sa.Column("entity_id", sa.String(128), nullable=False),
        sa.Column("event_time", sa.DateTime),
        sa.Column("model_name", sa.String(256), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("model_role", sa.String(16), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("prediction", sa.SmallInteger, nullable=False),
        sa.Column("label", sa.SmallInteger),
        sa.Column("scoring_run", sa.String(256)),
        sa.Index(f"ix_{name}_day_model", "scored_day", "model_name", "model_version"),
    )


def _ensure_table(engine: sa.Engine, table: sa.Table) -> None:
    import sqlalchemy as sa

    try:
        table.metadata.create_all(engine, checkfirst=True)
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
        # Another task created it between the check and the create.
        if not sa.inspect(engine).has_table(table.name):
            raise


def write_predictions_sql(params: Params, frame: pd.DataFrame, day: date, version: int) -> dict[str, int]:
    """Replace the rows of (day, model, version) with ``frame`` in one transaction; rows deleted/inserted."""
    import sqlalchemy as sa

    from retrainer.sql_source import masked_url

    url = params.scoring_url
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    table = predictions_table(params.scoring.table)
    records = _records(frame)
    try:
        _ensure_table(engine, table)
        with engine.begin() as conn:
            deleted = conn.execute(
                table.delete().where(
                    table.c.scored_day == day,
                    table.c.model_name == params.model.registered_name,
                    table.c.model_version == version,
                )
            ).rowcount
            if records:
                conn.execute(table.insert(), records)
    except sa.exc.SQLAlchemyError as exc:
        raise RuntimeError(
            f"writing predictions to {masked_url(params.scoring.url)} table {params.scoring.table!r} failed: {exc}"
        ) from exc
    finally:
        engine.dispose()
    return {"deleted": int(deleted or 0), "inserted": len(records)}


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    import pandas as pd

    out = frame.copy()
    event_time = pd.to_datetime(out["event_time"])
    if getattr(event_time.dt, "tz", None) is not None:
        event_time = event_time.dt.tz_convert("UTC").dt.tz_localize(None)
    out["event_time"] = event_time.astype(object).where(event_time.notna(), None)
    out["label"] = out["label"].astype(object).where(out["label"].notna(), None)
    out = out.astype({"score": float, "prediction": int, "model_version": int})
    records = out.to_dict("records")
    for row in records:
        if row["event_time"] is not None:
            row["event_time"] = row["event_time"].to_pydatetime()
        if row["label"] is not None:
            row["label"] = int(row["label"])
    return records


def score_partition(
    params: Params, day: date, alias: str = CHAMPION, role: str = CHAMPION, scoring_run: str = ""
) -> dict[str, Any]:
    """Score the day's partition with the version behind ``alias``; write Parquet and SQL; a summary."""
    import mlflow
    import pandas as pd

    mlflow_client(params)  # before any load: a task process starts with MLflow's default store
    status = partition_status(params, day)
    if status != "ready":
        raise PartitionNotReady(f"partition dt={day.isoformat()} is {status}{_why(params, day, status)}: nothing scored")
    mv = current_alias(params, alias)
    if mv is None:
        raise NoModel(f"model {params.model.registered_name} has no '{alias}' version: nothing to score with")
    version = int(mv.version)
    name = params.model.registered_name
    model = mlflow.sklearn.load_model(f"models:/{name}/{version}")

    ds = params.dataset
    source = pd.read_parquet(partition_file(params.data_dir, day))
    scores = model.predict_proba(feature_frame(source, params))[:, 1] if len(source) else []
    label = source[ds.label] if ds.label in source.columns else pd.Series([None] * len(source), dtype="object")
    frame = pd.DataFrame(
        {
            "scored_day": pd.Series([day] * len(source), dtype="object"),
            "entity_id": source[ds.entity_id].astype(str).to_numpy(),
            "event_time": source[ds.event_time].to_numpy(),
            "model_name": name,
            "model_version": version,
            "model_role": role,
            "score": scores,
            "prediction": (pd.Series(scores, dtype="float64") >= params.scoring.threshold).astype(int).to_numpy(),
            "label": label.astype("Int64").to_numpy(),
            "scoring_run": scoring_run,
        }
    )
    path = day_dir(params, day) / f"{name}-v{version}.parquet"
    write_with(path, lambda tmp: frame.to_parquet(tmp, index=False))
    sql = write_predictions_sql(params, frame, day, version)
    summary = {
        "day": day.isoformat(),
        "role": role,
        "model": name,
        "version": str(version),
        "rows": len(frame),
        "positive_rate": float(frame["prediction"].mean()) if len(frame) else None,
        "mean_score": float(frame["score"].mean()) if len(frame) else None,
        "path": str(path),
        "sql_table": params.scoring.table,
        "sql_rows_replaced": sql["deleted"],
    }
    _update_manifest(params, day, {role: summary})
    return summary


def compare_shadow(params: Params, champion: dict[str, Any], shadow: dict[str, Any]) -> dict[str, Any]:
    """How the shadow's predictions differ from the champion's on the same rows (and labels, if present)."""
    import numpy as np
    import pandas as pd

    from retrainer.metrics import metric_value

    a = pd.read_parquet(champion["path"])
    b = pd.read_parquet(shadow["path"])
    comparison: dict[str, Any] = {
        "champion_version": champion["version"],
        "shadow_version": shadow["version"],
        "rows": len(a),
        "agreement": float((a["prediction"].to_numpy() == b["prediction"].to_numpy()).mean()) if len(a) else None,
        "mean_abs_score_diff": float(np.abs(a["score"] - b["score"]).mean()) if len(a) else None,
        "champion_positive_rate": champion["positive_rate"],
        "shadow_positive_rate": shadow["positive_rate"],
    }
    labelled = a["label"].notna().to_numpy()
    y = a.loc[labelled, "label"].astype(int).to_numpy()
    if len(y) and 0 < y.sum() < len(y):
        metric = params.evaluation.primary_metric
        comparison |= {
            "labelled_rows": int(labelled.sum()),
            f"champion_{metric}": metric_value(metric, y, a.loc[labelled, "score"].to_numpy()),
            f"shadow_{metric}": metric_value(metric, y, b.loc[labelled, "score"].to_numpy()),
        }
    _update_manifest(params, day=date.fromisoformat(champion["day"]), section={"comparison": comparison})
    return comparison


def _update_manifest(params: Params, day: date, section: dict[str, Any]) -> None:
    path = day_dir(params, day) / MANIFEST
    current = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"day": day.isoformat()}
    if CHAMPION in section:
        # A new champion scoring of the day makes an earlier shadow comparison stale.
        current.pop(SHADOW, None)
        current.pop("comparison", None)
    write_json_atomic(path, {**current, **section})


def score_shadow(params: Params, day: date, champion: dict[str, Any], scoring_run: str = "") -> dict[str, Any]:
    """Score with the challenger when it differs from the version that scored as champion."""
    challenger = current_alias(params, CHALLENGER)
    if challenger is None or str(challenger.version) == champion["version"]:
        what = "no challenger" if challenger is None else f"the challenger is v{challenger.version}, the champion"
        return {"skipped": True, "note": f"no shadow scoring: {what}"}
    shadow = score_partition(params, day, CHALLENGER, SHADOW, scoring_run)
    return {"skipped": False, "shadow": shadow, "comparison": compare_shadow(params, champion, shadow)}


def score_day(params: Params, day: date, shadow: bool = True, scoring_run: str = "") -> dict[str, Any]:
    """Champion scoring of one day, then the shadow scoring (when asked and there is a distinct challenger)."""
    champion = score_partition(params, day, CHAMPION, CHAMPION, scoring_run)
    result: dict[str, Any] = {"champion": champion}
    if shadow:
        result |= score_shadow(params, day, champion, scoring_run)
    return result


def summary_table(result: dict[str, Any]) -> str:
    """A few lines for the task log."""
    lines = []
    for key in (CHAMPION, SHADOW):
        part = result.get(key)
        if part:
            lines.append(
                f"{part['role']:<8} v{part['version']:<4} {part['rows']} rows, predicted positive "
                f"{part['positive_rate']:.3f}, mean score {part['mean_score']:.4f} -> {part['path']}"
            )
    comparison = result.get("comparison")
    if comparison:
        lines.append(
            "shadow vs champion: "
            + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in comparison.items())
        )
    if result.get("note"):
        lines.append(result["note"])
    return "\n".join(lines)


# Partitions that are never scored: waiting for them would not change their status.
NOT_SCORED = ("quarantined", "failed_validation")


def readiness(params: Params, day: date, shadow: bool | None = None) -> dict[str, Any]:
    """Whether ``day``'s partition can be scored now (for a sensor that waits until it can): its
    ``status`` (:func:`partition_status`), ``ready``, ``skip`` (why it is never scored, else "") and
    ``shadow`` (the request, else ``scoring.shadow``)."""
    status = partition_status(params, day)
    skip = f"partition dt={day.isoformat()} is {status}{_why(params, day, status)}: not scored" if status in NOT_SCORED else ""
    return {"day": day.isoformat(), "status": status, "ready": status == "ready", "skip": skip,
            "shadow": params.scoring.shadow if shadow is None else bool(shadow)}
