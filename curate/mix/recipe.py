"""The recipe model: a YAML file that fixes every choice a training mixture depends on.

A recipe names its sources (SQL predicates over the store's `traces` view, each with a weight or a
row quota), how one trace is chosen per problem, the quality knobs (share of verified-incorrect
traces, thinking removed, truncation, reference short solutions), feature filters, dedup,
decontamination against the store's eval split, the output format, and an optional sweep.

Validation is strict (pydantic, unknown keys rejected); every error names the file, the line and the
field path, e.g. `recipes/x.yaml:14: quality.incorrect_fraction: Input should be less than or equal
to 1`. `recipe_hash` is a hash of the validated recipe (defaults filled in), so comments and key order
do not change it while any change of meaning does.
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from curate.config import StrictModel, format_errors, parse_set, resolve_shipped, set_dotted, shipped_dir
from curate.errors import ConfigError
from curate.records import canonical_json, content_hash
from curate.store.sqlcheck import predicate_problem
from curate.yamlfile import load_yaml, parse_scalar

# `{question}` is replaced literally (not str.format), so braces such as \boxed{} need no escaping.
STUDY_TEMPLATE = "{question}\nPlease reason step by step, and put your final answer within \\boxed{}."
SELECTIONS = ("one_random_correct", "all_correct", "shortest_correct", "longest_correct", "any")


def _predicate(v: Optional[str], view: str) -> Optional[str]:
    """One boolean SQL expression over `view`, checked by DuckDB's parser (store/sqlcheck.py)."""
    if v is not None:
        problem = predicate_problem(v, view)
        if problem:
            raise ValueError(problem)
    return v


class Source(StrictModel):
    """One slice of the store. `where` is a SQL predicate over the `traces` view."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    where: str = "true"
    weight: Optional[float] = Field(default=None, gt=0)
    quota: Optional[int] = Field(default=None, ge=1)

    @field_validator("where")
    @classmethod
    def _one_expression(cls, v: str) -> str:
        return _predicate(v, "traces")

    @model_validator(mode="after")
    def _weight_or_quota(self) -> "Source":
        if self.weight is not None and self.quota is not None:
            raise ValueError("give either weight or quota, not both")
        return self


class Selection(StrictModel):
    """How traces are chosen for each problem."""

    per_problem: Literal["one_random_correct", "all_correct", "shortest_correct", "longest_correct", "any"] = "one_random_correct"
    # Keep only problems that also have a verified-incorrect trace. A sweep over incorrect_fraction
    # sets this so every point of the sweep trains on the same questions.
    require_incorrect: bool = False
    # A predicate over `traces` naming the pool of another condition (e.g. Math-CoT's teacher): only
    # questions that also have a correct trace there (same filters; matched by prompt key across
    # sources) are chosen, so two teachers are compared on the same questions.
    same_questions_as: Optional[str] = None

    @field_validator("same_questions_as")
    @classmethod
    def _one_statement(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and (";" in v or not v.strip()):
            raise ValueError("a predicate is one non-empty SQL expression; ';' is not allowed")
        return v


class Filters(StrictModel):
    """Trace-health filters over the `features` view; each is off when null/false."""

    max_tokens: Optional[int] = Field(default=None, ge=1)
    no_truncation: bool = False
    has_answer: bool = False
    think_closed: bool = False
    max_repetition: Optional[float] = Field(default=None, ge=0)
    where: Optional[str] = None  # one more predicate over `traces`, applied to every source

    @field_validator("where")
    @classmethod
    def _one_expression(cls, v: Optional[str]) -> Optional[str]:
        return _predicate(v, "traces")


class Quality(StrictModel):
    """The controlled variable of an ablation."""

    incorrect_fraction: float = Field(default=0.0, ge=0, le=1)
    # Incorrect traces replace correct ones of the same problem from the same length bucket;
    # buckets are geometric in completion tokens with this ratio (1.5: 100-150, 150-225, ...).
    length_bucket_ratio: float = Field(default=1.5, gt=1)
    strip_thinking: bool = False
    truncate_fraction: float = Field(default=0.0, ge=0, le=1)
    truncate_keep: float = Field(default=0.5, gt=0, lt=1)  # share of the response kept when truncating
    reference_solution: bool = False
    # A problem without a reference solution is dropped (none) or answered with its boxed gold answer.
    reference_fallback: Literal["none", "boxed_answer"] = "none"

    @model_validator(mode="after")
    def _compatible(self) -> "Quality":
        if self.reference_solution and self.incorrect_fraction > 0:
            raise ValueError("reference_solution replaces every response; incorrect_fraction must be 0")
        if self.reference_fallback != "none" and not self.reference_solution:
            raise ValueError("reference_fallback applies only with reference_solution: true")
        return self


class Dedup(StrictModel):
    exact: bool = True  # identical prompts after case/whitespace normalisation
    near: bool = True  # near-duplicate prompts (MinHash over word shingles, Jaccard >= threshold)
    near_threshold: float = Field(default=0.8, gt=0, le=1)
    shingle: int = Field(default=3, ge=1, le=16)
    # shingles in at least this share of the candidate prompts are template, left out of the comparison
    common_share: float = Field(default=0.1, gt=0, le=1)


class Decontaminate(StrictModel):
    enabled: bool = True
    n: int = Field(default=13, ge=3, le=64)  # word n-grams shared with an eval prompt
    check: list[Literal["prompt", "trace"]] = Field(default_factory=lambda: ["prompt", "trace"])
    action: Literal["drop", "report"] = "drop"
    # n-grams in at least this share of one benchmark's prompts, or of the candidate prompts, are template
    common_share: float = Field(default=0.1, gt=0, le=1)
    eval_where: Optional[str] = None  # predicate over `problems` narrowing which eval problems count

    @field_validator("eval_where")
    @classmethod
    def _one_expression(cls, v: Optional[str]) -> Optional[str]:
        return _predicate(v, "problems")


class Output(StrictModel):
    system_prompt: Optional[str] = None
    prompt_template: str = STUDY_TEMPLATE
    parquet: bool = True

    @field_validator("prompt_template")
    @classmethod
    def _has_question(cls, v: str) -> str:
        if "{question}" not in v:
            raise ValueError("prompt_template must contain {question}")
        return v


class Recipe(StrictModel):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.=\-]+$")
    description: str = ""
    seed: int = 0
    size: int = Field(ge=1)
    allow_smaller: bool = False
    sources: list[Source] = Field(min_length=1)
    selection: Selection = Selection()
    filters: Filters = Filters()
    quality: Quality = Quality()
    dedup: Dedup = Dedup()
    decontaminate: Decontaminate = Decontaminate()
    output: Output = Output()
    # dotted key -> values; `curate mix` writes one dataset per combination
    sweep: dict[str, list[Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> "Recipe":
        names = [s.name for s in self.sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"source names must be unique; repeated: {', '.join(dup)}")
        quota = sum(s.quota or 0 for s in self.sources)
        if quota > self.size:
            raise ValueError(f"source quotas add up to {quota}, more than size {self.size}")
        if quota < self.size and not any(s.quota is None for s in self.sources):
            raise ValueError(f"source quotas add up to {quota} but size is {self.size}; give one source a weight")
        q, sel = self.quality, self.selection.per_problem
        if q.incorrect_fraction > 0 and sel in ("all_correct", "any"):
            raise ValueError(f"quality.incorrect_fraction needs a one-trace-per-problem selection, not {sel}")
        for key in self.sweep:
            if key == "sweep" or key.startswith("sweep."):
                raise ValueError("a sweep cannot sweep itself")
        return self

    def hash(self) -> str:
        return content_hash("recipe", self.model_dump(mode="json"))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True, width=100)

    def expand_sweep(self) -> list[tuple[str, "Recipe"]]:
        """One (suffix, recipe) per sweep combination; [("", self)] when there is no sweep."""
        if not self.sweep:
            return [("", self)]
        combos: list[list[tuple[str, Any]]] = [[]]
        for key in sorted(self.sweep):
            combos = [c + [(key, v)] for c in combos for v in self.sweep[key]]
        out = []
        base = self.model_dump(mode="json")
        base["sweep"] = {}
        for combo in combos:
            data = copy.deepcopy(base)
            for key, value in combo:
                set_dotted(data, key, value, where="sweep", what="recipe")
            suffix = "-".join(f"{key.split('.')[-1]}={_fmt(value)}" for key, value in combo)
            suffix = re.sub(r"[^A-Za-z0-9_.=\-]+", "_", suffix)  # also a directory name
            data["name"] = f"{self.name}-{suffix}"
            out.append((suffix, validate_recipe(data, origin=f"sweep {suffix}")))
        return out


def _fmt(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def parse_set_option(spec: str) -> tuple[str, Any]:
    """`size=512` or `quality.reference_fallback=boxed_answer` -> (key, value); the value is read as YAML."""
    return parse_set(spec)


def with_values(recipe: "Recipe", values: list[tuple[str, Any]]) -> "Recipe":
    """The recipe with some fields replaced (`curate mix --set`), validated again as a whole."""
    data = recipe.model_dump(mode="json")
    for key, value in values:
        set_dotted(data, key, value, where="--set", what="recipe")
    return validate_recipe(data, origin="recipe with --set " + ", ".join(k for k, _ in values))


def parse_sweep_option(spec: str) -> tuple[str, list[Any]]:
    """`quality.incorrect_fraction=0,0.25,1` -> (key, [0, 0.25, 1]); values parsed as YAML scalars."""
    key, sep, values = spec.partition("=")
    if not sep or not key.strip() or not values.strip():
        raise ConfigError(f"--sweep {spec!r}: expected KEY=V1,V2,... e.g. quality.incorrect_fraction=0,0.5,1")
    return key.strip(), [parse_scalar(raw.strip(), f"--sweep {key.strip()}") for raw in values.split(",")]


def validate_recipe(data: Any, origin: str = "recipe", root: Any = None) -> Recipe:
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: a recipe is a YAML mapping of fields, got {type(data).__name__}")
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_errors(e, origin, root, what="recipe"), hint="see docs/mixing.md for every recipe field") from None


def load_recipe(path: str | Path, overrides: Optional[dict[str, list[Any]]] = None) -> Recipe:
    """Read and validate a recipe file. `overrides` (from --sweep) replace or add sweep keys."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such recipe file", hint="`curate recipes list` shows the shipped recipes")
    data, root = load_yaml(path, what="recipe")
    recipe = validate_recipe(data, origin=str(path), root=root)
    if overrides:
        for key in overrides:
            probe = recipe.model_dump(mode="json")
            set_dotted(probe, key, None, where=f"--sweep {key}", what="recipe")  # the key must name a real field
        data = recipe.model_dump(mode="json")
        data["sweep"] = {**data["sweep"], **overrides}
        recipe = validate_recipe(data, origin=str(path))
    return recipe


def recipe_dir() -> Path:
    """The shipped recipes (`recipes/` of the checkout, or the installed package data)."""
    return shipped_dir("recipes")


def list_recipes(directory: Optional[Path] = None) -> list[Path]:
    d = directory or recipe_dir()
    return sorted(p for p in d.glob("*.yaml")) if d.is_dir() else []


def resolve_recipe_path(name_or_path: str) -> Path:
    """A path as given, or a shipped recipe's name (`math-cot` -> recipes/math-cot.yaml)."""
    return resolve_shipped("recipes", name_or_path)


def describe(recipe: Recipe) -> dict:
    """A JSON-ready view of a recipe with its hash (for `curate recipes show --json`)."""
    return {"name": recipe.name, "hash": recipe.hash(), "recipe": json.loads(canonical_json(recipe.model_dump(mode="json")))}


def catalog(directory: Optional[Path] = None) -> list[dict]:
    """The shipped (or given directory's) recipes: name, file, size, sweep points, hash, description.

    A file that does not validate is listed with its error instead of hiding it."""
    rows = []
    for p in list_recipes(directory):
        try:
            r = load_recipe(p)
            rows.append({"name": r.name, "file": p.name, "size": r.size, "datasets": len(r.expand_sweep()),
                         "hash": r.hash()[:12], "description": r.description, "error": None})
        except ConfigError as e:
            rows.append({"name": p.stem, "file": p.name, "size": None, "datasets": None, "hash": None,
                         "description": "", "error": e.message})
    return rows


def validate_files(paths: list[str]) -> list[dict]:
    """Validate each recipe (path or shipped name): [{file, ok, name, hash, error}]."""
    out = []
    for raw in paths:
        p = Path(raw)
        try:
            p = resolve_recipe_path(raw)
            r = load_recipe(p)
            r.expand_sweep()  # every sweep point must validate too
            out.append({"file": str(p), "ok": True, "name": r.name, "hash": r.hash(), "error": None})
        except ConfigError as e:
            out.append({"file": str(p), "ok": False, "name": None, "hash": None, "error": e.message})
    return out
