"""Register: one model version per run key, the `challenger` alias, and every move of `champion`.

The registry is MLflow 3 with aliases only: ``champion`` (what batch scoring uses), ``challenger`` (the
latest candidate) and ``champion-previous`` (the champion before the last move). Every version carries
tags for its gate result, approval state and lineage; the registered model keeps the history of
champion moves (who, why, when, from which version) in the tag ``retrainer.champion_history``.

Safety:

* Registration is idempotent per run key: a retried or rerun task finds the version its run (or its
  run key) already has and never creates a second one.
* MLflow has no transactions for aliases, so every registration and every move of ``champion`` holds
  an inter-process file lock (``registry_lock``) and is a check-and-set: the move happens only if the
  champion is still the one the decision was made against, and the alias is read back afterwards.
  For a local store (SQLite file or folder) the lock lives beside the store, so every process that can
  write to the store shares it. For a remote tracking server the lock is only shared by processes that
  see the same folder: point ``registry.lock_dir`` at a folder all writers share (or run the writers on
  one host); the read-back still detects a move made by a writer outside the lock.
* A run trained as of an older date than the champion (a backfill) is registered and evaluated but
  never replaces a champion trained on newer data.
* In ``registry.promotion: manual`` a passing challenger waits (approval ``pending_manual_approval``)
  for ``promote_version`` (the promote DAG or ``retrainer promote``); ``rollback`` moves the champion
  back in one step. Both record who and why.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from retrainer.config import Params
from retrainer.errors import ChampionMoved, PromotionRefused, RegistryError
from retrainer.evaluate import Decision
from retrainer.names import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION
from retrainer.tracking import (
    APPROVAL_TAG,
    AS_OF_TAG,
    DEMOTED_TAG,
    GATE_TAG,
    HISTORICAL_TAG,
    HISTORY_TAG,
    RUN_KEY_TAG,
    RUN_TYPE_TAG,
    alias_version,
    champion_history,
    current_alias,
    mlflow_client,
    version_as_of,
    version_number,
)
from retrainer.train import TrainedModel

# Copied from the MLflow run onto its model version, so the registry alone shows where a model came from.
LINEAGE_TAGS = (
    "retrainer.data_hash",
    "retrainer.code_version",
    "retrainer.config_hash",
    "retrainer.git_commit",
    "retrainer.git_dirty",
    "airflow.dag_id",
    "airflow.run_id",
    "airflow.reason",
    "airflow.trigger_report",  # the drift report behind a drift-triggered retrain
)
NO_CHAMPION = "none"  # promote_version's expected_champion when there must be no champion yet
MAX_HISTORY_CHARS = 4500  # tag values are bounded on some servers; older entries drop off first
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    aliases: list[str]
    promoted: bool
    reused: bool
    note: str
    status: str = ""  # promoted | awaiting_approval | rejected | historical | already_champion | stale | not_promotable
    approval: str = ""
    run_type: str = ""
    champion_before: str | None = None
    champion_after: str | None = None
    lock: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ChampionMove:
    name: str
    action: str  # auto | promote | rollback
    version: str
    previous: str | None
    by: str
    reason: str
    at: str
    moved: bool
    note: str
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _now() -> str:
    # Audit time of a registry change: recorded, never used to decide anything.
    return datetime.now(UTC).isoformat(timespec="seconds")


def _short_run_type(run_type: str | None) -> str:
    """``DagRunType.BACKFILL_JOB`` / ``backfill`` -> ``backfill``; ``scheduled``, ``manual``..."""
    text = str(run_type or "").split(".")[-1].lower()
    return "backfill" if "backfill" in text else text


# --------------------------------------------------------------------------------------------------
# The lock
# --------------------------------------------------------------------------------------------------


def lock_location(params: Params) -> tuple[Path, str]:
    """Where the registry lock of this model lives, and who shares it (``store``, ``configured``, ``host``)."""
    filename = f"{params.model.registered_name}.lock"
    if params.registry.lock_dir:
        return params.path(params.registry.lock_dir) / filename, "configured"
    uri = params.tracking_uri
    if uri.startswith("sqlite:///"):
        folder, scope = Path(uri[len("sqlite:///") :]).parent, "store"
    elif uri.startswith("file:"):
        folder, scope = Path(urlparse(uri).path), "store"
    elif "://" not in uri:
        folder, scope = params.path(uri), "store"
    else:
        # A remote server: only processes of this host see this folder (see the module docstring).
        folder, scope = params.root / ".mlflow", "host"
    return folder / ".retrainer-locks" / filename, scope


@contextmanager
def registry_lock(params: Params) -> Iterator[str]:
    """Hold the model's registry lock (an OS file lock, released if the process dies); yields its scope."""
    from filelock import FileLock, Timeout

    path, scope = lock_location(params)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=params.registry.lock_timeout_s)
    try:
        lock.acquire()
    except Timeout:
        raise RegistryError(
            f"registry lock {path} still held by another process after {params.registry.lock_timeout_s:g}s "
            "(registry.lock_timeout_s); retry later"
        ) from None
    try:
        yield scope
    finally:
        lock.release()


# --------------------------------------------------------------------------------------------------
# Versions
# --------------------------------------------------------------------------------------------------


def version_for_run(params: Params, run_id: str, run_key: str | None = None):
    """The version registered from ``run_id`` (or, failing that, from another run with ``run_key``)."""
    client = mlflow_client(params)
    name = params.model.registered_name
    found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    if not found and run_key:
        found = client.search_model_versions(f"name = '{name}' and tags.`{RUN_KEY_TAG}` = '{run_key}'")
    return sorted(found, key=lambda v: int(v.version))[0] if found else None


def _wait_ready(params: Params, version: str, timeout_s: float = 120.0) -> None:
    client = mlflow_client(params)
    deadline = time.monotonic() + timeout_s
    while True:
        mv = client.get_model_version(params.model.registered_name, version)
        if mv.status == "READY":
            return
        if mv.status == "FAILED_REGISTRATION" or time.monotonic() > deadline:
            raise RegistryError(f"model version {params.model.registered_name} v{version} is {mv.status}")
        time.sleep(0.5)


def _get_version(params: Params, version: str | int):
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client(params).get_model_version(params.model.registered_name, str(version))
    except MlflowException:
        return None


# --------------------------------------------------------------------------------------------------
# History and the move itself (callers hold the lock)
# --------------------------------------------------------------------------------------------------


def _append_history(params: Params, entry: dict[str, Any]) -> list[dict[str, Any]]:
    history = champion_history(params)
    entry = {"seq": (history[-1]["seq"] + 1) if history else 1, **entry}
    history = [*history, entry][-params.registry.history_length :]
    while len(history) > 1 and len(json.dumps(history)) > MAX_HISTORY_CHARS:
        history = history[1:]
    mlflow_client(params).set_registered_model_tag(params.model.registered_name, HISTORY_TAG, json.dumps(history))
    return history


def _move_champion_locked(
    params: Params,
    version: str,
    previous: str | None,
    action: str,
    by: str,
    reason: str,
    at: str,
    decision_run: str | None = None,
) -> ChampionMove:
    """Set ``champion`` to ``version`` (and ``champion-previous`` to ``previous``), record it, read it back."""
    client = mlflow_client(params)
    name = params.model.registered_name
    reason = reason.strip()[:MAX_REASON_CHARS]
    if previous is not None:
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, previous)
    client.set_registered_model_alias(name, CHAMPION, version)
    history = _append_history(
        params,
        {
            "at": at,
            "action": action,
            "version": version,
            "previous": previous,
            "by": by,
            "reason": reason,
            "decision_run": decision_run,
        },
    )
    for key, value in {
        "retrainer.champion_since": at,
        "retrainer.champion_by": by,
        "retrainer.champion_action": action,
        "retrainer.champion_reason": reason or "-",
    }.items():
        client.set_model_version_tag(name, version, key, value)
    target = client.get_model_version(name, version)
    if (target.tags or {}).get(DEMOTED_TAG):
        client.delete_model_version_tag(name, version, DEMOTED_TAG)
    # Read back: a writer that does not share our lock (another host on a remote server) shows up here.
    now = alias_version(params, CHAMPION)
    if now != version:
        raise ChampionMoved(
            f"champion of {name} is v{now} right after this process set it to v{version}: another writer "
            "moved it outside the registry lock (share registry.lock_dir between all writers)"
        )
    if action == "rollback":
        note = f"champion rolled back to v{version} (from v{previous}) by {by}"
    else:
        note = f"v{version} promoted to champion (replacing {f'v{previous}' if previous else 'no champion'}) by {by}"
    return ChampionMove(name, action, version, previous, by, reason, at, True, note, history)


def _ensure_recorded(params: Params, version: str, action: str, by: str, at: str, decision_run: str | None) -> None:
    """A retry after a crash between the alias move and its record: add the missing history entry."""
    history = champion_history(params)
    if not history or str(history[-1]["version"]) != version:
        previous = alias_version(params, PREVIOUS_CHAMPION)
        _append_history(
            params,
            {
                "at": at,
                "action": action,
                "version": version,
                "previous": previous,
                "by": by,
                "reason": "recorded on retry: the move happened before an interrupted task",
                "decision_run": decision_run,
            },
        )


# --------------------------------------------------------------------------------------------------
# Registration (the training DAG's register task)
# --------------------------------------------------------------------------------------------------


def register_model(
    params: Params, trained: TrainedModel, decision: Decision, facts: dict[str, Any] | None = None
) -> Registration:
    """Register ``trained`` once per run key, tag it, point ``challenger`` at it, and act on ``decision``.

    ``facts`` are the run's facts (as_of, run_type, dag_id, run_id...). The champion moves only in
    ``promotion: auto`` and only by check-and-set against ``decision.champion_version``.
    """
    client = mlflow_client(params)
    name = params.model.registered_name
    facts = dict(facts or {})
    run_type = _short_run_type(facts.get("run_type"))
    by = f"{facts.get('dag_id') or 'retrainer'}/{facts.get('run_id') or 'cli'}"

    with registry_lock(params) as lock_scope:
        version, reused = _register_once(params, trained, decision.as_of)
        for key, value in _version_tags(params, trained, decision, run_type).items():
            client.set_model_version_tag(name, version, key, str(value))
        challenger_note = _point_challenger(params, version, decision.as_of)
        before = alias_version(params, CHAMPION)
        status, approval, note = _act_on_decision_locked(params, decision, version, before, by)
        if approval:
            client.set_model_version_tag(name, version, APPROVAL_TAG, approval)
        after = alias_version(params, CHAMPION)
        aliases = sorted(client.get_model_version(name, version).aliases)

    return Registration(
        name=name,
        version=version,
        aliases=aliases,
        promoted=status == "promoted",
        reused=reused,
        note=note + (f"; {challenger_note}" if challenger_note else ""),
        status=status,
        approval=approval,
        run_type=run_type,
        champion_before=before,
        champion_after=after,
        lock=lock_scope,
    )


def _register_once(params: Params, trained: TrainedModel, as_of: str) -> tuple[str, bool]:
    """The version of ``trained``'s run (or run key), registered now if there is none yet; and whether
    it already existed. Waits until the version is READY."""
    import mlflow

    existing = version_for_run(params, trained.run_id, trained.run_key)
    if existing is None:
        tags = {RUN_KEY_TAG: trained.run_key, AS_OF_TAG: as_of}
        version = str(mlflow.register_model(trained.model_uri, params.model.registered_name, tags=tags).version)
    else:
        version = str(existing.version)
    _wait_ready(params, version)
    return version, existing is not None


def _version_tags(params: Params, trained: TrainedModel, decision: Decision, run_type: str) -> dict[str, str]:
    """The tags a registered version carries: run key, as-of date, run type, the gate's result, lineage."""
    run_tags = mlflow_client(params).get_run(trained.run_id).data.tags
    metric = decision.primary_metric
    tags = {
        RUN_KEY_TAG: trained.run_key,
        AS_OF_TAG: decision.as_of,
        RUN_TYPE_TAG: run_type or "unknown",
        GATE_TAG: "passed" if decision.passed else "failed",
        f"retrainer.{metric}": f"{decision.challenger_metrics[metric]:.6f}",
        "retrainer.gate_champion": decision.champion_version or "none",
        "retrainer.gate_reasons": " | ".join(decision.reasons)[:4000],
        HISTORICAL_TAG: str(decision.historical).lower(),
        **{k: run_tags[k] for k in LINEAGE_TAGS if run_tags.get(k)},
    }
    if decision.improvement_ci:
        tags["retrainer.gate_improvement"] = (
            f"{decision.improvement:+.4f} [{decision.improvement_ci[0]:+.4f}, {decision.improvement_ci[1]:+.4f}]"
        )
    return tags


def _act_on_decision_locked(
    params: Params, decision: Decision, version: str, before: str | None, by: str
) -> tuple[str, str, str]:
    """(status, approval tag, note) once the decision is acted on: the champion moved (``promoted``), or
    why not. The caller holds the lock."""
    status, approval = _status(params, decision, version, before)
    if status == "promote":
        reason = _promotion_reason(decision)
        move = _move_champion_locked(params, version, before, "auto", by, reason, _now(), decision.challenger_run_id)
        return "promoted", "approved_auto", move.note
    if status == "already_champion":
        _ensure_recorded(params, version, "auto", by, _now(), decision.challenger_run_id)
    return status, approval, _STATUS_NOTES[status].format(v=version, champion=before, made=decision.champion_version)


_STATUS_NOTES = {
    "rejected": "v{v} did not pass the gate: champion v{champion} unchanged",
    "historical": "v{v} is historical (trained on older data than champion v{champion}): registered, not promoted",
    "already_champion": "v{v} is already the champion",
    "not_promotable": "v{v} passed the gate but may not replace the champion (see the decision's reasons)",
    "awaiting_approval": "v{v} passed the gate and awaits manual approval (promote DAG / `retrainer promote`); "
    "champion v{champion} unchanged",
    "stale": "champion moved to v{champion} after the decision (made against v{made}): not promoted; the next "
    "run evaluates against v{champion}, or promote v{v} by hand",
}


def _promotion_reason(decision: Decision) -> str:
    metric = decision.primary_metric
    value = decision.challenger_metrics[metric]
    if decision.champion_version is None or not decision.improvement_ci:
        return f"first champion: {metric} {value:.4f} clears the floor {decision.absolute_floor:g}"
    low, high = decision.improvement_ci
    return (
        f"gate passed against v{decision.champion_version}: {metric} {value:.4f}, improvement "
        f"{decision.improvement:+.4f} [{low:+.4f}, {high:+.4f}]"
    )


def _status(params: Params, decision: Decision, version: str, current: str | None) -> tuple[str, str]:
    """(status, approval tag) for a registered version; status ``promote`` means: move now."""
    if current == version:
        return "already_champion", ""
    if decision.historical:
        return "historical", "historical"
    if not decision.passed:
        return "rejected", "rejected"
    if not decision.promote:
        return "not_promotable", "not_promotable"
    if current != decision.champion_version:
        return "stale", "stale"
    if params.registry.promotion == "manual":
        return "awaiting_approval", "pending_manual_approval"
    return "promote", ""


def _point_challenger(params: Params, version: str, as_of: str) -> str:
    """``challenger`` -> the latest candidate: this version, unless the current one is trained on newer data."""
    client = mlflow_client(params)
    current = current_alias(params, CHALLENGER)
    if current is not None and str(current.version) != version:
        current_as_of = version_as_of(params, current)
        if current_as_of and current_as_of > as_of:
            return f"challenger stays v{current.version} (as of {current_as_of}, newer than {as_of})"
    client.set_registered_model_alias(params.model.registered_name, CHALLENGER, version)
    return ""


# --------------------------------------------------------------------------------------------------
# Manual promotion and rollback (the promote / rollback DAGs and the CLI)
# --------------------------------------------------------------------------------------------------


def _promotion_problems(params: Params, mv: Any, current: Any) -> list[str]:
    """Why ``mv`` should not become champion without an override (empty: nothing against it)."""
    tags = mv.tags or {}
    problems = []
    if tags.get(GATE_TAG) != "passed":
        problems.append(f"its gate result is {tags.get(GATE_TAG) or 'unknown'}")
    if tags.get(DEMOTED_TAG):
        problems.append(f"a rollback demoted it ({tags[DEMOTED_TAG]})")
    target_as_of, champion_as_of = version_as_of(params, mv), version_as_of(params, current)
    if current is not None and target_as_of and champion_as_of and target_as_of < champion_as_of:
        problems.append(f"it is trained as of {target_as_of}, older than champion v{current.version} ({champion_as_of})")
    return problems


def _ready_version(params: Params, version: str):
    mv = _get_version(params, version)
    if mv is None:
        raise PromotionRefused(f"model {params.model.registered_name} has no version {version}")
    if mv.status != "READY":
        raise PromotionRefused(f"{params.model.registered_name} v{version} is {mv.status}, not READY")
    return mv


def plan_promotion(params: Params, version: str | int, override: bool = False) -> dict[str, Any]:
    """Check a promotion before doing it: the version, the champion it will replace, what speaks against it.

    Raises PromotionRefused when something speaks against it and ``override`` is not set. The returned
    ``champion`` is what the promotion then checks-and-sets against."""
    version = str(version)
    mv = _ready_version(params, version)
    current = current_alias(params, CHAMPION)
    problems = [] if version_number(current) == version else _promotion_problems(params, mv, current)
    if problems and not override:
        raise PromotionRefused(
            f"not promoting {params.model.registered_name} v{version}: " + "; ".join(problems)
            + " (set override to promote anyway)"
        )
    return {"version": version, "champion": version_number(current), "problems": problems}


def promote_version(
    params: Params,
    version: str | int,
    reason: str,
    by: str,
    expected_champion: str | int | None = None,
    override: bool = False,
    at: str | None = None,
) -> ChampionMove:
    """Make ``version`` the champion by hand (approval). Refused if its gate failed, it is older than the
    champion or a rollback demoted it, unless ``override``; a check-and-set against ``expected_champion``
    when given (``NO_CHAMPION``: there must be none yet). Idempotent: promoting the current champion
    changes nothing (so a retry is safe)."""
    name = params.model.registered_name
    version = str(version)
    if not str(reason or "").strip():
        raise PromotionRefused("a reason is required to promote a model version")
    at = at or _now()
    with registry_lock(params):
        mv = _ready_version(params, version)
        current = current_alias(params, CHAMPION)
        before = version_number(current)
        if before == version:
            _ensure_recorded(params, version, "promote", by, at, None)
            return ChampionMove(
                name, "promote", version, before, by, reason, at, False, f"v{version} is already the champion",
                champion_history(params),
            )
        if expected_champion is not None and (before or NO_CHAMPION) != str(expected_champion):
            expected = "no champion" if str(expected_champion) == NO_CHAMPION else f"v{expected_champion}"
            raise ChampionMoved(f"champion is v{before}, not {expected} as the request expected: nothing moved")
        problems = _promotion_problems(params, mv, current)
        if problems and not override:
            raise PromotionRefused(
                f"not promoting {name} v{version}: " + "; ".join(problems) + " (set override to promote anyway)"
            )
        recorded = reason.strip() + (f" [override: {'; '.join(problems)}]" if problems else "")
        move = _move_champion_locked(params, version, before, "promote", by, recorded, at)
        mlflow_client(params).set_model_version_tag(name, version, APPROVAL_TAG, "approved_manual")
        return move


def plan_rollback(params: Params, to_version: str | int | None = None) -> dict[str, Any]:
    """The champion now and the version a rollback would restore (``champion-previous`` by default)."""
    name = params.model.registered_name
    current = current_alias(params, CHAMPION)
    if current is None:
        raise PromotionRefused(f"model {name} has no champion to roll back")
    if to_version is None:
        previous = current_alias(params, PREVIOUS_CHAMPION)
        if previous is None:
            raise PromotionRefused(f"{name} has no '{PREVIOUS_CHAMPION}' alias: give the version to roll back to")
        target = str(previous.version)
    else:
        target = str(to_version)
    if target == str(current.version):
        raise PromotionRefused(f"v{target} is the champion already: nothing to roll back to")
    _ready_version(params, target)
    return {"from": str(current.version), "to": target}


def rollback(
    params: Params,
    reason: str,
    by: str,
    to_version: str | int | None = None,
    expected_champion: str | int | None = None,
    at: str | None = None,
) -> ChampionMove:
    """Move ``champion`` back in one step: to ``to_version``, or to ``champion-previous`` when None.

    The replaced version is tagged as demoted, so no automatic run promotes it again (only the promote
    DAG, deliberately). The next training run evaluates against the restored champion. With
    ``expected_champion`` (the champion when the rollback was planned) it is a check-and-set, and a
    retry that finds the rollback done changes nothing.
    """
    name = params.model.registered_name
    if not str(reason or "").strip():
        raise PromotionRefused("a reason is required to roll back")
    at = at or _now()
    with registry_lock(params):
        current = current_alias(params, CHAMPION)
        before = version_number(current)
        if expected_champion is not None and to_version is not None and before == str(to_version):
            previous = alias_version(params, PREVIOUS_CHAMPION)
            if previous == str(expected_champion):
                return ChampionMove(
                    name, "rollback", before, previous, by, reason, at, False,
                    f"champion already rolled back to v{before} (from v{previous})", champion_history(params),
                )
        if expected_champion is not None and before != str(expected_champion):
            raise ChampionMoved(f"champion is v{before}, not v{expected_champion} as planned: nothing moved")
        plan = plan_rollback(params, to_version)
        move = _move_champion_locked(params, plan["to"], plan["from"], "rollback", by, reason, at)
        client = mlflow_client(params)
        demotion = f"{at} by {by}: {reason.strip()}"[:MAX_REASON_CHARS]
        client.set_model_version_tag(name, plan["from"], DEMOTED_TAG, demotion)
        client.set_model_version_tag(name, plan["from"], APPROVAL_TAG, "rolled_back")
        return move


def plan_promotion_request(
    params: Params, version: str | int, *, expected_champion: str | int | None = None, override: bool = False
) -> dict[str, Any]:
    """:func:`plan_promotion` for a request that may name the champion it expects (the promote DAG's
    form): the returned ``champion``, which the move then checks-and-sets against, is that expected
    version when given, else the champion seen now."""
    plan = plan_promotion(params, version, override=bool(override))
    if expected_champion is not None:
        plan["champion"] = str(expected_champion)
    return plan
