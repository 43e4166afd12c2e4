"""Verifiers: `verify(problem, response) -> Verdict`, a leaf package that imports nothing from curate.

    from verifiers.registry import get_verifier
    get_verifier("math").verify(problem, "<think>...</think> so \\boxed{3/4}")

Built-ins and plugins register under the `curate.verifiers` entry-point group (see verifiers/registry.py).
"""
from verifiers.base import Probe, ProbeProblem, Verifier
from verifiers.verdict import STATUSES, ProblemLike, Status, Verdict, make_verdict

__all__ = ["STATUSES", "Probe", "ProbeProblem", "ProblemLike", "Status", "Verdict", "Verifier", "make_verdict"]
