"""Evaluation metrics against hand-computed values: avg@k, unbiased pass@k (n > k), maj@k, bootstrap CIs."""
from __future__ import annotations

import math

import pytest

from curate.evaluate import metrics as M

C, W = (True, "1"), (False, "2")


def test_avg_at_k_is_mean_of_per_problem_shares():
    # problem 1: 2 of 3 correct, problem 2: 0 of 3, problem 3: 3 of 3 -> (2/3 + 0 + 1) / 3
    pp = [[C, C, W], [W, W, W], [C, C, C]]
    assert M.avg_at_k(pp) == pytest.approx(100 * (2 / 3 + 0 + 1) / 3)


def test_pass_at_k_unbiased_estimator_with_more_samples_than_k():
    # n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert M.pass_at_k_one(5, 2, 2) == pytest.approx(0.7)
    # n=4, c=1, k=1: plain accuracy 1/4
    assert M.pass_at_k_one(4, 1, 1) == pytest.approx(0.25)
    # n - c < k: certain
    assert M.pass_at_k_one(3, 2, 2) == 1.0
    assert M.pass_at_k_one(10, 0, 5) == 0.0
    pp = [[C, C, W, W, W], [W, W, W, W, W]]
    assert M.pass_at_k(pp, 2) == pytest.approx(100 * (0.7 + 0.0) / 2)
    with pytest.raises(ValueError):
        M.pass_at_k_one(2, 1, 3)


def test_maj_at_k_votes_on_extracted_answers():
    # answers 7, 7, 9 -> majority 7, which is the correct one
    assert M.majority_correct([(True, "7"), (True, "7"), (False, "9")], 3)
    # a wrong answer wins the vote even though one sample is right
    assert not M.majority_correct([(False, "9"), (True, "7"), (False, "9")], 3)
    # tie: the earliest sample among the tied answers decides; samples without an answer do not vote
    assert not M.majority_correct([(False, "9"), (True, "7"), (False, None)], 3)
    assert M.majority_correct([(False, None), (True, "7"), (False, "9")], 3)
    # only the first k samples vote
    assert M.majority_correct([(True, "7"), (False, "9"), (False, "9")], 1)
    assert M.maj_at_k([[(True, "7"), (True, "7"), (False, "9")], [(False, None)]], 3) == 50.0


def test_metric_names_parse_and_reject_nonsense():
    assert M.parse_metric("avg@3") == ("avg", 3)
    assert M.parse_metric("pass@10") == ("pass", 10)
    assert M.parse_metric("asr") == ("asr", None)
    for bad in ("avg", "pass@0", "top@1", "maj@x"):
        with pytest.raises(ValueError):
            M.parse_metric(bad)


def test_bootstrap_ci_is_deterministic_and_brackets_the_estimate():
    pp = [[C] if i % 3 else [W] for i in range(60)]  # 40 of 60 correct
    lo, hi = M.bootstrap_ci(pp, M.avg_at_k, reps=500)
    assert (lo, hi) == M.bootstrap_ci(pp, M.avg_at_k, reps=500)
    est = M.avg_at_k(pp)
    assert lo < est < hi
    # roughly +-2 standard errors of a proportion: sqrt(p(1-p)/n) = 6.1 points
    assert 15 < hi - lo < 35
    assert M.bootstrap_ci([[C]], M.avg_at_k) == (100.0, 100.0)
    assert all(math.isnan(x) for x in M.bootstrap_ci([], M.avg_at_k))


def test_percentile_nearest_rank():
    assert M.percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9) == 9
    assert M.percentile([5], 0.9) == 5
    assert math.isnan(M.percentile([], 0.5))
