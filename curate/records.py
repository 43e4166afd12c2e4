"""The three records every stage passes along: Problem, Sample (a trace) and Verdict.

Ids are content hashes of canonical JSON, so re-adding the same record anywhere is a no-op:
- Problem.id  = hash(source, domain, prompt, reference)
- Sample.id   = hash(problem id, generator identity (backend, model, revision, sampling params), sample index, seed)
Verdict lives in the leaf package `verifiers` and is re-exported here.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from verifiers.verdict import STATUSES, Verdict

__all__ = ["Problem", "Sample", "Verdict", "STATUSES", "canonical_json", "content_hash", "FINISH_REASONS",
           "sample_ids_of"]

ID_HEX = 32  # 128 bits: collision-free at any realistic store size
FINISH_REASONS = ("stop", "length", "error", "unknown")
DOMAINS = ("math", "code", "game", "science", "logic", "safety", "general")
SPLITS = ("train", "eval")


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values always serialise to equal strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def content_hash(*parts: Any) -> str:
    return hashlib.sha256(canonical_json(list(parts)).encode("utf-8")).hexdigest()[:ID_HEX]


@dataclass(frozen=True)
class Problem:
    source: str
    domain: str
    prompt: str
    reference: Any = None  # gold answer, test cases or solver data; any JSON value
    metadata: dict = field(default_factory=dict)
    split: str = "train"
    id: str = ""

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        if not self.id:
            object.__setattr__(self, "id", content_hash("problem", self.source, self.domain, self.prompt, self.reference))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> "Problem":
        return cls(**{k: d[k] for k in ("source", "domain", "prompt", "reference", "metadata", "split", "id") if k in d})


@dataclass(frozen=True)
class Sample:
    problem_id: str
    text: str
    backend: str
    model: str
    params: dict = field(default_factory=dict)  # every sampling parameter, stored per row
    sample_index: int = 0
    seed: int | None = None
    revision: str | None = None
    finish_reason: str = "unknown"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    teacher_logprob: float | None = None  # mean token logprob under the teacher, when known
    teacher_entropy: float | None = None  # mean token entropy under the teacher, when known
    latency_s: float | None = None
    run_id: str | None = None
    id: str = ""

    def __post_init__(self) -> None:
        if self.finish_reason not in FINISH_REASONS:
            raise ValueError(f"finish_reason must be one of {FINISH_REASONS}, got {self.finish_reason!r}")
        if not self.id:
            object.__setattr__(self, "id", self.identity(self.problem_id, self.generator, self.sample_index, self.seed))

    @property
    def generator(self) -> dict:
        return {"backend": self.backend, "model": self.model, "revision": self.revision, "params": self.params}

    @staticmethod
    def identity(problem_id: str, generator: dict, sample_index: int, seed: int | None) -> str:
        """The id a sample will have, computable before generating it (this is how runs resume)."""
        return content_hash("sample", problem_id, generator, sample_index, seed)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> "Sample":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _scalar_json(x: Any) -> str:
    return str(x) if type(x) is int else ("null" if x is None else canonical_json(x))


def sample_ids_of(generator: dict) -> Callable[[str, int, int | None], str]:
    """`Sample.identity` with `generator` fixed, for planning many samples of one generator: the same ids, but the
    generator's JSON is written once instead of once per sample (most of the work in a plan of millions)."""
    middle = "," + canonical_json(generator) + ","

    def identity(problem_id: str, sample_index: int, seed: int | None) -> str:
        # canonical_json(["sample", problem_id, generator, sample_index, seed]), written in parts
        text = '["sample",' + canonical_json(problem_id) + middle + _scalar_json(sample_index) + "," + _scalar_json(seed) + "]"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:ID_HEX]

    return identity
