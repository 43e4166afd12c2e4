"""Dip, recovery, gain and ranking flips on the study's published curves and on edge cases."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from curate.evaluate.dynamics import Point, curve, dynamics, ranking_flip

FIXTURE = Path(__file__).parent / "fixtures" / "evals" / "paper_curves.csv"


def published() -> dict[tuple[str, str], dict[int, float]]:
    out: dict[tuple[str, str], dict[int, float]] = {}
    with open(FIXTURE, newline="") as f:
        for r in csv.DictReader(f):
            out.setdefault((r["run"], r["benchmark"]), {})[int(r["step"])] = float(r["value"])
    return out


def test_qwen3_4b_math500_dips_at_20_recovers_at_40_ends_plus_15_4():
    d = dynamics(published()[("qwen3-4b-math-cot", "math500")])
    assert d.base == 70.8 and d.dip
    assert (d.min_step, d.min_value) == (20, 62.9)
    assert d.dip_depth == pytest.approx(7.9)
    assert d.recovered and d.recovery_step == 40 and d.recovery == "step 40"
    assert d.final_gain == pytest.approx(15.4)
    assert (d.best_step, d.best) == (480, 87.1)
    assert d.dip_significant is None  # the published numbers carry no CIs
    assert any("significance unknown" in n for n in d.notes)


def test_qwen3_1_7b_math500_bottoms_at_40_and_first_reaches_base_at_480():
    d = dynamics(published()[("qwen3-1.7b-math-cot", "math500")])
    assert d.min_step == 40 and d.dip_depth == pytest.approx(16.0)
    assert d.recovery_step == 480
    assert d.final_gain == pytest.approx(-2.7)
    # it reaches base at 480 and falls below again at 640: the recovery says so
    assert d.relapsed and d.relapse_step == 640
    assert d.recovery == "step 480, relapsed at step 640, ends 2.7 below base"


def test_a_recovery_that_relapses_says_so():
    d = dynamics({0: 70.0, 10: 60.0, 20: 72.0, 40: 65.0, 80: 62.0})
    assert d.recovery_step == 20 and d.relapsed and d.relapse_step == 40
    assert d.recovery == "step 20, relapsed at step 40, ends 8.0 below base"
    asr = dynamics({0: 10.0, 10: 30.0, 20: 8.0, 40: 14.0}, higher_is_better=False)  # lower is better: a relapse rises
    assert asr.recovery == "step 20, relapsed at step 40, ends 4.0 above base"
    held = dynamics({0: 70.0, 10: 60.0, 20: 72.0, 40: 75.0})
    assert held.relapsed is False and held.recovery == "step 20"


def test_dip_test_is_corrected_for_picking_the_minimum_of_many_checkpoints():
    import random

    rng = random.Random(0)
    se, trials = 2.0, 4000

    def flat() -> list[Point]:
        pts = []
        for s in (0, 10, 20, 40, 80, 160, 320, 480, 640):
            v = rng.gauss(50.0, se)
            pts.append(Point(s, v, v - 1.96 * se, v + 1.96 * se))
        return pts

    curves = [flat() for _ in range(trials)]
    flagged = sum(bool(dynamics(c).dip_significant) for c in curves) / trials
    assert flagged <= 0.03  # nominal one-sided 2.5%
    # the uncorrected test (depth beyond the two half-widths at the minimum) flags far more of them
    naive = 0
    for c in curves:
        low = min(c[1:], key=lambda p: p.value)
        naive += (c[0].value - low.value) > ((c[0].half_width ** 2 + low.half_width ** 2) ** 0.5)
    assert naive / trials > 0.08
    # a real dip of 20 points at one of 8 checkpoints is still found, with its adjusted p-value
    real = flat()
    real[2] = Point(20, 30.0, 30.0 - 1.96 * se, 30.0 + 1.96 * se)
    d = dynamics(real)
    assert d.dip_significant and d.dip_p_adjusted < 0.001


def test_qwen3_1_7b_gpqa_never_recovers():
    d = dynamics(published()[("qwen3-1.7b-math-cot", "gpqa_diamond")])
    assert d.dip and d.min_step == 80 and d.min_value == 6.2
    assert d.recovered is False and d.recovery_step is None and d.recovery == "never"
    assert d.final_gain == pytest.approx(-4.9)
    assert d.best_step == 20  # it rose before it fell


def test_no_dip():
    d = dynamics({0: 50.0, 10: 52.0, 20: 55.0})
    assert d.dip is False and d.dip_depth == 0 and d.dip_significant is False
    assert d.recovered is None and d.recovery == "-"
    assert d.final_gain == pytest.approx(5.0) and d.best_step == 20


def test_monotone_fall_never_recovers_and_bottoms_at_the_end():
    d = dynamics({0: 60.0, 10: 50.0, 20: 40.0, 40: 30.0})
    assert d.min_step == 40 and d.dip_depth == pytest.approx(30.0)
    assert d.recovery == "never" and d.final_gain == pytest.approx(-30.0)
    assert d.best_step == 0


def test_single_point():
    base_only = dynamics({0: 42.0})
    assert base_only.points == 1 and base_only.base == 42.0 and base_only.final_gain is None and base_only.dip is None
    assert base_only.best_step == 0 and base_only.notes
    trained_only = dynamics([(80, 42.0)])
    assert trained_only.base is None and trained_only.dip is None and trained_only.final == 42.0
    assert "no base" in trained_only.notes[0]
    empty = dynamics({})
    assert empty.points == 0 and empty.notes == ("no points",)


def test_missing_steps_and_incomplete_points_are_skipped():
    rows = [{"step": 0, "value": 50.0}, {"step": 10, "value": None}, {"step": None, "value": 1.0},
            {"step": 40, "value": 45.0}, {"step": 160, "value": 51.0}]
    d = dynamics(rows)
    assert d.points == 3 and d.min_step == 40 and d.recovery_step == 160
    with pytest.raises(ValueError, match="repeated"):
        curve([(10, 1.0), (10, 2.0)])


def test_dip_significance_uses_both_intervals():
    # depth 4; half-widths 2 and 2 -> noise 2.83: significant. Half-widths 3 and 3 -> 4.24: not.
    tight = dynamics([Point(0, 50, 48, 52), Point(10, 46, 44, 48), Point(20, 51, 49, 53)])
    assert tight.dip_significant is True and tight.recovery_step == 20
    wide = dynamics([Point(0, 50, 47, 53), Point(10, 46, 43, 49)])
    assert wide.dip_significant is False


def test_lower_is_better_metrics_dip_upwards():
    asr = dynamics({0: 10.0, 10: 30.0, 20: 25.0, 40: 8.0}, higher_is_better=False)
    assert asr.dip and asr.min_step == 10 and asr.min_value == 30.0 and asr.dip_depth == pytest.approx(20.0)
    assert asr.recovery_step == 40 and asr.best_step == 40
    assert asr.final_gain == pytest.approx(2.0)  # 2 points less attack success: better


def test_ranking_flip_short_runs_mislead():
    a = {0: 50.0, 10: 55.0, 20: 56.0, 40: 60.0, 640: 62.0}
    b = {0: 50.0, 10: 45.0, 20: 50.0, 40: 61.0, 640: 70.0}
    f = ranking_flip(a, b, names=("a", "b"))
    assert f.flipped and f.leader_last == "b" and f.last_step == 640
    assert f.opposite_steps == (10, 20) and f.early_step == 10 and f.leader_early == "a"
    assert f.margin_early == pytest.approx(10.0) and f.margin_last == pytest.approx(8.0)
    assert not ranking_flip(a, b, early_step=40).flipped
    assert ranking_flip(a, b, early_step=20).flipped


def test_a_flip_inside_the_confidence_intervals_is_no_flip():
    def pts(values, hw):
        return [Point(s, v, v - hw, v + hw) for s, v in values.items()]

    a, b = {0: 50.0, 10: 52.0, 640: 48.0}, {0: 50.0, 10: 50.0, 640: 50.0}
    noisy = ranking_flip(pts(a, 3.5), pts(b, 3.0))  # margins of 2 against half-widths 3-3.5: no order at all
    assert not noisy.flipped and noisy.leader_last is None and noisy.tested
    sharp = ranking_flip(pts(a, 0.5), pts(b, 0.5))
    assert sharp.flipped and sharp.tested and sharp.leader_last == "b" and sharp.opposite_steps == (10,)
    untested = ranking_flip(a, b)  # published numbers: compared on values, and marked as untested
    assert untested.flipped and not untested.tested


def test_no_flip_on_the_published_curves_and_ties_never_count():
    p = published()
    f = ranking_flip(p[("qwen3-4b-math-cot", "math500")], p[("qwen3-1.7b-math-cot", "math500")], names=("4b", "1.7b"))
    assert not f.flipped and f.leader_last == "4b" and f.common_steps[-1] == 640
    tie = ranking_flip({0: 1.0, 10: 5.0, 20: 3.0}, {0: 1.0, 10: 5.0, 20: 4.0})
    assert not tie.flipped
    assert ranking_flip({0: 1.0}, {10: 2.0}).last_step is None
