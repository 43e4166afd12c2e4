"""reasoning-gym tasks, scored by the task's own `score_answer`; correct only at exactly 1.0.

Partial credit (many tasks give 0.01-0.5 for near misses) is kept as the verdict's score but the status is
`incorrect`: mixtures filter on status, and a near miss is not a verified trace.

Reference: {"task": "leg_counting", "entry": {"question", "answer", "metadata"}} (the dataset row as
reasoning-gym yields it), or the row's fields inline, {"task", "question", "answer", "metadata"} (what
curate/tasks writes); the task may also come from metadata.source_dataset, problem.metadata["task"] or a
source named "reasoning-gym/<task>".
Answer: the last `<answer>...</answer>` after thinking (reasoning-gym's own format), else the last `\\boxed{}`,
else, when what follows the thinking is short (one to five lines, at most 300 characters), all of it: a
bare answer such as the tasks' oracle gives. A long answer without either marker is `no_answer`.
Test: `python -m pytest -q tests/test_verifiers_mc_rg_safety.py`.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from verifiers.base import Probe, ProbeProblem, Verifier
from verifiers.extract import last_boxed, last_tagged, strip_thinking


@functools.lru_cache(maxsize=256)
def scorer(task: str) -> Callable[[Any, dict], float]:
    """The task's score_answer (building a dataset object is not free, so it is cached per task)."""
    from reasoning_gym import get_score_answer_fn

    return get_score_answer_fn(task)


def extract_answer(response: str) -> str | None:
    tail = strip_thinking(response)
    tagged = last_tagged(tail, "answer")
    if tagged is not None:
        return tagged.strip()
    boxed = last_boxed(tail)
    if boxed is not None:
        return boxed
    bare = tail.strip()
    if bare and len(bare) <= 300 and bare.count("\n") < 5:
        return bare
    return None


def task_and_entry(problem: Any) -> tuple[str, dict]:
    ref = getattr(problem, "reference", None)
    meta = getattr(problem, "metadata", None) or {}
    if not isinstance(ref, dict):
        ref = {"answer": ref}
    entry = ref.get("entry")
    if not isinstance(entry, dict):
        entry = {"question": ref.get("question", getattr(problem, "prompt", "")), "answer": ref.get("answer"),
                 "metadata": ref.get("metadata") or meta.get("rg_metadata") or {}}
    source = getattr(problem, "source", "") or ""
    task = (ref.get("task") or (entry.get("metadata") or {}).get("source_dataset") or meta.get("task")
            or (source.split("/", 1)[1] if source.replace("-", "_").startswith("reasoning_gym/") else None))
    if not task:
        raise ValueError("reasoning-gym problem does not name its task (reference.task or metadata.source_dataset)")
    return str(task), entry


class ReasoningGymVerifier(Verifier):
    """Any reasoning-gym task through its own scorer; correct only at score 1.0."""

    name = "reasoning_gym"
    version = "1"
    domains = ("logic",)
    sources = ("reasoning_gym",)  # also "reasoning-gym/<task>": names match with - and _ alike
    timeout_s = 10.0

    def probes(self) -> list[Probe]:
        q = "How many legs are there in total if you have 2 ducks and 1 dog?"
        p = ProbeProblem(q, {"task": "leg_counting", "question": q, "answer": "8", "metadata": {}},
                         source="reasoning_gym/leg_counting", domain="logic")
        return [Probe("right count", p, "<think>4 + 4</think><answer>8</answer>", "correct"),
                Probe("wrong count", p, "<think>2 + 4</think><answer>6</answer>", "incorrect")]

    def check(self, problem: Any, response: str) -> Any:
        task, entry = task_and_entry(problem)
        answer = extract_answer(response)
        if answer is None or not answer.strip():
            return self.verdict("no_answer", reason="no <answer> or \\boxed{} after thinking")
        score = float(scorer(task)(answer, entry))
        status = "correct" if score == 1.0 else "incorrect"
        return self.verdict(status, score=score, answer=answer, reason=f"{task} scored {score:g}")
