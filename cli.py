"""The `curate` command line: wiring only. Each command parses options and calls one library function;
every CurateError becomes one red line with its hint and a non-zero exit.

Run `curate --help`; tests drive it through typer's CliRunner or `python -m cli`.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from curate.errors import CurateError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Data-quality curation and ablation for reasoning SFT.")
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True)

StoreOpt = Annotated[
    Path,
    typer.Option("--store", "-s", envvar="CURATE_STORE", help="Trace store directory (env CURATE_STORE).", show_default=True),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DEFAULT_STORE = Path("curate-store")


# ---------------------------------------------------------------- store (issue 2)


# ---------------------------------------------------------------- verifiers and labeling (issue 3)


# ---------------------------------------------------------------- tasks and generation (issue 4)


# ---------------------------------------------------------------- recipes and mixing (issue 5)

recipes_app = typer.Typer(no_args_is_help=True, help="List, show and validate recipe files.")
app.add_typer(recipes_app, name="recipes")


def _print_rows(rows: list[dict], as_json: bool, title: str | None = None) -> None:
    import json

    from rich.table import Table

    if as_json:
        out_console.print_json(json.dumps(rows, ensure_ascii=False))
        return
    table = Table(title=title)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in cols))
    out_console.print(table)


@app.command("mix")
def mix_cmd(
    recipe: Annotated[str, typer.Argument(help="Recipe file, or the name of a shipped recipe (see `curate recipes list`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (one sub-directory per sweep point).")],
    store: StoreOpt = DEFAULT_STORE,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing mixture at --out.")] = False,
    sweep: Annotated[Optional[list[str]], typer.Option("--sweep", help="KEY=V1,V2,... e.g. quality.incorrect_fraction=0,0.5,1 (repeatable).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Build a training mixture from the store: HF dataset + Parquet + dataset card + manifest."""
    from curate.mix import mix
    from curate.mix.export import manifest_line
    from curate.mix.recipe import resolve_recipe_path

    manifests = mix(resolve_recipe_path(recipe), store, out, overwrite=overwrite, sweep=sweep)
    _print_rows([manifest_line(m) for m in manifests], as_json, title=f"mixtures written to {out}")


@recipes_app.command("list")
def recipes_list(
    directory: Annotated[Optional[Path], typer.Option("--dir", help="Directory of recipes (default: the shipped ones).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The shipped recipes with their size, number of datasets (sweep points) and hash."""
    from curate.mix.recipe import catalog

    rows = catalog(directory)
    if not as_json:  # the description is long; `recipes show` and --json carry it
        rows = [{k: v for k, v in r.items() if k != "description"} for r in rows]
    _print_rows(rows, as_json)


@recipes_app.command("show")
def recipes_show(
    recipe: Annotated[str, typer.Argument(help="Recipe file or shipped recipe name.")],
    as_json: JsonOpt = False,
) -> None:
    """A recipe with every default filled in, and its hash."""
    import json

    from curate.mix.recipe import describe, load_recipe, resolve_recipe_path

    r = load_recipe(resolve_recipe_path(recipe))
    if as_json:
        out_console.print_json(json.dumps(describe(r), ensure_ascii=False))
    else:
        out_console.print(f"# hash: {r.hash()}")
        out_console.print(r.to_yaml(), markup=False)


@recipes_app.command("validate")
def recipes_validate(
    recipes: Annotated[list[str], typer.Argument(help="Recipe files or shipped recipe names.")],
    as_json: JsonOpt = False,
) -> None:
    """Validate recipes (every sweep point too); exits non-zero if any is invalid."""
    from curate.errors import ConfigError
    from curate.mix.recipe import validate_files

    results = validate_files(recipes)
    if as_json:
        _print_rows(results, True)
    else:
        for r in results:
            out_console.print(f"[green]ok[/] {r['file']} ({r['hash'][:12]})" if r["ok"] else f"[red]invalid[/] {r['error']}")
    bad = [r for r in results if not r["ok"]]
    if bad:
        raise ConfigError(f"{len(bad)} of {len(results)} recipes are invalid")



# ---------------------------------------------------------------- training (issue 6)


# ---------------------------------------------------------------- demo


def main() -> None:
    """Console entry point: run the app, mapping known errors to one line."""
    try:
        app(standalone_mode=False)
    except CurateError as e:
        err_console.print(f"[bold red]error:[/] {e.message}")
        if e.hint:
            err_console.print(f"[dim]hint: {e.hint}[/]")
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("[red]aborted[/]")
        sys.exit(130)
    except Exception as e:  # click usage errors carry their own exit code
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Exit):
            sys.exit(e.exit_code)
        raise


if __name__ == "__main__":
    main()
