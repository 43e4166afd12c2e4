"""Mixture commands: `mix` and `recipes list|show|validate`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from curate.cli.common import DEFAULT_STORE, JsonOpt, SetOpt, StoreOpt, emit_json, err_console, out_console, print_table


def register(app: typer.Typer) -> None:
    app.command("mix")(mix)
    recipes_app = typer.Typer(no_args_is_help=True, help="List, show and validate recipe files.")
    recipes_app.command("list")(recipes_list)
    recipes_app.command("show")(recipes_show)
    recipes_app.command("validate")(recipes_validate)
    app.add_typer(recipes_app, name="recipes")


def _rows(rows: list[dict], as_json: bool, title: str | None = None) -> None:
    if not emit_json(rows, as_json):
        print_table(rows, title=title)


def mix(
    recipe: Annotated[str, typer.Argument(help="Recipe file, or the name of a shipped recipe (see `curate recipes list`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (one sub-directory per sweep point).")],
    store: StoreOpt = DEFAULT_STORE,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing mixture at --out.")] = False,
    sweep: Annotated[Optional[list[str]], typer.Option("--sweep", help="KEY=V1,V2,... e.g. quality.incorrect_fraction=0,0.5,1 "
                                                       "(repeatable).")] = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build a training mixture from the store: HF dataset + Parquet + dataset card + manifest."""
    import time

    from curate.mix import mix as build_mix
    from curate.mix.export import manifest_line
    from curate.mix.recipe import resolve_recipe_path

    started = time.monotonic()
    with err_console.status("mixing...") as status:
        def progress(msg: str) -> None:
            if not as_json:
                status.update(f"mixing ({time.monotonic() - started:.0f}s): {msg}")

        manifests = build_mix(resolve_recipe_path(recipe), store, out, overwrite=overwrite, sweep=sweep, sets=set_,
                              progress=progress)
    _rows([manifest_line(m) for m in manifests], as_json, title=f"mixtures written to {out}")


def recipes_list(
    directory: Annotated[Optional[Path], typer.Option("--dir", help="Directory of recipes (default: the shipped ones).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The shipped recipes with their size, number of datasets (sweep points) and hash."""
    from curate.mix.recipe import catalog

    rows = catalog(directory)
    if not as_json:  # the description is long; `recipes show` and --json carry it
        rows = [{k: v for k, v in r.items() if k != "description"} for r in rows]
    _rows(rows, as_json)


def recipes_show(
    recipe: Annotated[str, typer.Argument(help="Recipe file or shipped recipe name.")],
    as_json: JsonOpt = False,
) -> None:
    """A recipe with every default filled in, and its hash."""
    from curate.mix.recipe import describe, load_recipe, resolve_recipe_path

    r = load_recipe(resolve_recipe_path(recipe))
    if not emit_json(describe(r), as_json):
        out_console.print(f"# hash: {r.hash()}")
        out_console.print(r.to_yaml(), markup=False)


def recipes_validate(
    recipes: Annotated[list[str], typer.Argument(help="Recipe files or shipped recipe names.")],
    as_json: JsonOpt = False,
) -> None:
    """Validate recipes (every sweep point too); exits non-zero if any is invalid."""
    from curate.errors import ConfigError
    from curate.mix.recipe import validate_files

    results = validate_files(recipes)
    bad = [r for r in results if not r["ok"]]
    if as_json:
        emit_json(results, True)
    elif len(results) == 1 and bad:  # one recipe: its error is the one line
        raise ConfigError(bad[0]["error"])
    else:
        for r in results:
            if r["ok"]:
                out_console.print(f"[green]ok[/] {escape(r['file'])} ({r['hash'][:12]})")
            else:
                err_console.print(f"[red]invalid[/] {escape(r['error'])}")
    if bad:
        raise ConfigError(f"{len(bad)} of {len(results)} recipes are invalid")
