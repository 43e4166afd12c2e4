"""Synthetic Countdown traces: right answers are right, wrong answers are wrong, and the share matches the knob."""
from __future__ import annotations

import pytest

from curate.errors import InputError
from curate.generate.base import Request, SamplingParams
from curate.generate.prompting import build_messages
from curate.generate.synthetic import SyntheticBackend, SyntheticConfig
from curate.records import Problem
from curate.tasks.countdown import CountdownConfig, check_answer, generate


def last_boxed(text: str) -> str | None:
    """The last \\boxed{...} after the last </think>, with nested braces (what the verifier reads)."""
    text = text.rsplit("</think>", 1)[-1]
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i, depth = start + len("\\boxed{"), 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def external_verifier():
    """The countdown verifier from the verifiers package, when the branch that adds it is merged."""
    try:
        from verifiers.registry import get_verifier  # type: ignore[import-not-found]
    except ImportError:
        return None
    return get_verifier("countdown")


@pytest.fixture(scope="module")
def problems():
    return [generate(CountdownConfig(), 5, i) for i in range(250)]


def run(problems, n=4, **knobs):
    b = SyntheticBackend(config=SyntheticConfig(**knobs))
    reqs = [Request(id=f"{p.id}-{i}", problem=p, messages=build_messages(p), sample_index=i, seed=0)
            for p in problems for i in range(n)]
    outs = {c.request_id: c for c in b.generate(reqs)}
    assert set(outs) == {r.id for r in reqs}
    return [(r, outs[r.id]) for r in reqs]


@pytest.mark.parametrize("share", [0.0, 0.25, 1.0])
def test_wrong_share_matches_knob(problems, share):
    pairs = run(problems, wrong_share=share)
    verifier = external_verifier()
    wrong = 0
    for req, c in pairs:
        ref = req.problem.reference
        answer = last_boxed(c.text)
        assert answer is not None and c.finish_reason == "stop"
        ok, _ = check_answer(answer, ref["numbers"], ref["target"])
        if verifier is not None:
            assert verifier.verify(req.problem, c.text).correct is ok
        wrong += not ok
    measured = wrong / len(pairs)
    assert abs(measured - share) < 0.04, measured  # 1000 traces: 4 sd of a Bernoulli(0.25) mean


def test_traces_are_deterministic_and_thinking_closed(problems):
    a = run(problems[:20], n=2, wrong_share=0.5)
    b = run(problems[:20], n=2, wrong_share=0.5)
    assert [c.text for _, c in a] == [c.text for _, c in b]
    assert len({c.text for _, c in a}) > 30  # sample index changes the trace
    for _, c in a:
        assert c.text.startswith("<think>\n") and c.text.count("</think>") == 1


def test_style_knobs(problems):
    straight = run(problems[:60], n=1, backtracking=False)
    searching = run(problems[:60], n=1, backtracking=True, max_dead_ends=4)
    markers = ("back", "dead end", "Alternatively", "reconsider")
    assert not any(m in c.text for _, c in straight for m in markers)
    assert sum(any(m in c.text for m in markers) for _, c in searching) > 30
    terse = run(problems[:60], n=1, verbosity="terse", backtracking=False)
    verbose = run(problems[:60], n=1, verbosity="verbose", backtracking=False)
    assert sum(len(c.text) for _, c in terse) * 1.5 < sum(len(c.text) for _, c in verbose)
    no_think = run(problems[:5], n=1, think=False)
    assert all("<think>" not in c.text for _, c in no_think)


def test_max_tokens_truncates(problems):
    b = SyntheticBackend(sampling=SamplingParams(max_tokens=20))
    p = problems[0]
    c = next(b.generate([Request(id="x", problem=p, messages=build_messages(p), sample_index=0)]))
    assert c.finish_reason == "length" and c.completion_tokens == 20 and len(c.text) <= 80


def test_rejects_other_sources_and_bad_knobs():
    p = Problem(source="math500", domain="math", prompt="1+1?", reference="2")
    with pytest.raises(InputError, match="Countdown"):
        list(SyntheticBackend().generate([Request(id="x", problem=p, messages=build_messages(p), sample_index=0)]))
    with pytest.raises(ValueError, match="wrong_share"):
        SyntheticConfig(wrong_share=1.5)
    with pytest.raises(ValueError, match="verbosity"):
        SyntheticConfig(verbosity="chatty")


def test_unsolvable_problem_gets_only_wrong_answers():
    p = Problem(source="countdown", domain="game", prompt="Numbers: [1, 1, 1]\nTarget: 100",
                reference={"numbers": [1, 1, 1], "target": 100})
    req = Request(id="x", problem=p, messages=build_messages(p), sample_index=0)
    c = next(SyntheticBackend().generate([req]))
    assert not check_answer(last_boxed(c.text), [1, 1, 1], 100)[0]
