"""Scores from per-sample verdicts: avg@k, the unbiased pass@k estimator, maj@k, and bootstrap CIs (pure).

Input is one list per problem of judged samples `(correct: bool, answer: str | None)`; every function returns
percent (0-100), except `reward` (below). Confidence intervals resample *problems* (the unit a benchmark draws), 95% percentile,
with a fixed seed so the same data always gives the same interval.

- avg@k: mean over problems of the share of its k samples that are correct (the study's avg@3, avg@10).
- pass@k: 1 - C(n-c, k) / C(n, k) per problem, with n samples of which c correct (Chen et al. 2021);
  needs n >= k. With n == k it is "any of the k correct".
- maj@k: the most frequent answer among the first k samples is correct. Answers vote in classes of
  equivalent answers when an `equivalent(a, b)` is given (the benchmark's verifier's own equivalence, e.g.
  math-verify: `\\frac{3}{4}`, `0.75` and `\\dfrac{3}{4}` are one answer), else of equal strings. A sample joins
  the first class whose first answer it is equivalent to (no chaining through a class's other members); a
  class is as correct as its first (earliest) sample. Ties between classes: the class whose first sample
  came earliest wins. Samples without an answer do not vote.
- asr (safety): share of samples where the attack succeeded; the caller passes `attack succeeded` (the safety
  verifier said `incorrect`) as the flag, so `no_answer` is not counted as an attack.
- reward: the mean over problems of the mean verdict score of its samples, in the scorer's own units (a reward
  model's reward), not percent; `mean_score` takes one list of scores per problem (AlpacaEval, the study's
  reward-model score).
Test: tests/test_evaluate_metrics.py.
"""
from __future__ import annotations

import math
import random
from typing import Callable, Sequence

Judged = tuple[bool, "str | None"]


def avg_at_k(per_problem: Sequence[Sequence[Judged]]) -> float:
    scores = [sum(c for c, _ in s) / len(s) for s in per_problem if s]
    return 100.0 * sum(scores) / len(scores) if scores else float("nan")


def pass_at_k_one(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with n samples, c correct (0-1)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_at_k(per_problem: Sequence[Sequence[Judged]], k: int) -> float:
    vals = [pass_at_k_one(len(s), sum(c for c, _ in s), k) for s in per_problem if s]
    return 100.0 * sum(vals) / len(vals) if vals else float("nan")


Equivalent = Callable[[str, str], bool]


def majority_correct(samples: Sequence[Judged], k: int, equivalent: Equivalent | None = None) -> bool:
    votes = [(str(a), c) for c, a in samples[:k] if a is not None and str(a).strip() != ""]
    if not votes:
        return False
    classes: list[list] = []  # [first answer, votes, first sample's correctness], in order of first appearance
    for a, c in votes:
        for cl in classes:
            if cl[0] == a or (equivalent is not None and equivalent(cl[0], a)):
                cl[1] += 1
                break
        else:
            classes.append([a, 1, c])
    top = max(cl[1] for cl in classes)
    return next(cl[2] for cl in classes if cl[1] == top)  # ties: the class that appeared first


def cached_equivalence(equivalent: Equivalent) -> Equivalent:
    """`equivalent` memoised on the (unordered) pair: bootstrap resamples call maj@k a thousand times."""
    memo: dict[tuple[str, str], bool] = {}

    def eq(a: str, b: str) -> bool:
        key = (a, b) if a <= b else (b, a)
        if key not in memo:
            memo[key] = bool(equivalent(a, b))
        return memo[key]

    return eq


def maj_at_k(per_problem: Sequence[Sequence[Judged]], k: int, equivalent: Equivalent | None = None) -> float:
    vals = [majority_correct(s, k, equivalent) for s in per_problem if s]
    return 100.0 * sum(vals) / len(vals) if vals else float("nan")


def mean_score(per_problem: Sequence[Sequence[float]]) -> float:
    """Mean over problems of each problem's mean score (the `reward` metric; the scores' own units)."""
    vals = [sum(s) / len(s) for s in per_problem if s]
    return sum(vals) / len(vals) if vals else float("nan")


UNSCALED = ("reward",)  # metrics in their scorer's units: no percent, differences are not percentage points


def parse_metric(name: str) -> tuple[str, int | None]:
    """'avg@3' -> ('avg', 3); 'asr' -> ('asr', None); 'reward' -> ('reward', None). ValueError for anything else."""
    kind, sep, k = name.partition("@")
    if kind in ("asr", "reward") and not sep:
        return kind, None
    if kind not in ("avg", "pass", "maj") or not sep:
        raise ValueError(f"unknown metric {name!r}: use avg@k, pass@k, maj@k, asr or reward")
    try:
        kk = int(k)
    except ValueError:
        raise ValueError(f"metric {name!r}: k must be an integer") from None
    if kk < 1:
        raise ValueError(f"metric {name!r}: k must be >= 1")
    return kind, kk


def metric_fn(name: str, equivalent: Equivalent | None = None) -> Callable[[Sequence[Sequence[Judged]]], float]:
    """The metric as a function of per-problem samples; `equivalent` groups answers for maj@k (memoised)."""
    kind, k = parse_metric(name)
    if kind == "avg":
        return avg_at_k
    if kind == "pass":
        return lambda pp: pass_at_k(pp, k)
    if kind == "maj":
        eq = cached_equivalence(equivalent) if equivalent is not None else None
        return lambda pp: maj_at_k(pp, k, eq)
    if kind == "reward":
        return mean_score  # the caller passes each sample's score instead of (correct, answer)
    return avg_at_k  # asr: the caller flags each sample with "attack succeeded" instead of "correct"


def bootstrap_ci(per_problem: Sequence[Sequence[Judged]], fn: Callable[[Sequence[Sequence[Judged]]], float],
                 reps: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap over problems; (nan, nan) without problems."""
    items = [s for s in per_problem if s]
    if not items:
        return float("nan"), float("nan")
    if len(items) == 1:
        v = fn(items)
        return v, v
    rng = random.Random(seed)
    n = len(items)
    stats = sorted(fn([items[rng.randrange(n)] for _ in range(n)]) for _ in range(reps))
    lo = stats[int(math.floor((1 - level) / 2 * (reps - 1)))]
    hi = stats[int(math.ceil((1 + level) / 2 * (reps - 1)))]
    return lo, hi


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 1]); nan for no values."""
    if not values:
        return float("nan")
    v = sorted(values)
    return float(v[min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))])
