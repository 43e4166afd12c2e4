"""Countdown verifier: rules, exact arithmetic, number usage, oracle answers and adversarial input."""
from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass, field
from fractions import Fraction

import pytest

from verifiers.countdown import (CountdownVerifier, Rejected, _parse_eval, check_expression, evaluate, normalize,
                                 parse_expression)
from verifiers.registry import get_verifier


@dataclass
class P:
    prompt: str = ""
    reference: object = None
    metadata: dict = field(default_factory=dict)
    source: str = "countdown"
    domain: str = "game"


def prob(numbers, target, **extra):
    return P(prompt=f"Numbers: {numbers}\nTarget: {target}", reference={"numbers": numbers, "target": target, **extra})


V = CountdownVerifier()


@pytest.mark.parametrize(
    "numbers, target, response, status",
    [
        ([3, 5, 3], 24, r"<think>try 3*8</think>So \boxed{(3+5)*3}", "correct"),
        ([3, 5, 3], 24, r"\boxed{(3 + 5) \times 3 = 24}", "correct"),
        ([3, 5, 3], 24, r"\boxed{3 \cdot (5+3)}", "correct"),
        ([6, 4, 2], 3, r"\boxed{6/4*2}", "correct"),  # exact rationals: 1.5 * 2
        ([7, 2, 1], 3, r"\boxed{7/2 - 1}", "incorrect"),  # 2.5, not 3 (no integer division)
        ([8, 2, 5], 9, r"\boxed{\frac{8}{2} + 5}", "correct"),
        ([8, 2, 5], 9, r"\boxed{8 ÷ 2 + 5}", "correct"),
        ([3, 5, 3], 24, r"\boxed{(3+5)*3*1}", "incorrect"),  # 1 was not given
        ([3, 5, 3], 24, r"\boxed{(3+5)*5}", "incorrect"),  # 5 used twice
        ([3, 5, 3, 2], 24, r"\boxed{(3+5)*3}", "incorrect"),  # 2 unused (use_all default)
        ([3, 5, 3], 24, r"\boxed{24}", "incorrect"),
        ([3, 5, 3], 24, r"\boxed{3**2+15}", "incorrect"),
        ([3, 5, 3], 24, r"\boxed{-3+5*3}", "incorrect"),  # unary minus rejected by default
        ([3, 5, 0], 24, r"\boxed{(3+5)/0}", "incorrect"),  # division by zero is a wrong answer
        ([3, 5, 3], 24, r"\boxed{__import__('os')}", "incorrect"),
        ([3, 5, 3], 24, r"\boxed{3.0*8}", "incorrect"),
        ([3, 5, 3], 24, "<think>\\boxed{(3+5)*3}</think>I give up", "no_answer"),  # boxed only inside thinking
        ([3, 5, 3], 24, "<think>(3+5)*3 never finished", "no_answer"),
        ([3, 5, 3], 24, "<answer>(3+5)*3</answer>", "correct"),
        # an equation must claim the target: the right-hand side is checked, not dropped
        ([3, 5, 3], 24, r"\boxed{(3+5)*3 = 25}", "incorrect"),
        ([3, 5, 3], 24, r"\boxed{3+5+3 = 11}", "incorrect"),  # true arithmetic, but not the target
        ([3, 5, 3], 24, r"\boxed{(3+5)*3 = 8*3}", "incorrect"),
        ([3, 5, 3], 24, r"\boxed{24 = (3+5) × 3}", "correct"),
        ([3, 5, 3], 24, r"\boxed{(3+5) \times 3 = 24 = 24}", "correct"),
        ([8, 2, 5], 9, r"\boxed{8 \div 2 + 5 = 9}", "correct"),
    ],
)
def test_countdown_table(numbers, target, response, status):
    v = V.verify(prob(numbers, target), response)
    assert v.status == status, v.reason
    assert v.verifier == "countdown" and v.version


def test_use_all_is_configurable_per_problem_and_per_verifier():
    assert V.verify(prob([3, 5, 3, 2], 24, use_all=False), r"\boxed{(3+5)*3}").status == "correct"
    assert CountdownVerifier(use_all=False).verify(prob([3, 5, 3, 2], 24), r"\boxed{(3+5)*3}").status == "correct"
    assert CountdownVerifier(allow_unary=True).verify(prob([3, 5, 3], 12), r"\boxed{-3+5*3}").status == "correct"


def test_numbers_and_target_parsed_from_prompt_when_reference_is_missing():
    p = P(prompt="Using the numbers below, make the target.\nNumbers: [10, 2, 7]\nTarget: 27", reference=None)
    assert V.verify(p, r"\boxed{10*2+7}").status == "correct"
    assert V.verify(P(prompt="nothing"), r"\boxed{1}").status == "error"  # bad problem data is not a wrong answer


def _solve(numbers: list[int], target: int) -> str | None:
    """Tiny exhaustive solver (left-to-right and all pair merges) used to produce oracle answers."""
    items = [(Fraction(n), str(n)) for n in numbers]

    def rec(items):
        if len(items) == 1:
            return items[0][1] if items[0][0] == target else None
        for i, j in itertools.permutations(range(len(items)), 2):
            (a, ea), (b, eb) = items[i], items[j]
            rest = [items[k] for k in range(len(items)) if k not in (i, j)]
            cands = [(a + b, f"({ea}+{eb})"), (a - b, f"({ea}-{eb})"), (a * b, f"({ea}*{eb})")]
            if b != 0:
                cands.append((a / b, f"({ea}/{eb})"))
            for val, expr in cands:
                found = rec(rest + [(val, expr)])
                if found:
                    return found
        return None

    return rec(items)


def test_oracle_answers_are_correct_under_the_registered_verifier():
    """Registry invariant for countdown (until curate/tasks lands): every oracle answer verifies."""
    v = get_verifier("countdown")
    rng = random.Random(1234)
    checked = 0
    while checked < 40:
        numbers = [rng.randint(1, 25) for _ in range(rng.randint(3, 4))]
        a = _solve(numbers, target := rng.randint(10, 100))
        if a is None:
            continue
        verdict = v.verify(prob(numbers, target), f"<think>search...</think>\nAnswer: \\boxed{{{a}}}")
        assert verdict.status == "correct", (numbers, target, a, verdict.reason)
        checked += 1


ADVERSARIAL = [
    r"\boxed{9**9**9}",
    r"\boxed{10^10^10}",
    r"\boxed{" + "9" * 5000 + "}",
    r"\boxed{" + "(" * 5000 + "1" + ")" * 5000 + "}",
    r"\boxed{" + "+".join(["1"] * 20000) + "}",
    r"\boxed{" + "1" + "*1" * 400 + "}",
    r"\boxed{[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
    r"\boxed{" + r"\frac{" * 300 + "1" + "}{2}" * 300 + "}",
    r"\boxed{(lambda: 1)()}",
    r"\boxed{().__class__.__bases__[0]}",
    "\\boxed{" * 5000,
]


@pytest.mark.parametrize("response", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_adversarial_expressions_are_rejected_fast(response):
    t0 = time.perf_counter()
    v = V.verify(prob([1, 2, 9], 10), response)
    assert time.perf_counter() - t0 < 1.0
    assert v.status in ("incorrect", "no_answer"), v


def test_normalize():
    assert normalize(r"\left(3+5\right)\times 3 = 24") == "(3+5)* 3"
    assert normalize(r"\dfrac{8}{2}+5") == "(8)/(2)+5"


def test_check_expression_reason_names_the_problem():
    ok, why = check_expression("(1+2)*3", [1, 2, 3], 10)
    assert not ok and "evaluates to 9" in why


def test_fast_parser_agrees_with_the_ast_whitelist():
    """The one-pass parser used at scale is checked against the ast-based reference on random input."""
    rng = random.Random(7)
    alphabet = "0123456789+-*/() "
    for i in range(3000):
        if i % 2:
            expr = str(rng.randint(0, 50))
            for _ in range(rng.randint(1, 5)):
                x = str(rng.randint(0, 50))
                expr = f"({expr}{rng.choice('+-*/')}{x})" if rng.random() < 0.5 else f"{expr}{rng.choice('+-*/')}{x}"
        else:
            expr = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        expr = expr.strip()  # check_expression strips; ast rejects leading blanks as an indent
        if "**" in expr or not expr:
            continue
        try:
            tree, used_ref = parse_expression(expr)
            ref = ("ok", evaluate(tree), used_ref)
        except Rejected:
            ref = ("rejected",)
        except ZeroDivisionError:
            ref = ("zero",)
        try:
            num, den, used = _parse_eval(expr, allow_unary=False)
            fast = ("ok", Fraction(num, den), used)
        except Rejected:
            fast = ("rejected",)
        except ZeroDivisionError:
            fast = ("zero",)
        if ref[0] == "ok" or fast[0] == "ok":
            assert fast == ref, expr
        else:  # both not correct; evaluating while parsing may meet a /0 before a later syntax error
            assert fast[0] in ("rejected", "zero") and ref[0] in ("rejected", "zero"), expr
