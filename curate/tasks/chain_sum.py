"""Chain sum: add a short list of 2-digit numbers (`Add these numbers: 23 + 45 + 67 + 12`). Generator and oracle.

The CPU toy's task. It is small enough that a ~1M-parameter character-level model learns it in a minute
or two on a laptop CPU, and its natural reasoning is a scratchpad of running partial sums
(`23+45=68, 68+67=135, 135+12=147`), so thinking, verified-correct vs flawed traces and no thinking
measurably change what such a model learns (see docs/study.md, "The CPU toy").

- `generate(config, seed, index)` draws `terms` numbers in [min_value, max_value] with `task_rng(seed, index)`
  (sha256 of both, so an eval set drawn with another seed is an independent stream).
- `reference` is `{"numbers": [...], "answer": "147"}`; the `math` verifier reads `answer` (a boxed integer
  spelled as the gold takes its exact path, no sympy). `key` is the sorted multiset of numbers, so a train
  problem that is a reordering of an eval problem counts as the same problem for splits and decontamination.
- `--size N` yields N distinct problems (a draw repeating an earlier key of the run is skipped).

Known issues: addition is commutative, so two prompts with the same numbers in another order share a key
(on purpose) even though their scratchpads differ.
Test: tests/test_tasks_chain_sum.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from curate.records import Problem
from curate.tasks.base import TaskSpec, distinct_problems, register, task_rng

NAME = "chain_sum"
PROMPT = "Add these numbers: {terms}"


@dataclass(frozen=True)
class ChainSumConfig:
    min_terms: int = 3
    max_terms: int = 4
    min_value: int = 10
    max_value: int = 99

    def __post_init__(self) -> None:
        if not 2 <= self.min_terms <= self.max_terms <= 20:
            raise ValueError(f"need 2 <= min_terms <= max_terms <= 20, got {self.min_terms}..{self.max_terms}")
        if not 0 <= self.min_value <= self.max_value <= 10**6:
            raise ValueError(f"need 0 <= min_value <= max_value <= 1000000, got {self.min_value}..{self.max_value}")


def partial_sums(numbers: list[int]) -> list[tuple[int, int, int]]:
    """The scratchpad's steps: (running total, next number, new total) for every number after the first."""
    steps, total = [], numbers[0]
    for n in numbers[1:]:
        steps.append((total, n, total + n))
        total += n
    return steps


def generate(config: ChainSumConfig, seed: int, index: int, split: str = "train") -> Problem:
    rng = task_rng(seed, index)
    k = rng.randint(config.min_terms, config.max_terms)
    numbers = [rng.randint(config.min_value, config.max_value) for _ in range(k)]
    return Problem(
        source=NAME,
        domain="math",
        prompt=PROMPT.format(terms=" + ".join(map(str, numbers))),
        reference={"numbers": numbers, "answer": str(sum(numbers))},
        metadata={"seed": seed, "index": index, "n_terms": k, "verifier": "math"},
        split=split,
    )


def key(reference: dict) -> str:
    """The problem itself: the multiset of its numbers (the sum follows from them)."""
    return f"chain_sum:{sorted(int(n) for n in reference['numbers'])}"


def load(config: ChainSumConfig, size: int | None, seed: int, split: str) -> Iterator[Problem]:
    return distinct_problems('chain_sum', generate, key, config, size, seed, split)


def oracle(problem: Problem) -> str:
    return f"\\boxed{{{problem.reference['answer']}}}"


register(TaskSpec(name=NAME, description="Chained sums of 2-digit numbers (generated; the CPU toy's task)", domain="math",
                  config_cls=ChainSumConfig, load=load, verifier="math", oracle=oracle, generated=True, key=key))
