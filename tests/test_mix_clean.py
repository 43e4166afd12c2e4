"""Dedup, decontamination and the response transforms, one function at a time (no store).

Run: python -m pytest -q tests/test_mix_clean.py
"""
from __future__ import annotations

import pytest

from curate.mix.build import allocate
from curate.mix.clean import EvalIndex, PromptDeduper
from curate.mix.recipe import validate_recipe
from curate.mix.transforms import messages, reference_response, strip_thinking, truncate

EVAL_Q = ("Let a and b be positive real numbers such that a plus b equals ten and a times b equals twenty one. "
          "Compute the value of a squared plus b squared.")


def accept(d: PromptDeduper, prompt: str):
    reason, handle = d.check(prompt)
    if reason is None:
        d.add(handle)
    return reason


def test_exact_duplicates_ignore_case_spacing_and_punctuation():
    d = PromptDeduper(near=False)
    assert accept(d, "What is 2 + 2?") is None
    assert accept(d, "  what IS 2+2 ") == "exact"
    assert accept(d, "What is 2 + 3?") is None


def test_near_duplicates_need_high_shingle_overlap():
    d = PromptDeduper()
    base = "A train leaves the station at noon travelling at sixty miles per hour towards a city two hundred miles away. When does it arrive?"
    assert accept(d, base) is None
    assert accept(d, base.replace("When does it arrive?", "When does it arrive there?")) == "near"
    assert accept(d, "A farmer plants nine rows of corn with twelve plants in every row and then sells half of them. How many remain?") is None


def test_a_rejected_prompt_is_not_remembered():
    d = PromptDeduper()
    reason, _ = d.check("Some prompt about triangles and their angles in a plane.")
    assert reason is None
    assert accept(d, "Some prompt about triangles and their angles in a plane.") is None  # nothing was added by check()


def test_eval_index_finds_shared_ngrams_and_names_the_benchmark():
    idx = EvalIndex([("math500", EVAL_Q), ("aime24", "Find the remainder when two to the power one hundred is divided by seven.")], n=13)
    leaked = "Okay. Let a and b be positive real numbers such that a plus b equals ten and a times b equals twenty one, so"
    assert idx.hits(leaked) == {"math500"}
    assert idx.hits("Let a and b be positive integers such that a plus b equals ten and a times b equals six.") == set()
    # an eval prompt shorter than n words counts as one gram of its own length
    assert idx.hits("we must find the remainder when two to the power one hundred is divided by seven today") == {"aime24"}
    assert idx.hits("") == set() and len(idx) == 2


def test_eval_index_exact_match_catches_very_short_prompts():
    idx = EvalIndex([("tiny", "What is 2+2?")], n=13)
    assert idx.hits("what is 2 + 2") == {"tiny"}
    assert idx.hits("so what is 2 + 2 then") == set()  # below MIN_GRAM words only exact copies count


def test_strip_thinking():
    assert strip_thinking("<think>a\nb</think>\n\nSummary \\boxed{1}") == "Summary \\boxed{1}"
    assert strip_thinking("<think>x</think> one </think> two") == "two"  # after the last tag, as the study scores
    assert strip_thinking("<think>unclosed") is None
    assert strip_thinking("<think>only thinking</think>") is None
    assert strip_thinking("plain answer") == "plain answer"


def test_truncate_cuts_at_a_word_boundary():
    text = "alpha beta gamma delta epsilon zeta"
    out = truncate(text, 0.5)
    assert text.startswith(out) and len(out) <= len(text) / 2 + 1 and not out.endswith(" ")
    assert out.split()[-1] in text.split()


@pytest.mark.parametrize("ref, expected", [
    ({"solution": "  Add them: $\\boxed{5}$. ", "answer": "5"}, "Add them: $\\boxed{5}$."),
    ({"answer": "5"}, "The final answer is $\\boxed{5}$."),
    ("\\frac{1}{2}", "The final answer is $\\boxed{\\frac{1}{2}}$."),
    ("\\boxed{7}", "\\boxed{7}"),
    (12, "The final answer is $\\boxed{12}$."),
    (None, None), ({"numbers": [1, 2]}, None), ("", None),
])
def test_reference_response(ref, expected):
    assert reference_response(ref) == expected


def test_messages_shape():
    m = messages("Q?", "A.", "{question}\nPlease reason step by step, and put your final answer within \\boxed{}.", None)
    assert m == [{"role": "user", "content": "Q?\nPlease reason step by step, and put your final answer within \\boxed{}."},
                 {"role": "assistant", "content": "A."}]


def test_allocate_quotas_and_weights():
    r = validate_recipe({"name": "x", "size": 100, "sources": [
        {"name": "a", "quota": 10}, {"name": "b", "weight": 2}, {"name": "c", "weight": 1}]})
    assert allocate(r) == {"a": 10, "b": 60, "c": 30}
    r = validate_recipe({"name": "x", "size": 10, "sources": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})
    assert allocate(r) == {"a": 4, "b": 3, "c": 3}
