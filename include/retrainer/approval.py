"""Approval in the training run itself (``registry.promotion: manual``): the request a person answers,
and what their answer does.

The register step leaves a passing challenger ``awaiting_approval``; the run then asks a person (in
Airflow: an approval task under *Required actions*). :func:`approval_subject` and :func:`approval_body`
write that request from the run's decision record (the gate's table, both models' metrics, links).
:func:`apply_answer` acts on the answer:

* **Approve** moves ``champion`` to the challenger through the same check-and-set as the promote DAG
  (:func:`retrainer.register.promote_version` against the champion the decision was made against): it is
  refused when the champion changed meanwhile, or when a newer challenger superseded this one.
* **Reject** leaves the champion alone.
* **No answer** within ``registry.approval_timeout`` is a rejection that says so.

Every answer is recorded with who, why and when: as model-version tags and under ``approval`` in the
run's decision record (the decision JSON; ``evaluation/approval.json`` on the challenger's MLflow run).
Applying the same answer twice changes nothing more (a retried task is safe).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from retrainer.config import Params
from retrainer.errors import ChampionMoved, PromotionRefused
from retrainer.evaluate.decision import Decision
from retrainer.names import APPROVE, CHALLENGER, CHAMPION, REJECT
from retrainer.register import NO_CHAMPION, promote_version
from retrainer.storage import write_json_atomic
from retrainer.tracking import (
    APPROVAL_AT_TAG,
    APPROVAL_BY_TAG,
    APPROVAL_REASON_TAG,
    APPROVAL_TAG,
    alias_version,
    mlflow_client,
)

OPTIONS = (APPROVE, REJECT)  # no answer in time means REJECT
AWAITING = "awaiting_approval"  # the register step's status of a version that waits for a person
TIMEOUT_BY = "timeout"  # who "answered" when nobody did
MAX_REASON_CHARS = 500
APPROVAL_ARTIFACT = "evaluation/approval.json"


@dataclass(frozen=True)
class Answer:
    """A person's answer (or the timeout's): the option, who (None: nobody, timed out), why, when (ISO)."""

    option: str
    by: str | None
    reason: str
    at: str
    timed_out: bool = False

    @property
    def approved(self) -> bool:
        return self.option == APPROVE and not self.timed_out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> Answer:
        option = str(payload.get("option") or "")
        if option not in OPTIONS:
            raise PromotionRefused(f"approval answer {option!r} is none of {list(OPTIONS)}")
        return cls(
            option=option,
            by=payload.get("by") or None,
            reason=str(payload.get("reason") or "").strip()[:MAX_REASON_CHARS],
            at=str(payload.get("at") or ""),
            timed_out=bool(payload.get("timed_out")),
        )


def needs_approval(registered: Mapping[str, Any]) -> bool:
    """Whether the register step left this run's version waiting for a person."""
    return registered.get("status") == AWAITING


def describe_duration(value: timedelta) -> str:
    """``3 days``, ``12 hours``, ``90 seconds``: a timeout as a person reads it."""
    seconds = value.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"


# --------------------------------------------------------------------------------------------------
# The request
# --------------------------------------------------------------------------------------------------


def approval_subject(decision: Decision, registered: Mapping[str, Any]) -> str:
    """One line: which version, as of when, replacing which champion."""
    metric = decision.primary_metric
    value = decision.challenger_metrics.get(metric)
    champion = f"champion v{decision.champion_version}" if decision.champion_version else "no champion yet"
    figure = f" ({metric} {value:.4f})" if isinstance(value, int | float) else ""
    return (
        f"Approve {registered['name']} v{registered['version']} as champion? Trained as of {decision.as_of}"
        f"{figure}, replacing {champion}"
    )


def approval_body(
    decision: Decision,
    registered: Mapping[str, Any],
    links: Mapping[str, str | None],
    *,
    timeout: timedelta,
    approvers: list[str],
) -> str:
    """The request's page (Markdown): the gate decision table, both models' metrics, links to the MLflow
    run and the reports, and what each answer does. ``links``: label -> URL (None: left out)."""
    version = registered["version"]
    champion = f"v{decision.champion_version}" if decision.champion_version else "none"
    who = ", ".join(f"`{u}`" for u in approvers) if approvers else "anyone who may change this DAG's runs"
    facts = [
        ("model", f"{registered['name']} v{version}"),
        ("trained as of", decision.as_of),
        ("current champion", champion + (f" (as of {decision.champion_as_of})" if decision.champion_as_of else "")),
        ("holdout rows", "" if decision.holdout_rows is None else f"{decision.holdout_rows:,}"),
        ("MLflow run", f"`{decision.challenger_run_id}`"),
    ]
    parts = [
        f"**{registered['name']} v{version}** passed the promotion gate and waits for your answer before it "
        f"becomes the champion (`registry.promotion: manual`).",
        _table(("", ""), facts),
        f"### Gate decision: {decision.verdict}",
        _table(decision.rows()[0], decision.rows()[1:]),
        "\n".join(f"- {_cell(r)}" for r in decision.reasons),
        "### Metrics on the same holdout",
        _table(*_metric_rows(decision, version)),
    ]
    shown = [(label, url) for label, url in links.items() if url]
    if shown:
        parts += ["### Links", "\n".join(f"- [{label}]({url})" for label, url in shown)]
    parts += [
        "### Your answer",
        "\n".join(
            [
                f"- **{APPROVE}** makes v{version} the champion in place of {champion}, by the same check-and-set "
                "as the `promote` DAG: refused if the champion changed meanwhile.",
                f"- **{REJECT}** keeps {champion} as champion.",
                "- Your name and the reason you enter are recorded on the model version and in the run's decision.",
                f"- No answer within {describe_duration(timeout)} (`registry.approval_timeout`) rejects it.",
                f"- Who may answer: {who}.",
            ]
        ),
    ]
    return "\n\n".join(p for p in parts if p)


def _metric_rows(decision: Decision, version: str) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    champion = decision.champion_metrics or {}
    header = (
        "metric",
        f"challenger v{version}",
        f"champion v{decision.champion_version}" if decision.champion_version else "champion",
        "change",
    )
    rows = []
    for name in sorted(set(decision.challenger_metrics) | set(champion)):
        new, old = decision.challenger_metrics.get(name), champion.get(name)
        change = f"{new - old:+.4f}" if _number(new) and _number(old) else ""
        rows.append((name, _fmt(new), _fmt(old), change))
    return header, rows


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value  # not NaN


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if _number(value) else ("" if value is None else str(value))


def _cell(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# The answer
# --------------------------------------------------------------------------------------------------


def apply_answer(
    params: Params, registered: Mapping[str, Any], decision_path: str | Path, answer: Answer, *, run: str
) -> dict[str, Any]:
    """Act on ``answer`` for the version ``registered`` (the register step's result) and record it.

    ``run`` names the run that asked (``dag_id/run_id``), recorded with who answered. Raises
    ChampionMoved when the champion is no longer the one the decision was made against, and
    PromotionRefused when a newer challenger superseded this one (both recorded, nothing moved)."""
    decision = Decision.load(decision_path)
    version = str(registered["version"])
    name = params.model.registered_name
    if str(registered.get("name") or name) != name:
        raise PromotionRefused(f"the approval is about model {registered['name']!r}, params.yaml names {name!r}")
    who = f"{answer.by or TIMEOUT_BY} via {run}"
    if not answer.approved:
        if answer.timed_out:
            why = f"no answer within {describe_duration(params.registry.approval_timeout)} (registry.approval_timeout)"
            status, note = "rejected_timeout", f"v{version} rejected: {why}; champion unchanged"
        else:
            why = answer.reason or "(no reason given)"
            status, note = "rejected_manual", f"v{version} rejected by {answer.by}: {why}; champion unchanged"
        return _record(params, version, decision, decision_path, answer, status, why, who, note)

    reason = answer.reason or f"approved in {run}"
    challenger = alias_version(params, CHALLENGER)
    if challenger != version:
        note = (
            f"not promoting v{version}: the challenger is now v{challenger} (a newer run); answer that run's "
            f"approval, or promote v{version} with the promote DAG"
        )
        _record(params, version, decision, decision_path, answer, "superseded", reason, who, note)
        raise PromotionRefused(note)
    expected = decision.champion_version or NO_CHAMPION
    try:
        move = promote_version(params, version, reason, by=who, expected_champion=expected, at=answer.at)
    except ChampionMoved as exc:
        note = f"approved by {answer.by}, but not promoted: {exc}"
        _record(params, version, decision, decision_path, answer, "stale", reason, who, note)
        raise ChampionMoved(note) from None
    return _record(params, version, decision, decision_path, answer, "approved_manual", reason, who, move.note)


def _record(
    params: Params,
    version: str,
    decision: Decision,
    decision_path: str | Path,
    answer: Answer,
    status: str,
    why: str,
    who: str,
    note: str,
) -> dict[str, Any]:
    """Tag the version, add ``approval`` to the decision JSON and log it on the challenger's run."""
    client = mlflow_client(params)
    name = params.model.registered_name
    tags = {APPROVAL_TAG: status, APPROVAL_BY_TAG: who, APPROVAL_REASON_TAG: why[:MAX_REASON_CHARS] or "-",
            APPROVAL_AT_TAG: answer.at or "-"}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    record = {
        **answer.to_dict(),
        "status": status,
        "version": version,
        "recorded_by": who,
        "reason": why,
        "champion_before": decision.champion_version,
        "champion_after": alias_version(params, CHAMPION),
        "note": note,
    }
    path = Path(decision_path)
    payload = json.loads(path.read_text(encoding="utf-8"))
    write_json_atomic(path, {**payload, "approval": record})
    client.log_dict(decision.challenger_run_id, record, APPROVAL_ARTIFACT)
    return record
