"""Task registry: every problem source registers a TaskSpec (name, config dataclass, loader).

Built-in task files all share one shape, after reasoning-gym: a name, a frozen config dataclass whose
`__post_init__` validates it, a generator seeded by `(seed, index)` through `task_rng`, an oracle answer,
and `register(...)` as the last line. `task_rng` hashes both numbers (sha256), so different seeds give
independent streams: with `Random(seed + index)`, seed 1's problem i would be seed 0's problem i + 1, and
an eval set drawn with the next seed would repeat the train set. Loaders of existing data (Hugging Face datasets, files, HumanEval) register the same way
so `curate tasks list` shows everything and `curate tasks add NAME --set key=value` configures any of them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from curate.errors import InputError
from curate.records import SPLITS, Problem

__all__ = ["TaskSpec", "register", "get_task", "task_names", "build_config", "check_split", "task_rng", "stream_seed", "problem_key", "TASKS"]

TASKS: dict[str, "TaskSpec"] = {}


@dataclass(frozen=True)
class TaskSpec:
    """One registered problem source.

    load(config, size, seed, split) yields Problems; `size=None` means "all" for loaders and is
    required for generators. oracle(problem) returns an answer its verifier accepts (None: no oracle).
    key(reference) returns a structured identity of the problem (Countdown: its numbers and target), or
    None; mixtures dedup and decontaminate keyed problems by this key instead of by their templated text.
    """

    name: str
    description: str
    domain: str
    config_cls: type
    load: Callable[[Any, int | None, int, str], Iterator[Problem]]
    verifier: str | None = None
    oracle: Callable[[Problem], str | None] | None = None
    generated: bool = False  # True: procedurally generated, needs --size; False: loads existing rows
    default_split: str = "train"
    key: Callable[[Any], str | None] | None = None


def stream_seed(seed: int, index: int | None = None) -> int:
    """A 64-bit seed derived from sha256 of (seed, index): nearby inputs give unrelated outputs."""
    key = f"{seed}" if index is None else f"{seed}:{index}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def task_rng(seed: int, index: int) -> random.Random:
    """The random generator of problem `index` of the stream `seed` (independent across seeds and indices)."""
    return random.Random(stream_seed(seed, index))


def register(spec: TaskSpec) -> TaskSpec:
    if spec.name in TASKS:
        raise ValueError(f"task {spec.name!r} is registered twice")
    TASKS[spec.name] = spec
    return spec


def task_names() -> list[str]:
    return sorted(TASKS)


def get_task(name: str) -> TaskSpec:
    """Look a task up by name; `gpqa-diamond` and `gpqa_diamond` are the same task."""
    try:
        return TASKS[name.replace("-", "_")]
    except KeyError:
        raise InputError(
            f"unknown task or preset {name!r}",
            hint=f"known: {', '.join(task_names())}; a .jsonl/.parquet path also works (see `curate tasks list`)",
        ) from None


def problem_key(source: str, reference: Any) -> str | None:
    """The structured key of a problem of this source (None: the source has none, or this reference is not one)."""
    spec = TASKS.get(source.replace("-", "_")) if source else None
    if spec is None or spec.key is None:
        return None
    try:
        return spec.key(reference)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return split


def _coerce(name: str, typ: Any, raw: Any) -> Any:
    """Turn a `--set key=value` value (a YAML scalar, or a string) into the dataclass field's type; JSON is
    accepted for containers."""
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if not isinstance(raw, str):
        if isinstance(raw, list) and (origin in (tuple, list) or typ in (tuple, list)):
            return tuple(raw)
        if typ is str and raw is not None:
            return str(raw)
        return raw
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if raw.lower() in ("none", "null", ""):
            return None
        return _coerce(name, non_none[0], raw) if len(non_none) == 1 else raw
    try:
        if typ is bool:
            low = raw.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if typ is int:
            return int(raw)
        if typ is float:
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError(raw)
            return value
        if typ is str:
            return raw
        if origin in (tuple, list) or typ in (tuple, list):
            val = json.loads(raw) if raw.strip().startswith("[") else [v.strip() for v in raw.split(",") if v.strip()]
            inner = args[0] if args else str
            val = [_coerce(name, inner, v) if isinstance(v, str) and inner is not str else v for v in val]
            return tuple(val)
        if origin is dict or typ is dict:
            val = json.loads(raw)
            if not isinstance(val, dict):
                raise ValueError(raw)
            return val
    except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than Python recurses
        kind = "a finite float" if typ is float else getattr(typ, "__name__", typ)
        raise InputError(f"option {name}={raw[:80]!r}: expected {kind}") from None
    return raw


def build_config(config_cls: type, options: dict[str, Any]) -> Any:
    """Build a frozen config from user options; unknown keys and invalid values name the field."""
    hints = typing.get_type_hints(config_cls)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise InputError(
            f"unknown option(s) for {config_cls.__name__}: {', '.join(unknown)}",
            hint=f"valid options: {', '.join(sorted(fields))}",
        )
    values = {k: _coerce(k, hints[k], v) for k, v in options.items()}
    try:
        return config_cls(**values)
    except (ValueError, TypeError) as e:
        raise InputError(f"{config_cls.__name__}: {e}") from None


def config_fields(config_cls: type) -> list[dict]:
    """Describe a config's fields (name, type, default) for `curate tasks list --json`."""
    out = []
    for f in dataclasses.fields(config_cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        )
        out.append({"name": f.name, "type": str(f.type), "default": default})
    return out


def take(rows: Iterable[Problem], size: int | None) -> Iterator[Problem]:
    for i, p in enumerate(rows):
        if size is not None and i >= size:
            return
        yield p


def distinct_problems(name: str, generate: Callable, key: Callable[[dict], str], config: Any, size: int | None,
                      seed: int, split: str) -> Iterator[Problem]:
    """`size` distinct problems of a generated task: a draw repeating an earlier one of this run (same key) is
    skipped, so a mixture of `size` rows can use every problem (mixtures dedup by the same key)."""
    if size is None:
        raise ValueError(f"{name} is generated: give --size")
    check_split(split)
    seen: set[str] = set()
    index = 0
    while len(seen) < size:
        p = generate(config, seed, index, split)
        index += 1
        if key(p.reference) not in seen:
            seen.add(key(p.reference))
            yield p
        elif index > 10 * size + 1000:
            raise ValueError(f"only {len(seen)} distinct problems in {index} draws; widen the config's ranges")
