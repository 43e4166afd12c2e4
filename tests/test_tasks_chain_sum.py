"""Chain sums (the CPU toy's task): generator, oracle, keys, the math verifier on its answers, and the
synthetic scratchpad writer's verified and flawed traces."""
from __future__ import annotations

import random

import pytest

from curate.errors import InputError
from curate.generate.base import Request
from curate.generate.prompting import build_messages
from curate.generate.synthetic import SyntheticBackend, SyntheticConfig, chain_sum_trace, slip
from curate.tasks import TASKS, iter_problems
from curate.tasks.chain_sum import ChainSumConfig, generate, key, partial_sums
from verifiers.registry import get_verifier


def test_generator_is_seeded_by_seed_and_index_and_sizes_are_distinct():
    a = list(iter_problems("chain_sum", size=50, seed=0))
    assert [p.id for p in a] == [p.id for p in iter_problems("chain-sum", size=50, seed=0)]
    assert len({key(p.reference) for p in a}) == 50
    other = {key(p.reference) for p in iter_problems("chain_sum", size=50, seed=1000, split="eval")}
    assert not other & {key(p.reference) for p in a}
    p = a[0]
    nums = p.reference["numbers"]
    assert p.prompt == "Add these numbers: " + " + ".join(map(str, nums))
    assert p.reference["answer"] == str(sum(nums)) and 3 <= len(nums) <= 5 and all(10 <= n <= 99 for n in nums)
    assert p.domain == "math" and p.metadata["verifier"] == "math" and p.split == "train"
    assert generate(ChainSumConfig(), 0, 0) == a[0]


def test_config_is_validated_and_key_ignores_order():
    with pytest.raises(ValueError):
        ChainSumConfig(min_terms=1)
    with pytest.raises(ValueError):
        ChainSumConfig(min_value=50, max_value=10)
    with pytest.raises(InputError, match="min_terms"):
        list(iter_problems("chain_sum", {"min_terms": 6, "max_terms": 5}, size=1))
    assert key({"numbers": [3, 1, 2]}) == key({"numbers": [1, 2, 3]})
    assert partial_sums([23, 45, 67, 12]) == [(23, 45, 68), (68, 67, 135), (135, 12, 147)]


def test_oracle_passes_the_math_verifier_and_near_misses_do_not():
    v = get_verifier(TASKS["chain_sum"].verifier)
    for p in iter_problems("chain_sum", size=30, seed=9):
        assert v.verify(p, TASKS["chain_sum"].oracle(p)).status == "correct"
        total = int(p.reference["answer"])
        assert v.verify(p, f"<think>x</think>\n\\boxed{{{total + 10}}}").status == "incorrect"
        assert v.verify(p, f"<think>{total}").status == "no_answer"  # unclosed thinking has no answer


def test_verified_traces_are_correct_and_flawed_ones_slip_once_and_are_labeled_incorrect():
    v = get_verifier("math")
    backend = SyntheticBackend(config=SyntheticConfig(wrong_share=0.5))
    problems = list(iter_problems("chain_sum", size=60, seed=3))
    statuses = []
    for p in problems:
        for i in range(2):
            text = backend.trace(Request(id=f"{p.id}{i}", problem=p, messages=build_messages(p), sample_index=i, seed=0))
            assert text == backend.trace(Request(id="again", problem=p, messages=build_messages(p), sample_index=i, seed=0))
            pad = text.split("<think>\n")[1].split("\n</think>")[0]
            steps = [s.split("=") for s in pad.split(", ")]
            assert len(steps) == len(p.reference["numbers"]) - 1
            off = [int(lhs.split("+")[0]) + int(lhs.split("+")[1]) != int(rhs) for lhs, rhs in steps]
            status = v.verify(p, text).status
            statuses.append(status)
            assert sum(off) == (status == "incorrect")  # exactly one slip in a flawed trace, none in a verified one
            assert text.endswith("\\boxed{%s}" % steps[-1][1]) and f"The sum is {steps[-1][1]}." in text
    assert 0.3 < statuses.count("incorrect") / len(statuses) < 0.7 and set(statuses) == {"correct", "incorrect"}


def test_slips_are_small_and_never_right_and_think_and_terse_knobs():
    rng = random.Random(0)
    for value in (0, 5, 68, 135, 250):
        for _ in range(50):
            s = slip(rng, value)
            assert s != value and s >= 0 and abs(s - value) in (1, 2, 3, 10)
    plain = chain_sum_trace([10, 20], random.Random(1), False, SyntheticConfig(think=False, verbosity="terse"))
    assert plain == "10+20=30\n\n\\boxed{30}"
