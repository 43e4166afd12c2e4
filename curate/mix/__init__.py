"""Recipes -> training mixtures: `mix(recipe, store, out)` selects, transforms, decontaminates and writes.

Modules: recipe (the YAML model), build (selection and quality knobs), clean (dedup and
decontamination), transforms (one response at a time), export (dataset, Parquet, card, manifest).
The SQL lives in curate.store.selection.
"""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any, Callable, Optional

from curate.mix.recipe import Recipe, load_recipe, parse_set_option, parse_sweep_option, validate_recipe, with_values

__all__ = ["Recipe", "load_recipe", "validate_recipe", "parse_sweep_option", "parse_set_option", "with_values", "mix", "mix_recipe"]


def mix_recipe(recipe: Recipe, store: Any, out: str | Path, overwrite: bool = False,
               progress: Optional[Callable[[str], None]] = None) -> list[dict]:
    """Build and write every dataset of `recipe` (one per sweep point); returns their manifests.

    Without a sweep the dataset goes to `out`; with one, each point goes to `out/<key>=<value>`.
    A point already at its place, built from the same recipe hash and store snapshot, is skipped (its
    manifest comes back with `skipped: true`); any other existing folder is refused unless `overwrite`.
    Points that differ only in knobs applied after selection (incorrect_fraction, truncation) share
    one selection, and every point is checked before any is written: a sweep writes all or nothing.
    """
    from curate.errors import ConfigError, OutputError
    from curate.mix import build, export

    say = progress or (lambda msg: None)
    out = Path(out)
    existed = out.exists()
    snapshot = store.snapshot()["id"]
    points = recipe.expand_sweep()
    manifests: dict[str, dict] = {}
    todo = []
    for suffix, r in points:
        target = out / suffix if suffix else out
        old = export.read_manifest(target)
        if old and not overwrite and old.get("recipe_hash") == r.hash() and old.get("store", {}).get("id") == snapshot:
            manifests[suffix] = {**old, "skipped": True}
            continue
        export._prepare(target, overwrite)  # refuse before building anything
        todo.append((suffix, r, target))
    groups: dict[str, list] = {}
    for item in todo:
        groups.setdefault(build.selection_key(item[1]), []).append(item)
    staged: list[tuple[Path, Path]] = []
    try:
        for n, items in enumerate(groups.values(), 1):
            label = ", ".join(s or r.name for s, r, _ in items)
            say(f"[{n}/{len(groups)}] selecting rows for {label}")
            selected = build.select(store, items[0][1], want_incorrect=any(r.quality.incorrect_fraction > 0 for _, r, _ in items),
                                    progress=lambda msg: say(f"[{n}/{len(groups)}] {msg}"))
            short = [f"{s or r.name}: {why}" for s, r, _ in items if (why := build.quality_shortfall(r, selected.rows))]
            if short:
                raise ConfigError("cannot build " + "; ".join(short) + ("; nothing was written" if len(points) > 1 else ""),
                                  hint=build.REQUIRE_INCORRECT_HINT)
            for suffix, r, target in items:
                say(f"[{n}/{len(groups)}] writing {suffix or r.name}")
                manifest, tmp = export.stage(build.finish(store, selected, r), target)
                staged.append((tmp, target))
                manifests[suffix] = manifest
        for tmp, target in staged:
            export.commit(tmp, target)
    except BaseException as e:
        for tmp, _ in staged:
            shutil.rmtree(tmp, ignore_errors=True)
        if not existed and out.is_dir() and not any(out.iterdir()):
            with contextlib.suppress(OSError):
                out.rmdir()
        if isinstance(e, OSError):  # disk full, read-only, permission denied: one line, not a traceback
            raise OutputError.from_os(e, out, "the mixture") from None
        raise
    return [manifests[suffix] for suffix, _ in points]


def mix(recipe_path: str | Path, store_path: str | Path, out: str | Path, overwrite: bool = False,
        sweep: Optional[list[str]] = None, sets: Optional[list[str]] = None,
        progress: Optional[Callable[[str], None]] = None) -> list[dict]:
    """The `curate mix` command: load the recipe (with --set and --sweep overrides), open the store, write."""
    from curate.errors import StoreError
    from curate.store import TraceStore

    overrides = dict(parse_sweep_option(s) for s in (sweep or []))
    recipe = load_recipe(recipe_path, overrides)
    if sets:
        recipe = with_values(recipe, [parse_set_option(s) for s in sets])
    store_path = Path(store_path)
    if not store_path.exists():
        raise StoreError(f"{store_path}: no trace store here", hint="pass --store, or build one with `curate import` / `curate generate`")
    return mix_recipe(recipe, TraceStore(store_path), out, overwrite=overwrite, progress=progress)
