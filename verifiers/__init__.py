"""Verifiers: pure functions `verify(problem, response) -> Verdict`; a leaf package that imports nothing from curate."""
from verifiers.verdict import STATUSES, ProblemLike, Status, Verdict

__all__ = ["STATUSES", "ProblemLike", "Status", "Verdict"]
