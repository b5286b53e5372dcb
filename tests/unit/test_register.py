"""The registry on a real SQLite-backed MLflow store: registration, the gate's decisions acted on,
check-and-set moves under real concurrent processes, backfills, approval, rollback and batch scoring.

One module-wide world trains five real models once (scikit-learn logistic regressions through
``train_model``, logged to MLflow): a weak one (a single feature) as of D and strong ones (all features)
as of D-10, D+1, D+2 and D+3. Each test registers them under its own registered-model name, so tests
do not share registry state.
"""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from retrainer import cli
from retrainer.config import Params, load_params
from retrainer.datagen import generate_day
from retrainer.errors import ChampionMoved, NoModel, PartitionNotReady, PromotionRefused
from retrainer.evaluate import evaluate_challenger
from retrainer.lineage import run_key
from retrainer.names import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION
from retrainer.prepare import PreparedData, prepare_window
from retrainer.register import promote_version, register_model, rollback
from retrainer.scoring import score_day
from retrainer.storage import partition_file, write_json_atomic
from retrainer.tracking import (
    APPROVAL_TAG,
    DEMOTED_TAG,
    GATE_TAG,
    RUN_TYPE_TAG,
    champion_history,
    current_alias,
    mlflow_client,
    registry_status,
)
from retrainer.train import TrainedModel, train_model
from tests.conftest import AS_OF, write_project
from tests.unit import registry_workers

D = AS_OF
ROWS_PER_DAY = 300


def named(params: Params, name: str, **registry) -> Params:
    model = params.model.model_copy(update={"registered_name": name})
    update = {"model": model}
    if registry:
        update["registry"] = params.registry.model_copy(update=registry)
    return params.model_copy(update=update)


class World:
    def __init__(self, root: Path):
        self.params_file = write_project(
            root / "project",
            {
                "model": {"estimator": "logistic_regression"},
                "evaluation": {
                    "absolute_floor": 0.55,
                    "bootstrap": {"resamples": 300},
                    # Timing guards depend on machine load; the gate tests cover the latency rule.
                    "guards": {"max_latency_ratio": None},
                },
            },
        )
        raw = yaml.safe_load(self.params_file.read_text())
        raw["model"]["hyperparameters"] = {"max_iter": 500}  # replace, not merge, the boosting settings
        self.params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
        self.params = load_params(self.params_file)
        for offset in range(-30, 4):
            day = D + timedelta(days=offset)
            path = partition_file(self.params.data_dir, day)
            path.parent.mkdir(parents=True, exist_ok=True)
            generate_day(day, ROWS_PER_DAY, self.params.project.seed).to_parquet(path, index=False)
        ds = self.params.dataset.model_copy(update={"numeric_features": ["num_support_calls"], "categorical_features": []})
        self.weak_params = self.params.model_copy(update={"dataset": ds})
        self.models: dict[str, tuple[PreparedData, TrainedModel]] = {}
        for label, as_of, weak in (
            ("weak@D", D, True),
            ("strong@D-10", D - timedelta(days=10), False),
            ("strong@D+1", D + timedelta(days=1), False),
            ("strong@D+2", D + timedelta(days=2), False),
            ("strong@D+3", D + timedelta(days=3), False),
        ):
            self.models[label] = self._train(label, as_of, weak)
        self.decisions = 0

    def _train(self, label: str, as_of: date, weak: bool) -> tuple[PreparedData, TrainedModel]:
        out = self.params.data_dir / "runs" / label.replace("@", "_")
        prepared = prepare_window(self.params, as_of, out)  # all columns: every model is scored on them
        fit_params = self.weak_params if weak else self.params
        key = run_key(f"test-{label}", as_of.isoformat(), prepared.data_hash, fit_params)
        return prepared, train_model(fit_params, prepared, key, {"dag_id": "test", "note": label})

    def cycle(self, params: Params, label: str, facts: dict | None = None):
        """evaluate + register, as the training DAG's last two tasks do."""
        prepared, trained = self.models[label]
        self.decisions += 1
        out = Path(prepared.manifest_path).parent / f"decision-{params.model.registered_name}-{self.decisions}.json"
        decision = evaluate_challenger(params, prepared, trained, out)
        return decision, register_model(params, trained, decision, facts or {"run_type": "manual"})

    def decide(self, params: Params, label: str) -> Path:
        prepared, trained = self.models[label]
        self.decisions += 1
        out = Path(prepared.manifest_path).parent / f"decision-{params.model.registered_name}-{self.decisions}.json"
        evaluate_challenger(params, prepared, trained, out)
        return out


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World(tmp_path_factory.mktemp("registry"))


@pytest.fixture(scope="module")
def workers():
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(3, mp_context=context, initializer=registry_workers.warm_up) as pool:
        yield pool, manager


def _version(params: Params, alias: str) -> str | None:
    mv = current_alias(params, alias)
    return None if mv is None else str(mv.version)


def _versions(params: Params) -> list:
    return mlflow_client(params).search_model_versions(f"name = '{params.model.registered_name}'")


def _tags(params: Params, version: str) -> dict:
    return mlflow_client(params).get_model_version(params.model.registered_name, version).tags


def test_first_champion_then_a_better_model_is_promoted_with_its_numbers_recorded(world):
    params = named(world.params, "t-promote")
    first, reg1 = world.cycle(params, "weak@D")
    assert first.champion_version is None and first.passed and reg1.status == "promoted"
    assert (reg1.version, _version(params, CHAMPION), _version(params, CHALLENGER)) == ("1", "1", "1")

    decision, reg2 = world.cycle(params, "strong@D+1")
    assert decision.champion_version == "1" and decision.passed and decision.promote
    assert decision.improvement_ci[0] > 0 and decision.improvement > 0
    assert {c["check"] for c in decision.checks} >= {"absolute_floor", "beats_champion", "slices", "guards"}
    assert {s["feature"] for s in decision.slices} == {"contract_type", "plan_tier"}
    assert [g["guard"] for g in decision.guards] == ["calibration_error", "log_loss"]
    assert reg2.status == "promoted" and reg2.champion_before == "1" and reg2.champion_after == "2"
    assert _version(params, PREVIOUS_CHAMPION) == "1"

    tags = _tags(params, "2")
    assert tags[GATE_TAG] == "passed" and tags[APPROVAL_TAG] == "approved_auto"
    assert tags["retrainer.as_of"] == (D + timedelta(days=1)).isoformat()
    assert tags["retrainer.data_hash"] and tags["retrainer.code_version"] and tags[RUN_TYPE_TAG] == "manual"
    assert "[+" in tags["retrainer.gate_improvement"]

    history = champion_history(params)
    assert [(h["action"], h["version"], h["previous"]) for h in history] == [("auto", "1", None), ("auto", "2", "1")]

    # Everything the decision says is in its JSON, in the table and on the MLflow run, with the plots.
    prepared, trained = world.models["strong@D+1"]
    saved = json.loads(Path(sorted(Path(prepared.manifest_path).parent.glob("decision-t-promote-*.json"))[-1]).read_text())
    assert saved["improvement_ci"] == decision.improvement_ci and len(saved["slices"]) == len(decision.slices)
    table = decision.table()
    assert "roc_auc vs champion" in table and "slice contract_type=" in table and "guard calibration_error" in table
    client = mlflow_client(params)
    artifacts = {a.path for a in client.list_artifacts(trained.run_id, "evaluation/plots")}
    assert artifacts == {
        f"evaluation/plots/{n}.png" for n in ("confusion_matrix", "roc_pr", "calibration", "champion_vs_challenger")
    }
    metrics = client.get_run(trained.run_id).data.metrics
    assert metrics["gate_improvement_ci_low"] == pytest.approx(decision.improvement_ci[0])


def test_a_backfill_of_an_old_date_leaves_a_newer_champion_alone(world):
    params = named(world.params, "t-backfill")
    world.cycle(params, "weak@D")
    decision, registration = world.cycle(params, "strong@D-10", {"run_type": "DagRunType.BACKFILL_JOB"})
    # The gate itself passes (the old model is far better); only its older data keeps it out.
    assert decision.passed and decision.historical and not decision.promote
    assert registration.status == "historical" and registration.version == "2"
    assert _version(params, CHAMPION) == "1" and _version(params, CHALLENGER) == "1"
    tags = _tags(params, "2")
    assert tags[RUN_TYPE_TAG] == "backfill" and tags["retrainer.historical"] == "true"
    assert "historical" in decision.table()
    # A hand promotion of it is refused for the same reason, unless overridden.
    with pytest.raises(PromotionRefused, match="older than champion v1"):
        promote_version(params, "2", "try it", by="tester")
    # The control: the same kind of model on newer data replaces the champion.
    _, newer = world.cycle(params, "strong@D+1")
    assert newer.status == "promoted" and _version(params, CHAMPION) == "3"


def test_rollback_then_retrain_evaluates_against_the_restored_model(world):
    params = named(world.params, "t-rollback")
    world.cycle(params, "weak@D")
    world.cycle(params, "strong@D+1")
    assert _version(params, CHAMPION) == "2"

    move = rollback(params, "bad outcomes in production", by="oncall")
    assert (move.version, move.previous, move.moved) == ("1", "2", True)
    assert (_version(params, CHAMPION), _version(params, PREVIOUS_CHAMPION)) == ("1", "2")
    demoted = _tags(params, "2")
    assert "oncall" in demoted[DEMOTED_TAG] and demoted[APPROVAL_TAG] == "rolled_back"

    # A rerun of the demoted model's run is evaluated against v1 and not re-promoted automatically.
    rerun, again = world.cycle(params, "strong@D+1")
    assert rerun.champion_version == "1" and rerun.passed and not rerun.promote
    assert again.reused and again.version == "2" and again.status == "not_promotable"
    assert _version(params, CHAMPION) == "1"

    # The next training run's challenger is judged against the restored champion, and wins.
    nxt, registration = world.cycle(params, "strong@D+2")
    assert nxt.champion_version == "1" and registration.status == "promoted" and registration.version == "3"
    history = champion_history(params)
    assert [(h["action"], h["version"]) for h in history] == [("auto", "1"), ("auto", "2"), ("rollback", "1"), ("auto", "3")]
    assert history[2]["by"] == "oncall" and history[2]["reason"] == "bad outcomes in production"


def test_manual_mode_waits_for_approval_and_records_who_and_why(world):
    params = named(world.params, "t-manual", promotion="manual")
    first, reg1 = world.cycle(params, "weak@D")
    assert first.passed and reg1.status == "awaiting_approval" and _version(params, CHAMPION) is None
    assert _tags(params, "1")[APPROVAL_TAG] == "pending_manual_approval"
    promote_version(params, "1", "first model reviewed", by="alice")
    _, reg2 = world.cycle(params, "strong@D+1")
    assert reg2.status == "awaiting_approval" and _version(params, CHAMPION) == "1"

    with pytest.raises(ChampionMoved):
        promote_version(params, "2", "approve", by="bob", expected_champion="7")
    assert _version(params, CHAMPION) == "1"
    move = promote_version(params, "2", "reviewed the decision table", by="bob", expected_champion="1")
    assert move.moved and _version(params, CHAMPION) == "2"
    tags = _tags(params, "2")
    assert tags[APPROVAL_TAG] == "approved_manual" and tags["retrainer.champion_by"] == "bob"
    assert tags["retrainer.champion_reason"] == "reviewed the decision table"
    again = promote_version(params, "2", "retry of the same request", by="bob", expected_champion="1")
    assert not again.moved and len(champion_history(params)) == 2


def test_promotion_refusals_and_override(world):
    params = named(world.params, "t-refuse")
    world.cycle(params, "strong@D+1")  # champion v1
    decision, registration = world.cycle(params, "weak@D")  # worse (the gate fails) and older
    assert not decision.passed and registration.status == "historical" and _tags(params, "2")[GATE_TAG] == "failed"
    with pytest.raises(PromotionRefused, match="gate result is failed"):
        promote_version(params, "2", "let me", by="carol")
    with pytest.raises(PromotionRefused, match="reason is required"):
        promote_version(params, "1", "  ", by="carol")
    with pytest.raises(PromotionRefused, match="no version 9"):
        promote_version(params, "9", "typo", by="carol")
    move = promote_version(params, "2", "experiment", by="carol", override=True)
    assert move.moved and "[override: its gate result is failed" in champion_history(params)[-1]["reason"]
    with pytest.raises(PromotionRefused, match="the champion already"):
        rollback(params, "nothing", by="carol", to_version="2")


def test_a_retried_register_task_leaves_exactly_one_version(world, workers):
    from retrainer.evaluate import Decision

    params = named(world.params, "t-retry")
    world.cycle(params, "weak@D")

    # The same register task running three times at once (a retry racing a zombie): one version, one move.
    pool, manager = workers
    _, strong = world.models["strong@D+1"]
    path = world.decide(params, "strong@D+1")
    barrier = manager.Barrier(3)
    futures = [
        pool.submit(registry_workers.register_worker, str(world.params_file), "t-retry", strong.to_dict(), str(path), barrier)
        for _ in range(3)
    ]
    results = [f.result(timeout=300) for f in futures]
    assert {r["version"] for r in results} == {"2"}
    assert sorted(r["reused"] for r in results) == [False, True, True]
    assert sorted(r["status"] for r in results) == ["already_champion", "already_champion", "promoted"]
    assert [h["version"] for h in champion_history(params)] == ["1", "2"]

    # A retry after the task finished: the same version again, nothing new.
    _, trained = world.models["strong@D+2"]
    decision = Decision.load(world.decide(params, "strong@D+2"))
    first = register_model(params, trained, decision, {"run_type": "manual"})
    retry = register_model(params, trained, decision, {"run_type": "manual"})
    assert (first.version, first.reused, retry.version, retry.reused) == ("3", False, "3", True)
    assert sorted(str(v.version) for v in _versions(params)) == ["1", "2", "3"]
    versions = [h["version"] for h in champion_history(params)]
    assert len(versions) == len(set(versions))


def test_a_rerun_evaluate_keeps_its_decision_until_the_champion_changes(world):
    params = named(world.params, "t-rerun")
    world.cycle(params, "weak@D")
    prepared, trained = world.models["strong@D+1"]
    out = Path(prepared.manifest_path).parent / "decision-t-rerun.json"

    first = evaluate_challenger(params, prepared, trained, out)
    written = (out.read_bytes(), out.stat().st_mtime_ns)
    again = evaluate_challenger(params, prepared, trained, out)
    assert again == first and (out.read_bytes(), out.stat().st_mtime_ns) == written  # not even rewritten

    # It became the champion: a rerun keeps the decision that promoted it, and registering again changes nothing.
    promoted = register_model(params, trained, first, {"run_type": "manual"})
    assert promoted.status == "promoted" and _version(params, CHAMPION) == "2"
    assert evaluate_challenger(params, prepared, trained, out) == first
    again = register_model(params, trained, first, {"run_type": "manual"})
    assert (again.version, again.reused, again.status) == ("2", True, "already_champion")
    assert [h["version"] for h in champion_history(params)] == ["1", "2"]

    # Another champion took over: the earlier decision no longer applies, it is made again.
    newer_prepared, newer = world.models["strong@D+3"]
    newer_decision = evaluate_challenger(params, newer_prepared, newer, out.with_name("decision-t-rerun-newer.json"))
    register_model(params, newer, newer_decision, {"run_type": "manual"})
    promote_version(params, "3", "a reviewer prefers it", by="tester", override=True)
    assert _version(params, CHAMPION) == "3"
    after = evaluate_challenger(params, prepared, trained, out)
    assert after.champion_version == "3" and after != first and not after.promote


def test_concurrent_promotions_leave_the_champion_consistent(world, workers):
    params = named(world.params, "t-race")
    world.cycle(params, "weak@D")
    labels = ("strong@D+1", "strong@D+2", "strong@D+3")
    # Three passing decisions, all made against champion v1, registered by three processes at once.
    paths = {label: world.decide(params, label) for label in labels}
    pool, manager = workers
    barrier = manager.Barrier(3)
    futures = [
        pool.submit(
            registry_workers.register_worker, str(world.params_file), "t-race",
            world.models[label][1].to_dict(), str(paths[label]), barrier,
        )
        for label in labels
    ]
    results = [f.result(timeout=300) for f in futures]
    promoted = [r for r in results if r["promoted"]]
    assert len(promoted) == 1, results
    winner = promoted[0]["version"]
    assert sorted(r["status"] for r in results) == ["promoted", "stale", "stale"]
    assert sorted(r["version"] for r in results) == ["2", "3", "4"]
    assert _version(params, CHAMPION) == winner and _version(params, PREVIOUS_CHAMPION) == "1"
    assert [(h["version"], h["previous"]) for h in champion_history(params)] == [("1", None), (winner, "1")]

    # Two people approve two different versions at once, both against the champion they saw.
    losers = sorted(r["version"] for r in results if not r["promoted"])
    barrier = manager.Barrier(2)
    futures = [
        pool.submit(registry_workers.promote_worker, str(world.params_file), "t-race", v, winner, barrier)
        for v in losers
    ]
    moves = [f.result(timeout=300) for f in futures]
    moved = [m for m in moves if m["moved"]]
    assert len(moved) == 1, moves
    refused = next(m for m in moves if not m["moved"])
    assert f"not v{winner} as the request expected" in refused["error"]
    assert _version(params, CHAMPION) == moved[0]["version"] and _version(params, PREVIOUS_CHAMPION) == winner
    history = champion_history(params)
    assert len(history) == 3 and history[-1]["version"] == moved[0]["version"] and history[-1]["previous"] == winner


def test_cli_promote_rollback_and_registry(world, capsys):
    params = world.params  # the CLI reads the params file, so this test uses its registered name
    world.cycle(params, "weak@D")
    world.cycle(params, "strong@D+1")
    file = str(world.params_file)
    assert cli.main(["--params", file, "rollback", "--reason", "cli rollback", "--by", "dave"]) == 0
    assert _version(params, CHAMPION) == "1"
    assert cli.main(["--params", file, "promote", "--version", "2", "--reason", "cli promote"]) == 2
    assert "rollback demoted it" in capsys.readouterr().err
    assert cli.main(["--params", file, "promote", "--version", "2", "--reason", "fixed", "--override"]) == 0
    capsys.readouterr()
    assert cli.main(["--params", file, "registry"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["aliases"] == {"champion": "2", "challenger": "2", "champion-previous": "1"}
    assert [h["action"] for h in status["history"]] == ["auto", "auto", "rollback", "promote"]
    assert status["history"][2]["by"] == "dave"
    assert registry_status(params)["versions"][0]["aliases"] == ["challenger", "champion"]


def _mark_validated(params: Params, day: date) -> None:
    # What the validate step leaves behind for a passing partition (the e2e test runs the real one).
    report = params.reports_dir / "validation" / f"dt={day.isoformat()}" / "validation.json"
    write_json_atomic(report, {"success": True, "partition": str(partition_file(params.data_dir, day))})


def test_batch_scoring_writes_versioned_rows_idempotently_and_shadows_the_challenger(world):
    params = named(world.params, "t-score")
    day = D + timedelta(days=3)
    _mark_validated(params, day)
    with pytest.raises(NoModel):
        score_day(params, day)
    world.cycle(params, "strong@D+1")  # champion v1
    world.cycle(params, "weak@D")  # rejected, older: challenger stays v1
    world.cycle(params, "strong@D+2")  # v3: not better beyond noise, or promoted; challenger either way
    champion, challenger = _version(params, CHAMPION), _version(params, CHALLENGER)
    if champion == challenger:  # promoted: make the shadow case by rolling back
        rollback(params, "shadow test", by="tester")
        champion = _version(params, CHAMPION)
    assert champion != challenger == "3"

    first = score_day(params, day, shadow=True, scoring_run="test")
    again = score_day(params, day, shadow=True, scoring_run="test")
    assert first["champion"]["version"] == champion and first["shadow"]["version"] == "3"
    assert again["champion"]["sql_rows_replaced"] == ROWS_PER_DAY

    frame = pd.read_parquet(first["champion"]["path"])
    assert len(frame) == ROWS_PER_DAY and set(frame["model_version"]) == {int(champion)}
    assert set(frame["model_role"]) == {"champion"} and frame["score"].between(0, 1).all()
    engine = sa.create_engine(params.scoring_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select model_version, model_role, count(*) from predictions "
                "where model_name = :name and scored_day = :day group by 1, 2 order by 1"
            ),
            {"name": "t-score", "day": day.isoformat()},
        ).all()
    engine.dispose()
    assert sorted(rows) == sorted([(int(champion), "champion", ROWS_PER_DAY), (3, "shadow", ROWS_PER_DAY)])
    comparison = first["comparison"]
    assert 0 <= comparison["agreement"] <= 1 and comparison["rows"] == ROWS_PER_DAY
    assert "champion_roc_auc" in comparison and "shadow_roc_auc" in comparison
    manifest = json.loads((Path(first["champion"]["path"]).parent / "_scoring.json").read_text())
    assert manifest["champion"]["version"] == champion and manifest["shadow"]["version"] == "3"

    quarantined = params.data_dir / "quarantine" / f"dt={(D - timedelta(days=40)).isoformat()}"
    quarantined.mkdir(parents=True)
    with pytest.raises(PartitionNotReady, match="quarantined"):
        score_day(params, D - timedelta(days=40))


def test_a_promotion_request_checks_and_sets_against_the_champion_it_expects(make_project, monkeypatch):
    import retrainer.register as register

    params = load_params(make_project())
    seen = []
    monkeypatch.setattr(register, "plan_promotion", lambda params, version, override=False: seen.append(
        (version, override)) or {"version": str(version), "champion": "2", "problems": []})
    assert register.plan_promotion_request(params, 3)["champion"] == "2"
    assert register.plan_promotion_request(params, 3, expected_champion=1, override=1)["champion"] == "1"
    assert seen == [(3, False), (3, True)]
