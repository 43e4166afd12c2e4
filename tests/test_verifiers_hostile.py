"""Hostile model outputs outside the sandbox: extraction blow-ups, equations that smuggle a gold value, and
answers that split a majority vote. Each case names what it attacks; time bounds come from the verifier's own
configured limit (its `timeout_s`), never from how fast this machine happens to be.
Sandbox attacks (test-file access, exception smuggling, scratch leaks) live in tests/test_sandbox_hostile.py.
Run: `python -m pytest -q tests/test_verifiers_hostile.py`."""
from __future__ import annotations

import time

import pytest

from curate.evaluate import metrics as M
from verifiers.base import ProbeProblem
from verifiers.extract import boxed_contents, last_code_block, last_tagged
from verifiers.registry import get_verifier

COUNTDOWN = ProbeProblem("", {"numbers": [1, 2], "target": 3}, source="countdown", domain="game")
MATH_3 = ProbeProblem("", "3", source="math500", domain="math")
RG = ProbeProblem("q", {"task": "leg_counting", "question": "q", "answer": "8", "metadata": {}},
                  source="reasoning_gym/leg_counting", domain="logic")

# ---------------------------------------------------------------- extraction blow-ups
# (verifier, options, problem, response, allowed statuses). Every one must finish inside the verifier's own
# soft time limit (which now covers extraction), and the linear ones must not even need it.
BLOWUPS = [
    ("countdown opening tags", "countdown", {}, COUNTDOWN, "</think>" + "<answer>" * 30000, {"no_answer"}),
    ("countdown opening tags, one close", "countdown", {}, COUNTDOWN, "</think>" + "<answer>" * 30000 + "</answer>",
     {"incorrect"}),
    ("countdown answer then opening tags", "countdown", {}, COUNTDOWN,
     "</think><answer>1+2</answer>" + "<ANSWER>" * 30000, {"correct"}),
    ("countdown bare boxes", "countdown", {}, COUNTDOWN, "</think>" + "\\boxed 1 " * 200000, {"incorrect"}),
    ("countdown unbalanced boxes", "countdown", {}, COUNTDOWN, "</think>" + "\\boxed{" * 100000, {"no_answer"}),
    ("countdown many think closes", "countdown", {}, COUNTDOWN, "</think>" * 200000 + "\\boxed{1+2}", {"correct"}),
    ("countdown nested braces", "countdown", {}, COUNTDOWN, "</think>\\boxed{" + "{" * 50000 + "}" * 50000 + "}",
     {"incorrect"}),
    ("reasoning-gym opening tags", "reasoning_gym", {}, RG, "</think>" + "<answer>" * 30000, {"no_answer", "incorrect"}),
    ("multiple choice answer lines", "multiple_choice", {}, ProbeProblem("", "B", source="gpqa", domain="science"),
     "</think>" + "Answer: " * 100000, {"no_answer", "incorrect"}),
    ("math bare boxes, soft limit covers extraction", "math", {"timeout_s": 1.0}, MATH_3,
     "</think>" + "\\boxed 1 " * 200000, {"incorrect", "timeout", "no_answer"}),
    ("math unbalanced boxes", "math", {"timeout_s": 1.0}, MATH_3, "</think>" + "\\boxed{" * 100000,
     {"incorrect", "timeout", "no_answer"}),
]


@pytest.mark.parametrize("name,verifier,options,problem,response,statuses", BLOWUPS, ids=[b[0] for b in BLOWUPS])
def test_extraction_blowups_finish_inside_the_verifiers_own_limit(name, verifier, options, problem, response,
                                                                   statuses):
    v = get_verifier(verifier, **options)
    t0 = time.monotonic()
    verdict = v.verify(problem, response)
    took = time.monotonic() - t0
    assert verdict.status in statuses, (name, verdict)
    # the soft limit fires at timeout_s; the pool's hard kill would come one grace second later
    assert took < v.timeout_s + 1.0, (name, took)
    if verifier != "math":  # linear extraction: never even near the limit
        assert verdict.status != "timeout", (name, verdict)


def test_last_tagged_is_reasoning_gyms_findall_rule():
    import re

    rule = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
    for text in ["", "<answer>1</answer>", "<answer>a<answer>b</answer>", "<answer>1</answer><answer>2</ANSWER>",
                 "<Answer>x\ny</answer> tail <answer>", "</answer><answer>z</answer>", "<answer></answer>",
                 "<answer>a</answer>b</answer>", "<answer><answer></answer></answer>"]:
        found = rule.findall(text)
        assert last_tagged(text) == (found[-1] if found else None), text


def test_helpers_stay_linear_on_long_inputs():
    """One pass each: 200k bare boxes and 30k opening tags in well under the smallest verifier limit (2 s)."""
    budget = get_verifier("countdown").timeout_s
    for fn, text in [(boxed_contents, "\\boxed 1 " * 200000), (last_tagged, "<answer>" * 30000),
                     (last_code_block, "```python\n" * 100000)]:
        t0 = time.monotonic()
        fn(text)
        assert time.monotonic() - t0 < budget, fn.__name__


# ---------------------------------------------------------------- equations that smuggle the gold
# gold 3: math-verify compares a gold value with the right side of any equation; only `variable = value` may be
# read as its value.
EQUATIONS = [
    ("\\boxed{4 = 3}", "incorrect"),
    ("\\boxed{1 = 2 = 3}", "incorrect"),
    ("\\boxed{\\text{I do not know} = 3}", "incorrect"),
    ("\\boxed{2 + 1 = 3}", "incorrect"),  # true, but an equation is not the value
    ("\\boxed{3 = x}", "incorrect"),
    ("\\boxed{f(2) = 3}", "correct"),  # function notation names a value, as `f(x) = 3x-2` in the regression table
    ("\\boxed{f(2) + 1 = 3}", "incorrect"),
    ("\\boxed{\\text{f}(\\text{no idea}) = 3}", "incorrect"),
    ("\\boxed{\\pi = 3}", "incorrect"),
    ("\\boxed{\\infty = 3}", "incorrect"),
    ("\\boxed{xy = 3}", "incorrect"),
    ("\\boxed{x = 2 = 3}", "incorrect"),
    ("The answer is $\\text{unknown} = 3$.", "incorrect"),
    ("\\boxed{x = 3}", "correct"),
    ("\\boxed{x_1 = 3}", "correct"),
    ("\\boxed{a_{n} = 3}", "correct"),
    ("\\boxed{\\theta = 3}", "correct"),
    ("The answer is $n = 3$.", "correct"),
    ("\\boxed{x = 4}", "incorrect"),
]


@pytest.mark.parametrize("response,status", EQUATIONS)
def test_only_variable_equals_value_is_read_as_the_value(response, status):
    assert get_verifier("math").verify(MATH_3, "<think>...</think>" + response).status == status


def test_equation_golds_still_compare_as_equations():
    gold = ProbeProblem("", "y = 2x+1", source="math500", domain="math")
    m = get_verifier("math")
    assert m.verify(gold, "\\boxed{2y - 4x = 2}").status == "correct"
    assert m.verify(gold, "\\boxed{y = 2x + 2}").status == "incorrect"


# ---------------------------------------------------------------- answers that split (or merge) a majority vote
FRAC = [(True, "\\frac{3}{4}"), (True, "\\frac{3}{4}"), (True, "0.75"), (True, "\\dfrac{3}{4}"),
        (False, "5"), (False, "5"), (False, "5")]
# (name, samples as (correct, answer), k, maj@k with the math verifier's equivalence)
VOTES = [
    ("spellings of 3/4 outvote three 5s", FRAC, 7, 100.0),
    ("decimal and percent", [(True, "0.5"), (True, "50\\%"), (False, "2"), (False, "2"), (True, "\\frac12")], 5, 100.0),
    ("surds", [(True, "2\\sqrt{2}"), (True, "\\sqrt{8}"), (False, "3"), (False, "3")], 4, 100.0),  # tie: earliest class
    ("spacing in tuples", [(True, "(1,2)"), (True, "(1, 2)"), (False, "(2,1)")], 3, 100.0),
    ("variable = value joins its value", [(True, "x = 3"), (True, "3"), (False, "4"), (False, "4"), (False, "4")],
     5, 0.0),
    ("a false equation does not join the gold's class", [(True, "3"), (False, "4 = 3"), (False, "4 = 3"),
                                                          (False, "4 = 3"), (False, "7"), (False, "7")], 6, 0.0),
    ("unparsable text only equals itself", [(False, "\\text{no idea}"), (False, "\\text{no idea}"), (True, "3")], 3, 0.0),
    ("tie between classes: the earlier class wins", [(False, "2"), (True, "0.5"), (True, "\\frac{1}{2}"),
                                                      (False, "2.0")], 4, 0.0),
    ("no answers do not vote", [(False, None), (False, ""), (True, "0.75"), (True, "\\frac{3}{4}")], 4, 100.0),
    ("only the first k vote", FRAC, 2, 100.0),
]


@pytest.mark.parametrize("name,samples,k,expected", VOTES, ids=[v[0] for v in VOTES])
def test_maj_at_k_votes_on_equivalence_classes(name, samples, k, expected):
    eq = get_verifier("math").equivalent
    assert M.metric_fn(f"maj@{k}", eq)([samples]) == expected, name


def test_maj_at_k_without_an_equivalence_still_votes_on_strings():
    assert M.maj_at_k([FRAC], 7) == 0.0
    assert M.maj_at_k([FRAC], 7, get_verifier("math").equivalent) == 100.0


def test_the_equivalence_is_memoised_for_bootstrap_resampling():
    calls = []

    def eq(a, b):
        calls.append((a, b))
        return a.strip("0.") == b.strip("0.")

    fn = M.metric_fn("maj@7", eq)
    lo, hi = M.bootstrap_ci([FRAC] * 5, fn, reps=200)
    assert (lo, hi) == (0.0, 0.0)
    assert len(calls) <= len({frozenset(c) for c in calls}) and len(calls) < 20


def test_curate_eval_scores_maj_at_k_with_the_benchmarks_verifier():
    """`score_rows` (what `curate eval` writes) groups votes with the benchmark verifier's equivalence."""
    from curate.evaluate.runner import score_rows
    from curate.evaluate.suite import Benchmark

    bench = Benchmark(name="m", task="math500", n=7, metrics=["maj"], verifier="math")
    outcomes = [{"problem_id": "p", "sample_index": i, "generated": True, "status": "correct" if c else "incorrect",
                 "answer": a, "completion_tokens": 10, "text_chars": 40, "truncated": False, "finish_reason": "stop",
                 "repetition_score": 0.0, "backtrack_count": 0, "verify_count": 0} for i, (c, a) in enumerate(FRAC)]
    rows = score_rows(outcomes, bench, {}, {})
    assert next(r for r in rows if r["metric"] == "maj@7")["value"] == 100.0
