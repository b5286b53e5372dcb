"""Approval in the run (retrainer.approval) on a real SQLite-backed MLflow store: the request's page is
written from a real decision, and each answer does what it says: approve moves the champion by
check-and-set (refused when the champion moved or a newer challenger superseded the version), reject and
timeout leave it alone, and every answer is recorded with who, why and when (tags, decision JSON, MLflow).

Three real models (logistic regressions, 300 rows a day) are trained once; each test registers them
under its own registered-model name in ``promotion: manual``, so there is no champion to beat and every
passing version waits for approval.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from retrainer.approval import (
    APPROVAL_ARTIFACT,
    APPROVE,
    REJECT,
    Answer,
    apply_answer,
    approval_body,
    approval_subject,
    describe_duration,
    needs_approval,
)
from retrainer.config import Params, load_params
from retrainer.datagen import generate_day
from retrainer.errors import ChampionMoved, PromotionRefused
from retrainer.evaluate import Decision, evaluate_challenger
from retrainer.lineage import run_key
from retrainer.names import CHALLENGER, CHAMPION
from retrainer.prepare import prepare_window
from retrainer.register import promote_version, register_model
from retrainer.storage import partition_file
from retrainer.tracking import (
    APPROVAL_AT_TAG,
    APPROVAL_BY_TAG,
    APPROVAL_REASON_TAG,
    APPROVAL_TAG,
    alias_version,
    champion_history,
    mlflow_client,
)
from retrainer.train import train_model
from tests.conftest import AS_OF, write_project

D = AS_OF
RUN = "training/manual__approval-test"
AT = "2026-04-01T09:30:00+00:00"


class World:
    def __init__(self, root: Path):
        params_file = write_project(
            root / "project",
            {
                "model": {"estimator": "logistic_regression"},
                "evaluation": {"absolute_floor": 0.55, "bootstrap": {"resamples": 200},
                               "guards": {"max_latency_ratio": None}},
                "registry": {"promotion": "manual"},
            },
        )
        raw = yaml.safe_load(params_file.read_text())
        raw["model"]["hyperparameters"] = {"max_iter": 500}
        params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
        self.params = load_params(params_file)
        for offset in range(-25, 2):
            day = D + timedelta(days=offset)
            path = partition_file(self.params.data_dir, day)
            path.parent.mkdir(parents=True, exist_ok=True)
            generate_day(day, 300, self.params.project.seed).to_parquet(path, index=False)
        self.models = {label: self._train(label, as_of) for label, as_of in
                       (("D-10", D - timedelta(days=10)), ("D", D), ("D+1", D + timedelta(days=1)))}
        self.count = 0

    def _train(self, label: str, as_of: date):
        prepared = prepare_window(self.params, as_of, self.params.data_dir / "runs" / label)
        key = run_key(f"approval-{label}", as_of.isoformat(), prepared.data_hash, self.params)
        return prepared, train_model(self.params, prepared, key, {"dag_id": "test", "note": label})

    def register(self, params: Params, label: str) -> tuple[dict, Path]:
        """evaluate + register as the training DAG does; returns the register step's dict and the decision."""
        prepared, trained = self.models[label]
        self.count += 1
        out = Path(prepared.manifest_path).parent / f"decision-{params.model.registered_name}-{self.count}.json"
        decision = evaluate_challenger(params, prepared, trained, out)
        return register_model(params, trained, decision, {"run_type": "manual"}).to_dict(), out


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World(tmp_path_factory.mktemp("approval"))


def named(world: World, name: str) -> Params:
    return world.params.model_copy(update={"model": world.params.model.model_copy(update={"registered_name": name})})


def _tags(params: Params, version: str) -> dict:
    return mlflow_client(params).get_model_version(params.model.registered_name, version).tags


def test_the_request_shows_the_decision_table_metrics_links_and_what_each_answer_does(world):
    params = named(world, "approval-page")
    registered, path = world.register(params, "D")
    assert needs_approval(registered) and registered["approval"] == "pending_manual_approval"
    decision = Decision.load(path)
    links = {"MLflow run": "http://mlflow:5000/#/experiments/1/runs/abc", "Drift report": None,
             "Data Docs": "/retrainer/reports/validation/x.html"}
    body = approval_body(decision, registered, links, timeout=timedelta(days=3), approvers=["alice", "bob"])
    subject = approval_subject(decision, registered)

    assert subject.startswith(f"Approve approval-page v{registered['version']} as champion? Trained as of {D}")
    assert "no champion yet" in subject and "roc_auc 0." in subject
    assert f"### Gate decision: {decision.verdict}" in body
    assert "| check | challenger | champion | change | 95% CI | rule | result |" in body
    assert "| roc_auc floor |" in body and ">= 0.55" in body
    assert all(f"- {reason}" in body for reason in decision.reasons)
    assert "### Metrics on the same holdout" in body and "| metric | challenger v1 | champion | change |" in body
    assert f"| roc_auc | {decision.challenger_metrics['roc_auc']:.4f} |" in body
    assert "- [MLflow run](http://mlflow:5000/#/experiments/1/runs/abc)" in body
    assert "- [Data Docs](/retrainer/reports/validation/x.html)" in body and "Drift report" not in body
    assert "No answer within 3 days (`registry.approval_timeout`) rejects it" in body
    assert "Who may answer: `alice`, `bob`." in body


def test_a_table_cell_cannot_break_the_markdown_table(world):
    params = named(world, "approval-escape")
    registered, path = world.register(params, "D")
    decision = Decision.load(path)
    decision.reasons = ["a | b\nc"]
    body = approval_body(decision, registered, {}, timeout=timedelta(seconds=90), approvers=[])
    assert "- a \\| b c" in body and "### Links" not in body
    assert "within 90 seconds" in body and "anyone who may change this DAG's runs" in body


def test_approve_moves_the_champion_records_who_and_why_and_a_retry_changes_nothing(world):
    params = named(world, "approval-approve")
    registered, path = world.register(params, "D")
    version = registered["version"]
    answer = Answer(APPROVE, "alice", "holdout looks right", AT)

    done = apply_answer(params, registered, path, answer, run=RUN)
    assert alias_version(params, CHAMPION) == version
    assert (done["status"], done["champion_before"], done["champion_after"]) == ("approved_manual", None, version)
    tags = _tags(params, version)
    assert tags[APPROVAL_TAG] == "approved_manual" and tags[APPROVAL_BY_TAG] == f"alice via {RUN}"
    assert (tags[APPROVAL_REASON_TAG], tags[APPROVAL_AT_TAG]) == ("holdout looks right", AT)
    last = champion_history(params)[-1]
    assert (last["action"], last["version"], last["by"], last["reason"], last["at"]) == (
        "promote", version, f"alice via {RUN}", "holdout looks right", AT)
    record = json.loads(path.read_text())["approval"]
    assert (record["option"], record["by"], record["status"]) == (APPROVE, "alice", "approved_manual")
    assert Decision.load(path).passed  # the decision itself still loads
    logged = mlflow_client(params).download_artifacts(record_run(path), APPROVAL_ARTIFACT)
    assert json.loads(Path(logged).read_text())["status"] == "approved_manual"

    again = apply_answer(params, registered, path, answer, run=RUN)
    assert again["status"] == "approved_manual" and len(champion_history(params)) == 1


def record_run(path: Path) -> str:
    return Decision.load(path).challenger_run_id


def test_reject_records_who_and_why_and_leaves_the_champion_alone(world):
    params = named(world, "approval-reject")
    registered, path = world.register(params, "D")
    version = registered["version"]
    done = apply_answer(params, registered, path, Answer(REJECT, "bob", "wait for the Monday data", AT), run=RUN)
    assert alias_version(params, CHAMPION) is None and champion_history(params) == []
    assert done["status"] == "rejected_manual" and "rejected by bob: wait for the Monday data" in done["note"]
    tags = _tags(params, version)
    assert (tags[APPROVAL_TAG], tags[APPROVAL_BY_TAG], tags[APPROVAL_REASON_TAG]) == (
        "rejected_manual", f"bob via {RUN}", "wait for the Monday data")
    assert json.loads(path.read_text())["approval"]["reason"] == "wait for the Monday data"


def test_no_answer_in_time_rejects_and_says_so(world):
    params = named(world, "approval-timeout")
    registered, path = world.register(params, "D")
    done = apply_answer(params, registered, path, Answer(REJECT, None, "", AT, timed_out=True), run=RUN)
    assert alias_version(params, CHAMPION) is None
    assert done["status"] == "rejected_timeout"
    assert "no answer within 3 days (registry.approval_timeout)" in done["note"]
    tags = _tags(params, registered["version"])
    assert tags[APPROVAL_TAG] == "rejected_timeout" and tags[APPROVAL_BY_TAG] == f"timeout via {RUN}"
    # An "Approve" that came from the timeout's defaults would still be no approval.
    assert not Answer(APPROVE, None, "", AT, timed_out=True).approved


def test_approve_is_refused_when_the_champion_moved_meanwhile(world):
    params = named(world, "approval-moved")
    registered, path = world.register(params, "D")  # made against no champion
    other, _ = world.register(params, "D-10")  # older: the challenger stays the first
    promote_version(params, other["version"], "promoted out of band", by="carol", override=True)

    with pytest.raises(ChampionMoved, match="champion is v2, not no champion as the request expected"):
        apply_answer(params, registered, path, Answer(APPROVE, "alice", "", AT), run=RUN)
    assert alias_version(params, CHAMPION) == other["version"]
    assert _tags(params, registered["version"])[APPROVAL_TAG] == "stale"
    assert "not promoted" in json.loads(path.read_text())["approval"]["note"]


def test_approve_is_refused_when_a_newer_challenger_superseded_the_version(world):
    params = named(world, "approval-superseded")
    registered, path = world.register(params, "D")
    newer, _ = world.register(params, "D+1")
    assert alias_version(params, CHALLENGER) == newer["version"]
    with pytest.raises(PromotionRefused, match=f"the challenger is now v{newer['version']}"):
        apply_answer(params, registered, path, Answer(APPROVE, "alice", "", AT), run=RUN)
    assert alias_version(params, CHAMPION) is None
    assert _tags(params, registered["version"])[APPROVAL_TAG] == "superseded"


def test_answers_and_durations_read_as_a_person_writes_them():
    assert Answer.from_dict({"option": APPROVE, "by": "alice", "reason": "  ok  ", "at": AT}).reason == "ok"
    with pytest.raises(PromotionRefused, match="'Maybe' is none of"):
        Answer.from_dict({"option": "Maybe"})
    assert not needs_approval({"status": "promoted"})
    assert [describe_duration(timedelta(seconds=s)) for s in (259200, 3600, 120, 90, 1)] == [
        "3 days", "1 hour", "2 minutes", "90 seconds", "1 second"]
