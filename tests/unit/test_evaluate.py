"""retrainer.evaluate: property-style tests of the promotion gate over many seeded scenarios.

Each scenario draws a labelled world (five features, three segments, a logistic label), fits
scikit-learn models on independent training samples and scores them on one holdout, then asks the
gate. The properties: a worse or an equally good challenger is not promoted (an equally good one only
at the bootstrap's nominal error rate when no margin is asked for, never with a margin), a clearly
better one is, a regression on one slice or on a guard blocks an otherwise better one, and the first
model is judged by the floor alone. Then each rule as a check of its own, the promotability rules
beyond the numbers, and the decision's JSON and table.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from retrainer.config import EvaluationConfig
from retrainer.evaluate import apply_gate

BETA = np.array([1.3, -1.0, 0.8, 0.7, 0.6])
SEGMENTS = np.array(["a", "b", "c"])
SEEDS = range(20)


def gate_config(min_improvement: float = 0.0, **overrides) -> EvaluationConfig:
    raw = {
        "primary_metric": "roc_auc",
        "absolute_floor": 0.6,
        "min_improvement": min_improvement,
        "bootstrap": {"resamples": 300, "confidence": 0.95},
        "slices": {"features": ["segment"], "tolerance": 0.03, "min_rows": 200},
        "guards": {"metrics": {"calibration_error": 0.02}, "max_latency_ratio": None},
    }
    raw.update(overrides)
    return EvaluationConfig(**raw)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def draw(
    rng: np.random.Generator, n: int, shares: tuple[float, ...] = (0.4, 0.35, 0.25)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = rng.normal(size=(n, len(BETA)))
    segment = rng.choice(SEGMENTS, size=n, p=list(shares))
    y = (rng.random(n) < _sigmoid(x @ BETA - 1.0)).astype(int)
    return x, y, segment


class World:
    """One seeded scenario: two training samples of the same size and one holdout."""

    def __init__(self, seed: int, n_train: int = 2000, n_holdout: int = 2000, shares=(0.4, 0.35, 0.25)):
        rng = np.random.default_rng(seed)
        self.seed = seed
        self.train_a = draw(rng, n_train, shares)
        self.train_b = draw(rng, n_train, shares)
        self.x, self.y, self.segment = draw(rng, n_holdout, shares)

    def scores(self, columns: list[int], sample: str = "a") -> np.ndarray:
        x, y, _ = self.train_a if sample == "a" else self.train_b
        model = LogisticRegression().fit(x[:, columns], y)
        return model.predict_proba(self.x[:, columns])[:, 1]

    def gate(self, cfg: EvaluationConfig, challenger: np.ndarray, champion: np.ndarray | None):
        return apply_gate(cfg, self.seed, self.y, challenger, champion, {"segment": self.segment})


CHAMPION_FEATURES = [0, 1, 2]


def _check(outcome, name: str) -> bool | None:
    return next((c["passed"] for c in outcome.checks if c["check"] == name), None)


@pytest.mark.parametrize("min_improvement", [0.0, 0.005])
def test_a_worse_challenger_is_never_promoted(min_improvement):
    for seed in SEEDS:
        world = World(seed)
        champion = world.scores(CHAMPION_FEATURES, "a")
        worse = world.scores([0, 1], "b")  # misses an informative feature
        outcome = world.gate(gate_config(min_improvement), worse, champion)
        assert not outcome.passed, (seed, outcome.reasons)
        assert outcome.comparison.improvement < 0 and _check(outcome, "beats_champion") is False


def test_an_identical_challenger_is_never_promoted():
    for seed in range(5):
        world = World(seed)
        champion = world.scores(CHAMPION_FEATURES, "a")
        outcome = world.gate(gate_config(0.0), champion.copy(), champion)
        assert outcome.comparison.ci_low == outcome.comparison.ci_high == 0.0
        assert not outcome.passed


def test_an_equally_good_challenger_is_not_promoted_on_noise():
    """Same features, another training sample of the same size: better or worse only by chance."""
    seeds = range(40)
    naive, gated_no_margin, gated_margin = 0, 0, 0
    for seed in seeds:
        world = World(seed)
        champion = world.scores(CHAMPION_FEATURES, "a")
        equal = world.scores(CHAMPION_FEATURES, "b")
        no_margin = world.gate(gate_config(0.0), equal, champion)
        naive += no_margin.comparison.improvement > 0  # what a bare "challenger > champion" rule does
        gated_no_margin += no_margin.passed
        gated_margin += world.gate(gate_config(0.005), equal, champion).passed
    # The noise is real: the bare comparison would have promoted a coin flip's share of them...
    assert naive >= 10
    # ...the interval lets through at most a few (its nominal one-sided error is 2.5%), a margin none.
    assert gated_no_margin <= 4
    assert gated_margin == 0


@pytest.mark.parametrize("min_improvement", [0.0, 0.005])
def test_a_clearly_better_challenger_is_promoted(min_improvement):
    for seed in SEEDS:
        world = World(seed)
        champion = world.scores(CHAMPION_FEATURES, "a")
        better = world.scores([0, 1, 2, 3, 4], "b")  # uses the two features the champion lacks
        outcome = world.gate(gate_config(min_improvement), better, champion)
        assert outcome.passed, (seed, outcome.reasons)
        assert outcome.comparison.ci_low > min_improvement
        judged = [s for s in outcome.slices if s["judged"]]
        assert {s["value"] for s in judged} == {"a", "b", "c"} and all(s["passed"] for s in judged)


def test_a_regression_on_one_slice_blocks_an_otherwise_better_challenger():
    for seed in range(15):
        world = World(seed, n_holdout=3000, shares=(0.5, 0.38, 0.12))
        rng = np.random.default_rng(1000 + seed)
        logit = world.x @ BETA - 1.0
        in_c = world.segment == "c"
        champion = _sigmoid(logit + rng.normal(scale=1.5, size=len(logit)))
        # Sharp everywhere, but on segment c it gets the first feature's effect backwards:
        # better on the whole holdout, clearly worse on one slice.
        sharp = logit + rng.normal(scale=0.2, size=len(logit))
        challenger = _sigmoid(np.where(in_c, sharp - 1.5 * BETA[0] * world.x[:, 0], sharp))
        outcome = world.gate(gate_config(0.0), challenger, champion)
        assert _check(outcome, "beats_champion") is True, (seed, outcome.reasons)
        by_value = {s["value"]: s for s in outcome.slices}
        assert by_value["c"]["judged"] and by_value["c"]["passed"] is False
        assert by_value["c"]["change"] < -0.03
        assert by_value["a"]["passed"] and by_value["b"]["passed"]
        assert _check(outcome, "slices") is False and not outcome.passed
        # The same challenger without the damage on c passes: the slice rule is what blocked it.
        assert world.gate(gate_config(0.0), _sigmoid(sharp), champion).passed


def test_small_slices_are_reported_but_not_judged():
    world = World(3, n_holdout=600)
    champion = world.scores(CHAMPION_FEATURES, "a")
    better = world.scores([0, 1, 2, 3, 4], "b")
    outcome = world.gate(gate_config(0.0, slices={"features": ["segment"], "min_rows": 250}), better, champion)
    small = [s for s in outcome.slices if s["rows"] < 250]
    assert small and all(not s["judged"] and s["passed"] is None for s in small)


def test_a_calibration_regression_blocks_a_better_ranker():
    for seed in range(10):
        world = World(seed)
        champion = world.scores(CHAMPION_FEATURES, "a")
        better = world.scores([0, 1, 2, 3, 4], "b")
        overconfident = _sigmoid(3.0 * np.log(better / (1 - better)))  # same ranking, same AUC
        outcome = world.gate(gate_config(0.0), overconfident, champion)
        assert _check(outcome, "beats_champion") is True
        guard = next(g for g in outcome.guards if g["guard"] == "calibration_error")
        assert guard["passed"] is False and guard["challenger"] > guard["champion"] + 0.02
        assert not outcome.passed
        assert world.gate(gate_config(0.0), better, champion).passed


def test_the_latency_guard_compares_predict_times():
    world = World(1)
    champion = world.scores(CHAMPION_FEATURES, "a")
    better = world.scores([0, 1, 2, 3, 4], "b")
    cfg = gate_config(0.0, guards={"metrics": {}, "max_latency_ratio": 2.0, "latency_slack_ms": 1.0})

    def judged(new_ms: float, old_ms: float):
        outcome = apply_gate(cfg, 1, world.y, better, champion, None, {"challenger": new_ms, "champion": old_ms})
        return outcome.passed, next(g for g in outcome.guards if g["guard"] == "predict_latency")

    assert judged(20.0, 10.0)[0] is True  # 2x + 1 ms allowed: 21
    passed, guard = judged(22.0, 10.0)
    assert passed is False and guard["ratio"] == pytest.approx(2.2)


def test_the_first_model_is_judged_by_the_floor_alone():
    world = World(2)
    good = world.scores(CHAMPION_FEATURES, "a")
    outcome = world.gate(gate_config(), good, None)
    assert outcome.passed and [c["check"] for c in outcome.checks] == ["absolute_floor"]
    assert all(s["champion"] is None and not s["judged"] for s in outcome.slices)
    useless = np.random.default_rng(0).random(len(world.y))
    assert not world.gate(gate_config(), useless, None).passed


def test_the_gate_is_deterministic_for_a_seed():
    world = World(4)
    champion = world.scores(CHAMPION_FEATURES, "a")
    equal = world.scores(CHAMPION_FEATURES, "b")
    first = world.gate(gate_config(), equal, champion)
    second = world.gate(gate_config(), equal, champion)
    assert first.comparison == second.comparison and first.slices == second.slices


def test_predict_cost_is_measured_per_model_in_cpu_ms_per_thousand_rows():
    from retrainer.evaluate import predict_latency_ms

    world = World(5)
    x, y, _ = world.train_a
    models = {"challenger": LogisticRegression().fit(x, y), "champion": LogisticRegression(C=0.1).fit(x, y)}
    cost = predict_latency_ms(models, world.x, repeats=2)
    assert set(cost) == {"challenger", "champion"}
    assert all(0 < value < float("inf") for value in cost.values())


def test_each_rule_is_a_check_of_its_own_in_the_order_they_are_judged():
    world = World(6)
    champion = world.scores(CHAMPION_FEATURES, "a")
    better = world.scores([0, 1, 2, 3, 4], "b")
    cfg = gate_config(0.0, guards={"metrics": {"calibration_error": 0.02}, "max_latency_ratio": 2.0})
    outcome = apply_gate(cfg, 6, world.y, better, champion, {"segment": world.segment}, {"challenger": 1.0, "champion": 1.0})
    assert [c["check"] for c in outcome.checks] == ["absolute_floor", "beats_champion", "slices", "guards"]
    assert outcome.reasons == [c["detail"] for c in outcome.checks]
    assert [g["guard"] for g in outcome.guards] == ["calibration_error", "predict_latency"]
    # Without slices or guards their rules have nothing to judge and are left out.
    bare = apply_gate(gate_config(0.0, guards={"metrics": {}, "max_latency_ratio": None}), 6, world.y, better, champion)
    assert [c["check"] for c in bare.checks] == ["absolute_floor", "beats_champion"]


def test_promotability_rules_beyond_the_numbers():
    from types import SimpleNamespace

    from retrainer.evaluate.challenger import newer_than_champion, not_demoted, not_the_champion

    champion = SimpleNamespace(version="3", run_id="r3")
    older = newer_than_champion("2026-03-01", champion, "2026-03-05")
    assert older["check"] == "newer_than_champion" and older["passed"] is False and "historical" in older["detail"]
    assert newer_than_champion("2026-03-05", champion, "2026-03-05")["passed"] is True
    assert newer_than_champion("2026-03-01", champion, None)["passed"] is True  # unknown: not held against it
    assert not_the_champion(champion) == {
        "check": "not_the_champion", "passed": False, "detail": "the challenger is already the champion (v3)"
    }
    assert not_demoted("2026-03-06 by oncall: bad")["passed"] is False


def test_a_decision_round_trips_through_json_and_renders_its_table(tmp_path):
    import json

    from retrainer.evaluate import Decision

    world = World(7)
    champion = world.scores(CHAMPION_FEATURES, "a")
    better = world.scores([0, 1, 2, 3, 4], "b")
    outcome = world.gate(gate_config(0.0), better, champion)
    decision = Decision(
        as_of="2026-03-31", primary_metric="roc_auc", higher_is_better=True, absolute_floor=0.6,
        min_improvement=0.0, challenger_run_id="new", challenger_metrics=outcome.challenger_metrics,
        champion_version="2", champion_run_id="old", champion_metrics=outcome.champion_metrics,
        improvement=outcome.comparison.improvement, passed=outcome.passed, promote=outcome.passed,
        reasons=outcome.reasons, improvement_ci=[outcome.comparison.ci_low, outcome.comparison.ci_high],
        confidence=0.95, checks=outcome.checks, slices=outcome.slices, guards=outcome.guards,
    )
    path = tmp_path / "decision.json"
    path.write_text(json.dumps({**decision.to_dict(), "from_a_newer_layout": 1}))
    assert Decision.load(path) == decision
    header, *rows = decision.rows()
    assert header == ("check", "challenger", "champion v2", "change", "95% CI", "rule", "result")
    assert [r[0] for r in rows[:2]] == ["roc_auc floor", "roc_auc vs champion"]
    assert {r[0].split(" (n=")[0] for r in rows[2:5]} == {"slice segment=a", "slice segment=b", "slice segment=c"}
    assert rows[-1][0] == "guard calibration_error" and all(r[-1] == "pass" for r in rows)
    table = decision.table()
    assert table.splitlines()[1].startswith("-") and "decision: PASSED: may replace the champion" in table
