"""Multiple choice (GPQA, MMLU-Pro): the chosen letter against the gold letter, plus seeded option shuffling.

The letter comes from the answer after thinking: the last `\\boxed{}` (`\\boxed{C}`, `\\boxed{(C)}`,
`\\boxed{\\text{C}}`, `\\boxed{C. 42}`), else the last "Answer: C" / "the answer is (C)" line. Letters A-J
(MMLU-Pro has ten options). Reference: "C", or {"answer": "C"}, or {"answer_index": 2}.

`shuffle_options` reorders options with a generator seeded from sha256(seed, key): the same (seed, question)
always gives the same order in every process, unlike the study's scripts that seeded with Python's `hash()`
(randomised per process unless PYTHONHASHSEED is fixed).
Test: `python -m pytest -q tests/test_verifiers_mc_rg_safety.py`.
"""
from __future__ import annotations

import hashlib
import random
import re
from typing import Any, Sequence

from verifiers.base import Probe, ProbeProblem, Verifier
from verifiers.extract import answer_line, last_boxed, strip_thinking

LETTERS = "ABCDEFGHIJ"
_TEXT_RE = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")
_LETTER_RE = re.compile(r"^\s*[\(\[]?\s*([A-J])\s*[\)\]]?(?:\s*$|[\s.:)\],])")


def letter_of(text: str | None) -> str | None:
    """The option letter a short answer names: 'C', '(C)', 'C.', 'C) 42', '\\text{C}'; else None."""
    if text is None:
        return None
    s = _TEXT_RE.sub(r"\1", text).replace("$", "").replace("*", "").strip()
    m = _LETTER_RE.match(s)
    return m.group(1) if m else None


def extract_letter(response: str) -> str | None:
    tail = strip_thinking(response)
    boxed = last_boxed(tail)
    if boxed is not None:
        return letter_of(boxed)
    return letter_of(answer_line(tail))


def gold_letter(reference: Any) -> str | None:
    if isinstance(reference, dict):
        if isinstance(reference.get("answer_index"), int):
            return LETTERS[reference["answer_index"]]
        reference = reference.get("answer")
    if isinstance(reference, int) and 0 <= reference < len(LETTERS):
        return LETTERS[reference]
    return letter_of(str(reference)) if reference is not None else None


def seeded_rng(seed: int | str, key: str) -> random.Random:
    """A Random seeded from sha256(seed, key): stable across processes, machines and Python versions."""
    digest = hashlib.sha256(f"{seed}\x1f{key}".encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def shuffle_options(options: Sequence[str], correct_index: int, seed: int | str, key: str) -> tuple[list[str], str, list[int]]:
    """(shuffled options, gold letter after shuffling, permutation: new position -> old index)."""
    if not 0 <= correct_index < len(options) <= len(LETTERS):
        raise ValueError(f"need 1-{len(LETTERS)} options and a valid correct index, got {len(options)} / {correct_index}")
    perm = list(range(len(options)))
    seeded_rng(seed, key).shuffle(perm)
    return [options[i] for i in perm], LETTERS[perm.index(correct_index)], perm


def format_options(options: Sequence[str]) -> str:
    return "\n".join(f"({LETTERS[i]}) {opt}" for i, opt in enumerate(options))


class MultipleChoiceVerifier(Verifier):
    """Multiple-choice letter (boxed or 'Answer: X') against the gold letter."""

    name = "multiple_choice"
    version = "1"
    domains = ("science",)
    sources = ("gpqa", "gpqa_diamond", "mmlu_pro", "mmlu")
    timeout_s = 2.0

    def probes(self) -> list[Probe]:
        p = ProbeProblem("Which is a noble gas? (A) N (B) Ne (C) Na (D) Ni", {"answer": "B"}, source="gpqa", domain="science")
        return [Probe("gold letter", p, "<think>neon</think>\\boxed{B}", "correct"),
                Probe("other letter", p, "<think>sodium</think>Answer: C", "incorrect")]

    def check(self, problem: Any, response: str) -> Any:
        gold = gold_letter(getattr(problem, "reference", None))
        if gold is None:
            return self.verdict("error", reason="reference has no answer letter")
        got = extract_letter(response)
        if got is None:
            return self.verdict("no_answer", reason="no option letter after thinking")
        ok = got == gold
        return self.verdict("correct" if ok else "incorrect", answer=got, reason=f"chose {got}, gold {gold}")
