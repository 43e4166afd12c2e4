"""reasoning-gym: any of its 100+ procedural tasks by name, config, seed and size.

The library's generators and scorers are used as they are: entry i of task T comes from
`reasoning_gym.create_dataset(T, seed=rg_seed, size=size, **task_config)`, and the reference keeps what
its `score_answer` needs (question, answer, metadata). reasoning-gym seeds entry i with rg_seed + i, so
our seed is first hashed into rg_seed (31 bits, kept in metadata): seeds 0 and 1 then give unrelated
streams instead of the same one shifted by one entry.
Test: tests/test_tasks_sources.py.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterator

from curate.errors import InputError
from curate.records import Problem
from curate.tasks.base import TaskSpec, register, stream_seed

NAME = "reasoning_gym"  # also the problems.source family: reasoning_gym/<task>
# reasoning-gym package folder -> our domain names
_DOMAINS = {"algebra": "math", "arithmetic": "math", "geometry": "math", "probability": "math", "graphs": "logic",
            "logic": "logic", "induction": "logic", "cognition": "logic", "arc": "logic", "games": "game",
            "code": "code", "algorithmic": "logic"}


@dataclass(frozen=True)
class ReasoningGymConfig:
    task: str = ""
    task_config: dict = field(default_factory=dict)  # the task's own config fields, e.g. {"max_terms": 4}

    def __post_init__(self) -> None:
        if not self.task:
            raise ValueError("give the reasoning-gym task name: --set task=NAME (e.g. chain_sum)")


def _jsonable(obj):
    """reasoning-gym metadata may hold tuples, sets or numpy values: make it plain JSON."""
    return json.loads(json.dumps(obj, default=lambda o: sorted(o) if isinstance(o, (set, frozenset)) else str(o)))


def load(config: ReasoningGymConfig, size: int | None, seed: int, split: str) -> Iterator[Problem]:
    try:
        import reasoning_gym
        from reasoning_gym.factory import DATASETS
    except ImportError:
        raise InputError("the reasoning-gym source needs the reasoning-gym package", hint="pip install 'curate[tasks]'") from None
    if config.task not in DATASETS:
        close = [n for n in sorted(DATASETS) if config.task.split("_")[0] in n][:8]
        raise InputError(f"unknown reasoning-gym task {config.task!r}", hint=f"similar: {', '.join(close) or 'see reasoning_gym.factory.DATASETS'}")
    if size is None:
        raise ValueError("reasoning-gym tasks are generated: give --size")
    cls = DATASETS[config.task][0]
    domain = _DOMAINS.get(cls.__module__.split(".")[1], "logic")
    rg_seed = stream_seed(seed) % 2**31  # some generators seed numpy, which takes < 2**32 (rg_seed + i included)
    try:
        ds = reasoning_gym.create_dataset(config.task, seed=rg_seed, size=size, **config.task_config)
    except (TypeError, ValueError, AssertionError) as e:
        raise InputError(f"reasoning-gym task {config.task}: bad task_config {config.task_config}: {e}") from None
    for index in range(size):
        entry = ds[index]
        yield Problem(
            source=f"{NAME}/{config.task}", domain=domain, prompt=entry["question"],
            reference=_jsonable({"task": config.task, "question": entry["question"], "answer": entry["answer"],
                                 "metadata": entry.get("metadata", {})}),
            metadata={"seed": seed, "rg_seed": rg_seed, "index": index, "task": config.task, "task_config": _jsonable(config.task_config)},
            split=split,
        )


def oracle(problem: Problem) -> str | None:
    """The generator's answer as a response, in reasoning-gym's <answer> tags."""
    ans = problem.reference.get("answer") if isinstance(problem.reference, dict) else None
    return None if ans is None else f"<answer>{ans}</answer>"


register(TaskSpec(name=NAME, description="Any reasoning-gym task (--set task=NAME, --set task_config='{...}'), scored by its own scorer",
                  domain="logic", config_cls=ReasoningGymConfig, load=load, verifier="reasoning_gym", oracle=oracle,
                  generated=True))
