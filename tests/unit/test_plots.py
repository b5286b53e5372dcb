"""retrainer.plots: the evaluation's figures drawn from a real gate decision, read back from the figures
(titles, curves, counts, the rows and colours of the comparison) and written as PNG files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.colors import to_hex
from sklearn.metrics import confusion_matrix

from retrainer.config import EvaluationConfig
from retrainer.evaluate import Decision, apply_gate
from retrainer.plots import FAIL_COLOR, PASS_COLOR, comparison_figure, evaluation_figures

AS_OF = "2026-03-31"
ROWS = 3000


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _world(seed: int = 0):
    """Labels, a weak champion, and a sharp challenger that gets segment ``c`` wrong."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(ROWS, 2))
    segment = rng.choice(np.array(["a", "b", "c"]), size=ROWS, p=[0.5, 0.3, 0.2])
    logit = 1.5 * x[:, 0] - x[:, 1] - 0.5
    y = (rng.random(ROWS) < _sigmoid(logit)).astype(int)
    champion = _sigmoid(logit + rng.normal(scale=1.5, size=ROWS))
    sharp = logit + rng.normal(scale=0.2, size=ROWS)
    challenger = _sigmoid(np.where(segment == "c", sharp - 3.0 * x[:, 0], sharp))
    return y, champion, challenger, segment


def _decision(y, challenger, champion, segment) -> Decision:
    cfg = EvaluationConfig(
        primary_metric="roc_auc",
        absolute_floor=0.6,
        min_improvement=0.0,
        bootstrap={"resamples": 200, "confidence": 0.9},
        slices={"features": ["segment"], "tolerance": 0.03, "min_rows": 200},
        guards={"metrics": {"calibration_error": 0.02, "log_loss": 0.05}, "max_latency_ratio": None},
    )
    outcome = apply_gate(cfg, 1, y, challenger, champion, {"segment": segment})
    comparison = outcome.comparison
    return Decision(
        as_of=AS_OF,
        primary_metric="roc_auc",
        higher_is_better=True,
        absolute_floor=cfg.absolute_floor,
        min_improvement=cfg.min_improvement,
        challenger_run_id="challenger-run",
        challenger_metrics=outcome.challenger_metrics,
        champion_version=None if champion is None else "4",
        champion_run_id=None if champion is None else "champion-run",
        champion_metrics=outcome.champion_metrics,
        improvement=None if comparison is None else comparison.improvement,
        passed=outcome.passed,
        promote=outcome.passed,
        reasons=outcome.reasons,
        improvement_ci=None if comparison is None else [comparison.ci_low, comparison.ci_high],
        confidence=cfg.bootstrap.confidence,
        checks=outcome.checks,
        slices=outcome.slices,
        guards=outcome.guards,
    )


@pytest.fixture(scope="module")
def against_a_champion():
    y, champion, challenger, segment = _world()
    decision = _decision(y, challenger, champion, segment)
    return y, challenger, champion, decision, evaluation_figures(y, challenger, champion, decision, 0.5)


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_every_figure_is_drawn_and_written_as_a_png(against_a_champion, tmp_path):
    *_, figures = against_a_champion
    assert set(figures) == {"confusion_matrix", "roc_pr", "calibration", "champion_vs_challenger"}
    for name, figure in figures.items():
        path = tmp_path / f"{name}.png"
        figure.savefig(path, dpi=50)
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        expected = figure.get_size_inches() * 50
        assert (width, height) == pytest.approx(tuple(expected), abs=2), name


def test_the_confusion_matrices_count_each_model_at_the_threshold(against_a_champion):
    y, challenger, champion, _, figures = against_a_champion
    axes = figures["confusion_matrix"].axes
    assert [ax.get_title() for ax in axes] == ["challenger (threshold 0.5)", "champion v4 (threshold 0.5)"]
    for ax, scores in zip(axes, (challenger, champion), strict=True):
        shown = sorted(int(t.get_text()) for t in ax.texts)
        assert shown == sorted(confusion_matrix(y, (scores >= 0.5).astype(int)).ravel().tolist())
        assert sum(shown) == ROWS


def test_roc_pr_and_calibration_show_both_models(against_a_champion):
    *_, figures = against_a_champion
    roc, pr = figures["roc_pr"].axes
    assert roc.get_title() == f"ROC on the holdout ({ROWS} rows, as of {AS_OF})" and pr.get_title() == "Precision-recall"
    for ax in (roc, pr):
        labels = _legend(ax)
        assert labels[0].startswith("challenger") and labels[1].startswith("champion v4")
    (calibration,) = figures["calibration"].axes
    assert calibration.get_title() == "Calibration (10 equal-width bins)"
    assert {"challenger", "champion v4"} <= set(_legend(calibration))


def test_the_comparison_shows_each_rule_and_its_verdict(against_a_champion):
    *_, decision, figures = against_a_champion
    left, right = figures["champion_vs_challenger"].axes
    judged = [s for s in decision.slices if s["judged"]]
    labels = [t.get_text() for t in left.get_yticklabels()]
    # Drawn bottom-up: the whole holdout on top, then the slices in the decision's order.
    assert labels[::-1] == ["whole holdout", *[f"segment={s['value']}" for s in judged]]
    assert "champion v4" in left.get_title() and "90% interval" in left.get_xlabel()
    rules = [line for line in left.lines if line.get_linestyle() == "--"]  # one dash per row, its rule
    by_label = dict(zip(labels, rules, strict=True))
    assert by_label["whole holdout"].get_xdata()[0] == decision.min_improvement
    beats = next(c["passed"] for c in decision.checks if c["check"] == "beats_champion")
    passed = {"whole holdout": beats, **{f"segment={s['value']}": s["passed"] for s in judged}}
    assert passed["segment=c"] is False and passed["segment=a"] is True  # the scenario: c regresses
    for label, ok in passed.items():
        assert to_hex(by_label[label].get_color()) == (PASS_COLOR if ok else FAIL_COLOR)
    assert [t.get_text() for t in right.get_yticklabels()] == [g["guard"] for g in decision.guards]
    assert right.get_xscale() == "log" and _legend(right) == ["champion", "challenger"]


def test_without_a_champion_the_challenger_is_shown_against_the_floor():
    y, _, challenger, segment = _world(1)
    decision = _decision(y, challenger, None, segment)
    figures = evaluation_figures(y, challenger, None, decision)
    assert len(figures["confusion_matrix"].axes) == 1
    assert _legend(figures["roc_pr"].axes[0])[0].startswith("challenger")
    left, right = comparison_figure(decision).axes
    assert [t.get_text() for t in left.get_yticklabels()] == ["segment=a", "segment=b", "segment=c", "whole holdout"]
    widths = [patch.get_width() for patch in left.patches]
    assert widths[-1] == pytest.approx(decision.challenger_metrics["roc_auc"])
    assert widths[:3] == pytest.approx([s["challenger"] for s in decision.slices])
    floor = [line for line in left.lines if line.get_linestyle() == "--"]
    assert len(floor) == 1 and floor[0].get_xdata()[0] == decision.absolute_floor
    assert left.get_title() == "challenger (no champion to compare with)" and not right.axison
    buffer = io.BytesIO()
    figures["champion_vs_challenger"].savefig(buffer, format="png", dpi=40)
    assert buffer.getvalue()[:4] == b"\x89PNG"
