"""Recipes -> training mixtures: `mix(recipe, store, out)` selects, transforms, decontaminates and writes.

Modules: recipe (the YAML model), build (selection and quality knobs), clean (dedup and
decontamination), transforms (one response at a time), export (dataset, Parquet, card, manifest).
The SQL lives in curate.store.selection.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from curate.mix.recipe import Recipe, load_recipe, parse_sweep_option, validate_recipe

__all__ = ["Recipe", "load_recipe", "validate_recipe", "parse_sweep_option", "mix", "mix_recipe"]


def mix_recipe(recipe: Recipe, store: Any, out: str | Path, overwrite: bool = False) -> list[dict]:
    """Build and write every dataset of `recipe` (one per sweep point); returns their manifests.

    Without a sweep the dataset goes to `out`; with one, each point goes to `out/<key>=<value>`.
    """
    from curate.mix import build, export

    out = Path(out)
    points = recipe.expand_sweep()
    if len(points) > 1:
        for suffix, _ in points:  # refuse before building anything
            export._prepare(out / suffix, overwrite)
    manifests = []
    for suffix, r in points:
        target = out / suffix if suffix else out
        if not suffix:
            export._prepare(target, overwrite)
        manifests.append(export.write(build.build(store, r), target, overwrite=overwrite))
    return manifests


def mix(recipe_path: str | Path, store_path: str | Path, out: str | Path, overwrite: bool = False,
        sweep: Optional[list[str]] = None) -> list[dict]:
    """The `curate mix` command: load the recipe (with --sweep overrides), open the store, write."""
    from curate.errors import StoreError
    from curate.store import TraceStore

    overrides = dict(parse_sweep_option(s) for s in (sweep or []))
    recipe = load_recipe(recipe_path, overrides)
    store_path = Path(store_path)
    if not store_path.exists():
        raise StoreError(f"{store_path}: no trace store here", hint="pass --store, or build one with `curate import` / `curate generate`")
    return mix_recipe(recipe, TraceStore(store_path), out, overwrite=overwrite)
