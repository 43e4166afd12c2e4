"""One backend protocol, one record type out.

The runner turns (problem, sample index) pairs into `Request`s, a backend turns requests into
`Completion`s (in any order, exactly one per request, or raises BackendError), and the runner turns
completions into `Sample` records. Sampling parameters live in one frozen dataclass so every backend
stores the same keys per row.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, Sequence

from curate.records import Problem

__all__ = ["SamplingParams", "Request", "Completion", "Backend", "approx_tokens"]


@dataclass(frozen=True)
class SamplingParams:
    """The study's teacher settings by default (docs/paper.md): T=0.6, top-p 0.95, top-k 20, 16,384 tokens."""

    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    min_p: float = 0.0
    max_tokens: int = 16384
    logprobs: bool = False  # ask for token logprobs to fill teacher_logprob / teacher_entropy where supported

    def __post_init__(self) -> None:
        for name in ("temperature", "top_p", "min_p"):
            if not math.isfinite(getattr(self, name)):  # nan passes every comparison below, and no JSON holds it
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < -1 or self.top_k == 0:
            raise ValueError(f"top_k must be -1 (off) or >= 1, got {self.top_k}")
        if not 0 <= self.min_p < 1:
            raise ValueError(f"min_p must be in [0, 1), got {self.min_p}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Request:
    """One sample to produce. `messages` is the chat (user turn, optional system); `id` the future Sample id."""

    id: str
    problem: Problem
    messages: tuple[dict, ...]
    sample_index: int
    seed: int | None = None

    @property
    def per_sample_seed(self) -> int | None:
        """A seed for this sample alone, from (problem id, sample index, run seed), for backends that take one.
        It does not depend on the model or on where anything lives, so a rerun, a resumed run and an
        uninterrupted one draw the same random numbers for the same sample, and two checkpoints scored on the
        same problem draw the same ones (common random numbers make their paired difference less noisy)."""
        if self.seed is None:
            return None
        key = f"{self.problem.id}:{self.sample_index}:{self.seed}".encode()
        return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") & 0x7FFFFFFF


@dataclass
class Completion:
    request_id: str
    text: str
    finish_reason: str = "unknown"  # stop | length | error | unknown
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    teacher_logprob: float | None = None
    teacher_entropy: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    name: str
    model: str
    revision: str | None

    def identity_params(self) -> dict:
        """Backend settings that change what is generated (stored with the sampling params; part of the id).
        Reads only `self.config`, so the identity is known from the class and its config without building the
        backend (`BackendSpec.declared_identity`)."""

    def generate(self, requests: Sequence[Request]) -> Iterator[Completion]:
        """Yield one Completion per request, in any order; raise BackendError when it cannot go on."""

    def close(self) -> None: ...


def approx_tokens(text: str) -> int:
    """A tokenizer-free token estimate (about 4 characters per token) for backends without a tokenizer."""
    return max(1, (len(text) + 3) // 4) if text else 0


def normalise_finish_reason(reason: str | None) -> str:
    if reason in ("stop", "eos", "stop_sequence", "end_turn"):
        return "stop"
    if reason in ("length", "max_tokens"):
        return "length"
    if reason == "error":
        return "error"
    return "unknown"
