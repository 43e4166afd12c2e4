"""Dedup, decontamination and the response transforms, one function at a time (no store).

Run: python -m pytest -q tests/test_mix_clean.py
"""
from __future__ import annotations

import pytest

from curate.mix.build import allocate
from curate.mix.clean import EvalIndex, PromptDeduper, words
from curate.mix.recipe import validate_recipe
from curate.mix.transforms import boxed_answer, messages, reference_response, reference_solution, strip_thinking, truncate

EVAL_Q = ("Let a and b be positive real numbers such that a plus b equals ten and a times b equals twenty one. "
          "Compute the value of a squared plus b squared.")


def accept(d: PromptDeduper, prompt: str, key: str | None = None):
    reason, handle = d.check(prompt, key)
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
    assert reference_solution(ref) in (expected, None) and boxed_answer(ref) in (expected, None, "The final answer is $\\boxed{5}$.")
    if isinstance(ref, dict) and "solution" in ref:
        assert reference_solution(ref) == expected
    else:
        assert reference_solution(ref) is None  # a bare answer is not a solution; only the explicit fallback uses it


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


def countdown_prompts(n: int, seed: int = 0) -> list[str]:
    from curate.tasks.countdown import CountdownConfig, generate

    return [generate(CountdownConfig(), seed, i).prompt for i in range(n)]


def test_near_dedup_judges_what_differs_not_the_template():
    """Two different Countdown puzzles share the whole template: Jaccard 0.81 over all shingles."""
    from curate.tasks.countdown import PROMPT

    a, b = PROMPT.format(numbers=[31, 33, 8], target=72), PROMPT.format(numbers=[31, 84, 19], target=72)
    assert accept(PromptDeduper(), a) is None and accept(d := PromptDeduper(), a) is None and accept(d, b) == "near"
    d = PromptDeduper(corpus=countdown_prompts(200) + [a, b])
    assert accept(d, a) is None and accept(d, b) is None
    assert accept(d, PROMPT.format(numbers=[31, 33, 8], target=72)) == "exact"


def test_structured_keys_decide_for_keyed_problems():
    d = PromptDeduper()
    assert accept(d, "Numbers: [1, 2, 3] Target: 6", key="countdown:[1, 2, 3]->6") is None
    assert accept(d, "Numbers: [3, 2, 1] Target: 6", key="countdown:[1, 2, 3]->6") == "key"  # the same puzzle
    assert accept(d, "Numbers: [1, 2, 3] Target: 7", key="countdown:[1, 2, 3]->7") is None
    idx = EvalIndex([("countdown", "Numbers: [3, 2, 1] Target: 6 " + EVAL_Q, "countdown:[1, 2, 3]->6")], n=13)
    assert idx.keyed == 1
    assert idx.hits("anything at all", key="countdown:[1, 2, 3]->6") == {"countdown"}
    assert idx.hits("Numbers: [3, 2, 1] Target: 9 " + EVAL_Q, key="countdown:[1, 2, 3]->9") == set()
    assert idx.hits("a trace quoting " + EVAL_Q) == set()  # keyed eval prompts are matched by key only


def test_template_ngrams_do_not_count_as_contamination():
    """A Countdown eval split shared 13-grams of its fixed template with every training prompt."""
    evals = countdown_prompts(20, seed=1)
    train = countdown_prompts(200, seed=0)
    template = "use each number exactly once you may use and parentheses numbers"  # 11 words, in every prompt
    assert all(template in " ".join(words(p)) for p in train[:5])
    for idx in (EvalIndex([("countdown", p) for p in evals], n=13, corpus=train),
                EvalIndex([("countdown", p) for p in evals[:2]], n=13, corpus=train)):  # the corpus alone suffices
        assert idx.template_grams > 0
        assert not any(idx.hits(p) for p in train)
        assert idx.hits(evals[0]) == {"countdown"}
    # a benchmark's own boilerplate (a multiple-choice suffix) is template too; its questions are not
    suffix = " Answer with the letter of the correct option only and put that letter in a box at the end please."
    mc = [("mc", f"Question {w} about the colour of the {w} sky seen at dawn from a boat." + suffix)
          for w in ("red", "blue", "grey", "green", "pink")]
    idx = EvalIndex(mc, n=13)
    assert idx.hits("What is two plus two?" + suffix) == set()
    assert idx.hits("Question blue about the colour of the blue sky seen at dawn from a boat, right?") == {"mc"}
