"""Evaluation suites: YAML files naming benchmarks, each with its problems, prompt, sampling, k, verifier and metrics.

A suite is validated like a recipe (pydantic, unknown keys rejected by name, `file:line: field` errors).
`defaults:` is merged into every benchmark before validation, so the study's settings are written once.
Shipped suites live in curate/evaluate/suites/ (`paper`, `math`, `countdown`, `smoke`); `--suite PATH` loads
any file. Command-line overrides (`--n`, `--max-tokens`, `--set key=value` or `--set BENCH.key=value`) are
applied to the benchmark mappings before validation, so they are checked exactly like the file, and they
enter each benchmark's settings hash: a smoke-sized result is never mixed with a full one.

Problems: `task` names a task of `curate tasks list`; by default a benchmark takes the stored eval-split
problems whose `source` is the task's (or `source:`), narrowed by `where` and cut to the first `limit` by id.
`auto_add` instead builds the exact problem set from the task (generated or shipped with a package, no
network) and adds it to the store when missing.
Test: tests/test_evaluate.py.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Optional

from pydantic import Field, ValidationError, field_validator, model_validator

from curate.config import StrictModel, parse_set, resolve_shipped, set_dotted, shipped_dir, shipped_names
from curate.errors import ConfigError
from curate.evaluate.metrics import parse_metric
from curate.generate.base import SamplingParams
from curate.generate.prompting import DEFAULT_TEMPLATE
from curate.records import content_hash
from curate.store.sqlcheck import predicate_problem
from curate.yamlfile import format_validation_errors, load_yaml

SUITE_DIR = shipped_dir("suites")
NAME = r"^[A-Za-z0-9_.\-]+$"


class Sampling(StrictModel):
    """The study's evaluation settings by default: T 0.6, top-p 0.95, up to 32,768 new tokens."""

    temperature: float = Field(default=0.6, ge=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    top_k: int = -1
    min_p: float = Field(default=0.0, ge=0, lt=1)
    max_tokens: int = Field(default=32768, ge=1, le=1_048_576)

    def params(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, min_p=self.min_p,
                              max_tokens=self.max_tokens)

    @field_validator("top_k")
    @classmethod
    def _top_k(cls, v: int) -> int:
        if v < -1 or v == 0:
            raise ValueError("top_k must be -1 (off) or >= 1")
        return v


class AutoAdd(StrictModel):
    """Problems built from the task itself (generated, or shipped with a package) and added when missing."""

    size: Optional[int] = Field(default=None, ge=1, le=1_000_000)
    seed: int = 1000
    options: dict[str, Any] = Field(default_factory=dict)


class Benchmark(StrictModel):
    name: str = Field(min_length=1, pattern=NAME)
    task: str = Field(min_length=1)
    source: Optional[str] = None  # problems.source when it is not the task's name
    where: Optional[str] = None  # one more predicate over the `problems` view
    limit: Optional[int] = Field(default=None, ge=1)
    auto_add: Optional[AutoAdd] = None
    n: int = Field(default=1, ge=1, le=1024)
    metrics: list[str] = Field(default_factory=lambda: ["avg"], min_length=1)
    verifier: str = Field(min_length=1)
    verifier_options: dict[str, Any] = Field(default_factory=dict)
    sampling: Sampling = Field(default_factory=Sampling)
    template: str = DEFAULT_TEMPLATE
    system: Optional[str] = None
    seed: int = 0

    @field_validator("template")
    @classmethod
    def _has_question(cls, v: str) -> str:
        if "{question}" not in v:
            raise ValueError("the template must contain {question}")
        return v

    @field_validator("where")
    @classmethod
    def _one_expression(cls, v: Optional[str]) -> Optional[str]:
        problem = predicate_problem(v, "problems") if v is not None else None
        if problem:  # DuckDB's own parser (store/sqlcheck.py), as for recipe predicates
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _metrics_fit(self) -> "Benchmark":
        for m in self.metrics:
            if m in ("avg", "maj"):
                continue
            try:
                kind, k = parse_metric(m)
            except ValueError as e:
                raise ValueError(str(e)) from None
            if k is not None and k > self.n:
                raise ValueError(f"metric {m} needs n >= {k} samples per problem (n is {self.n})")
        return self

    def metric_names(self) -> list[str]:
        """Metric labels as stored: `avg` and `maj` take the benchmark's n (avg@3, maj@3)."""
        return [f"{m}@{self.n}" if m in ("avg", "maj") else m for m in self.metrics]

    @property
    def problem_source(self) -> str:
        return self.source or self.task.replace("-", "_")

    def settings_hash(self, backend: dict) -> str:
        """Everything that shapes this benchmark's samples and scores, plus the backend that produced them."""
        return content_hash("eval-settings", self.model_dump(mode="json"), backend)[:16]


class LmEvalTask(StrictModel):
    """A benchmark run by lm-evaluation-harness (curate/evaluate/lmeval.py) instead of generate + verify."""

    name: str = Field(min_length=1, pattern=NAME)  # the benchmark's name in `evals`
    task: str = Field(min_length=1)  # the harness's task name
    data: Optional[str] = None  # a local .json/.jsonl/.csv/.parquet file used instead of the task's Hub dataset
    limit: Optional[int] = Field(default=None, ge=1)
    max_tokens: Optional[int] = Field(default=None, ge=1)  # generation tasks: the most new tokens

    @field_validator("data")
    @classmethod
    def _data_file(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and Path(v).suffix.lower() not in (".json", ".jsonl", ".csv", ".parquet"):
            raise ValueError(f"data must be a .json, .jsonl, .csv or .parquet file, got {v!r}")
        return v


class Suite(StrictModel):
    name: str = Field(min_length=1, pattern=NAME)
    description: str = ""
    defaults: dict[str, Any] = Field(default_factory=dict)
    benchmarks: list[Benchmark] = Field(default_factory=list)
    lm_eval: list[LmEvalTask] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> "Suite":
        names = [b.name for b in self.benchmarks] + [t.name for t in self.lm_eval]
        if not names:
            raise ValueError("a suite needs at least one entry in benchmarks or lm_eval")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"benchmark names must be unique: {', '.join(dup)}")
        return self

    def select(self, names: list[str] | None) -> "Suite":
        if not names:
            return self
        known = {b.name for b in self.benchmarks} | {t.name for t in self.lm_eval}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(f"suite {self.name} has no benchmark {', '.join(unknown)}", hint=f"it has {', '.join(sorted(known))}")
        return self.model_copy(update={"benchmarks": [b for b in self.benchmarks if b.name in names],
                                       "lm_eval": [t for t in self.lm_eval if t.name in names]})


# ------------------------------------------------------------------ loading


def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def apply_overrides(benchmarks: list[dict], overrides: dict[str, str]) -> list[dict]:
    """`key=value` applies to every benchmark; `BENCH.key=value` (BENCH a benchmark name) to that one."""
    names = {b.get("name") for b in benchmarks}
    out = [copy.deepcopy(b) for b in benchmarks]
    for key, raw in overrides.items():
        parts = key.split(".")
        target = parts[0] if parts[0] in names and len(parts) > 1 else None
        path = parts[1:] if target else parts
        value = parse_set(f"{key}={raw}")[1] if isinstance(raw, str) else raw
        for b in out:
            if target is None or b.get("name") == target:
                set_dotted(b, ".".join(path), value, where=f"--set {key}", what="benchmark", create=True)
    return out


def _validate(data: Any, origin: str, root: Any, overrides: dict[str, Any]) -> Suite:
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: a suite is a YAML mapping with name and benchmarks, got {type(data).__name__}")
    data = dict(data)
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{origin}: defaults: expected a mapping of benchmark fields")
    raw_tasks = data.get("lm_eval")
    task_names = {t.get("name") for t in raw_tasks if isinstance(t, dict)} if isinstance(raw_tasks, list) else set()
    # `BENCH.key=value` for an lm_eval entry goes to it alone; `limit=N` for every benchmark also limits them
    for_tasks = {k: v for k, v in overrides.items() if k.split(".")[0] in task_names or k == "limit"}
    overrides = {k: v for k, v in overrides.items() if k.split(".")[0] not in task_names}
    if for_tasks and isinstance(raw_tasks, list) and all(isinstance(t, dict) for t in raw_tasks):
        data["lm_eval"] = apply_overrides(raw_tasks, for_tasks)
    raw_benchmarks = data.get("benchmarks")
    if isinstance(raw_benchmarks, list) and all(isinstance(b, dict) for b in raw_benchmarks):
        merged = [_deep_merge(defaults, b) for b in raw_benchmarks]
        data["benchmarks"] = apply_overrides(merged, overrides) if overrides else merged
    try:
        return Suite.model_validate(data)
    except ValidationError as e:
        msg = format_validation_errors(e, origin, root)
        if overrides:
            msg += f" (with overrides {', '.join(f'{k}={v}' for k, v in overrides.items())})"
        raise ConfigError(msg, hint="see docs/evaluation.md for every suite field") from None


def resolve_suite_path(name_or_path: str) -> Path:
    return resolve_shipped("suites", name_or_path)


def shipped_suites() -> list[str]:
    return shipped_names("suites")


def load_suite(name_or_path: str, overrides: dict[str, Any] | None = None) -> Suite:
    """Read, merge defaults, apply overrides and validate a suite (a shipped name or a YAML path)."""
    path = resolve_suite_path(name_or_path)
    data, root = load_yaml(path, what="suite")
    return _validate(data, str(path), root, overrides or {})
