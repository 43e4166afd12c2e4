"""The study file: one YAML that names a grid of data conditions x base models x seeds, the training
config with its per-axis overrides, the eval suite with its checkpoint steps, and where outputs go.

Validation is strict (pydantic, unknown keys rejected by name) and every error names the file, the
line and the field path, e.g. `studies/x.yaml:12: conditions.1.recipe: no such recipe 'math-cott'`.
`load_study(path)` returns a `StudySpec` plus the folder relative paths resolve against.
Test: tests/test_study.py.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Field, ValidationError, field_validator, model_validator

from curate.config import StrictModel, format_errors as config_format_errors, resolve_shipped, shipped_dir
from curate.errors import ConfigError
from curate.yamlfile import line_of, load_yaml

# A name becomes a folder name (OUT/runs/CELL, OUT/models/NAME, OUT/mixtures/NAME) and a command-line value:
# it starts with a letter or digit, so `.`, `..`, a hidden folder or an option such as `--store` cannot be one.
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
# Slurm values are written into `#SBATCH` lines of a shell script: one line each, no shell characters.
SLURM_VALUE = r"^[A-Za-z0-9_.:,+=@/\-]+$"
PREPARE_COMMANDS = ("tasks add", "generate", "verify", "import")  # what fills a store; nothing else runs as `prepare`
TINY = "tiny"  # a model path naming curate's tiny random model, built locally (no download)


class Condition(StrictModel):
    """One data condition: a recipe (a shipped name or a path relative to the study file), optionally
    with dotted-key overrides, or a sweep that expands into one condition per point."""

    name: str = Field(min_length=1, pattern=NAME)
    recipe: str = Field(min_length=1)
    overrides: dict[str, Any] = Field(default_factory=dict)
    sweep: dict[str, list[Any]] = Field(default_factory=dict)

    @field_validator("sweep")
    @classmethod
    def _non_empty(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in v.items():
            if not values:
                raise ValueError(f"sweep {key} has no values")
        return v


class Model(StrictModel):
    """A base model: a hub id, a local folder, or `tiny` (curate's tiny random Llama, built into the
    study's output folder). `params_b` (billions) feeds the GPU-hour estimate; by default it is read
    from the name (Qwen3-4B-Base -> 4)."""

    name: str = Field(min_length=1, pattern=NAME)
    path: str = Field(min_length=1)
    size: Optional[str] = None  # with `path: tiny`: a size of curate.study.tiny.SIZES (default bpe-64x2)
    tokenizer: Optional[str] = None
    params_b: Optional[float] = Field(default=None, gt=0)
    set: dict[str, Any] = Field(default_factory=dict)  # training overrides for this model's runs

    @model_validator(mode="after")
    def _tiny_size(self) -> "Model":
        from curate.study.tiny import SIZES

        if self.size is not None and (self.path != TINY or self.size not in SIZES):
            raise ValueError(f"size names a tiny model size ({', '.join(SIZES)}) and needs path: tiny")
        return self

    def params(self) -> Optional[float]:
        if self.params_b is not None:
            return self.params_b * 1e9
        if self.path == TINY:
            from curate.study.tiny import DEFAULT_SIZE, SIZES

            return SIZES[self.size or DEFAULT_SIZE].params
        m = re.search(r"(\d+(?:\.\d+)?)\s*[Bb](?![a-z])", self.path) or re.search(r"(\d+(?:\.\d+)?)[Bb]", self.name)
        return float(m.group(1)) * 1e9 if m else None


class Train(StrictModel):
    """The training config (a file or a shipped config name such as `study` or `debug`) and overrides:
    `set` for every run, `per_condition` keyed by condition name (per-model ones live on the model)."""

    config: str = Field(min_length=1)
    set: dict[str, Any] = Field(default_factory=dict)
    per_condition: dict[str, dict[str, Any]] = Field(default_factory=dict)


class Eval(StrictModel):
    """The suite and the checkpoint steps to evaluate; `base` adds the base model as step 0. The other
    fields become `curate eval` options (CPU runs use e.g. backend hf, n 1, max_tokens 64, limit)."""

    suite: str = Field(min_length=1)
    steps: list[int] = Field(min_length=1)
    base: bool = True
    backend: Optional[Literal["hf", "vllm", "openai"]] = None
    n: Optional[int] = Field(default=None, ge=1)
    max_tokens: Optional[int] = Field(default=None, ge=1)
    limit: Optional[int] = Field(default=None, ge=1)
    set: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)  # backend config fields (`-o key=value`), e.g. batch_size

    @field_validator("steps")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(s < 1 for s in v):
            raise ValueError("checkpoint steps start at 1 (the base model is step 0: set eval.base)")
        return sorted(set(v))


class Slurm(StrictModel):
    """Written into each node's sbatch script: values are single words, `sbatch` options one `-...` line each.
    `setup` lines are shell commands by design and run as you: read a study file's setup before you submit it."""

    partition: Optional[str] = Field(default=None, pattern=SLURM_VALUE)
    account: Optional[str] = Field(default=None, pattern=SLURM_VALUE)
    time: str = Field(default="24:00:00", pattern=SLURM_VALUE)
    gpus_train: int = Field(default=8, ge=0)  # GPUs of one training node
    gpus_eval: int = Field(default=1, ge=0)
    cpus: int = Field(default=8, ge=1)
    sbatch: list[str] = Field(default_factory=list)  # extra `#SBATCH` options, e.g. --qos=high
    setup: list[str] = Field(default_factory=list)  # shell lines before each node (module load, venv)

    @field_validator("sbatch", "setup")
    @classmethod
    def _one_line(cls, v: list[str], info) -> list[str]:
        for item in v:
            if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in item):
                raise ValueError(f"{info.field_name} items are one line each, without control characters: {item[:60]!r}")
            if info.field_name == "sbatch" and not item.startswith("-"):
                raise ValueError(f"sbatch items are sbatch options such as --qos=high, got {item[:60]!r}")
        return v


class Executor(StrictModel):
    kind: Literal["local", "slurm"] = "local"
    gpus: list[int] = Field(default_factory=list)  # local: one training or eval node per GPU at once
    retries: int = Field(default=0, ge=0)  # extra attempts of a failed node within one `study run`
    # local: nodes side by side on the CPU (training and eval too when no GPU is listed); auto: the usable CPUs, at most 4
    jobs: Union[Literal["auto"], Annotated[int, Field(ge=1)]] = "auto"
    slurm: Slurm = Slurm()


class StudySpec(StrictModel):
    name: str = Field(min_length=1, pattern=NAME)
    description: str = ""
    output: str = Field(min_length=1)  # relative to the current directory; `--out` overrides
    store: Optional[str] = None  # the trace store (relative to the current directory); default OUTPUT/store
    # curate command lines (without the leading `curate`) that fill the store before mixing; `--store`
    # is appended. They are nodes like any other, so they run once.
    prepare: list[str] = Field(default_factory=list)
    conditions: list[Condition] = Field(min_length=1)
    models: list[Model] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    train: Train
    eval: Eval
    report: bool = True
    executor: Executor = Executor()

    @model_validator(mode="after")
    def _unique(self) -> "StudySpec":
        for what, names in (("condition", [c.name for c in self.conditions]), ("model", [m.name for m in self.models])):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"{what} names must be unique; repeated: {', '.join(dup)}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds must be unique")
        unknown = sorted(set(self.train.per_condition) - {c.name for c in self.conditions})
        if unknown:
            raise ValueError(f"train.per_condition names unknown conditions: {', '.join(unknown)}")
        return self


def read_yaml(path: Path) -> tuple[Any, Any]:
    """(data, node tree for line numbers), through the shared safe loader."""
    return load_yaml(path, what="study")


def format_errors(err: ValidationError, origin: str, root: Any = None) -> str:
    return config_format_errors(err, origin, root, what="study")


def field_error(origin: str, root: Any, loc: tuple, msg: str, hint: str | None = None) -> ConfigError:
    """A `file:line: field: message` error for a check made after validation (unknown recipe, ...)."""
    line = line_of(root, loc) if root is not None else None
    path = ".".join(str(p) for p in loc)
    return ConfigError(f"{origin}:{line}: {path}: {msg}" if line else f"{origin}: {path}: {msg}", hint=hint)


def study_dir() -> Path:
    """The shipped studies (`studies/` of the checkout, or the installed package data)."""
    return shipped_dir("studies")


def resolve_study_path(name_or_path: str | Path) -> Path:
    return resolve_shipped("studies", name_or_path, what="study")


def load_study(path: str | Path) -> tuple[StudySpec, Any]:
    """Read and validate a study file (path or shipped name); returns (spec, yaml node tree)."""
    path = resolve_study_path(path)
    data, root = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a study is a YAML mapping of fields, got {type(data).__name__}")
    try:
        return StudySpec.model_validate(data), root
    except ValidationError as e:
        raise ConfigError(format_errors(e, str(path), root), hint="see docs/study.md for every study field") from None
