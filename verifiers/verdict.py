"""The Verdict record: what a verifier says about one response.

Defined here, in the leaf package, so verifiers never import `curate`; `curate.records` re-exports it.
A verifier never raises: infrastructure trouble is `error` or `timeout`, never `incorrect`, so mixtures
that filter on status re-run those instead of training on them.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Status = Literal["correct", "incorrect", "no_answer", "timeout", "error"]
STATUSES: tuple[str, ...] = ("correct", "incorrect", "no_answer", "timeout", "error")


class ProblemLike(Protocol):
    """What a verifier may read from a problem (curate.records.Problem satisfies it)."""

    prompt: str
    reference: Any
    metadata: dict


@dataclass(frozen=True)
class Verdict:
    status: str
    verifier: str
    version: str
    score: float = 0.0
    answer: str | None = None
    reason: str = ""
    duration_s: float = 0.0
    sample_id: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown verdict status {self.status!r}; expected one of {STATUSES}")

    @property
    def correct(self) -> bool:
        return self.status == "correct"

    def with_sample(self, sample_id: str) -> "Verdict":
        return dataclasses.replace(self, sample_id=sample_id)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict) -> "Verdict":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def is_infrastructure(self) -> bool:
        """True for outcomes that say nothing about the response (re-run them, never train on them)."""
        return self.status in ("timeout", "error")


def make_verdict(
    status: str,
    verifier: str,
    version: str,
    *,
    score: float | None = None,
    answer: str | None = None,
    reason: str = "",
    duration_s: float = 0.0,
    sample_id: str = "",
) -> Verdict:
    """Build a Verdict with the conventional score (1.0 when correct, else 0.0) and a bounded reason/answer."""
    if score is None:
        score = 1.0 if status == "correct" else 0.0
    return Verdict(
        status=status,
        verifier=verifier,
        version=version,
        score=float(score),
        answer=None if answer is None else clip(str(answer), 2000),
        reason=clip(reason, 500),
        duration_s=float(duration_s),
        sample_id=sample_id,
    )


def clip(text: str, limit: int) -> str:
    """Shorten `text` to at most `limit` characters, marking the cut (reasons and answers are stored per row)."""
    return text if len(text) <= limit else text[: limit - 12] + "...[clipped]"
