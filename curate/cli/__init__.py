"""The `curate` command line: wiring only. Each command module (one per stage) parses options and calls one
library function; `main` turns every CurateError into one red line with its hint and a non-zero exit.

Run `curate --help` or `python -m curate --help`; tests drive it as `python -m curate` (tests/helpers.py).
"""
from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from curate.cli import demo, evaluate, generate, label, mix, store, study, train, view
from curate.cli.common import err_console
from curate.errors import CurateError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Data-quality curation and ablation for reasoning SFT.")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("curate")
        except PackageNotFoundError:  # run from a checkout without installing
            from curate import __version__ as v
        print(f"curate {v}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_version, help="Print the version and exit.")] = False,
) -> None:
    """Data-quality curation and ablation for reasoning SFT."""


for _module in (store, label, generate, mix, train, evaluate, study, demo, view):
    _module.register(app)


def _fail(message: str, hint: str | None, code: int) -> None:
    err_console.print(f"[bold red]error:[/] {escape(' '.join(str(message).split()))}")
    if hint:
        err_console.print(f"[dim]hint: {escape(hint)}[/]")
    sys.exit(code)


def _click():
    """The click that typer runs on: typer bundles its own (typer._click), older typers use click itself."""
    try:
        from typer import _click as click
    except ImportError:  # pragma: no cover - older typer
        import click
    return click


def main() -> None:
    """Console entry point: run the app, mapping known errors and usage errors to one line."""
    from curate import cpus

    cpus.configure()  # before anything imports torch: thread counts from the CPUs this process may use
    click = _click()
    try:
        rv = app(standalone_mode=False, prog_name="curate")
    except CurateError as e:
        _fail(e.message, e.hint, e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted", None, 130)
    except click.exceptions.NoArgsIsHelpError as e:  # a bare group: its help is the answer
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.UsageError as e:  # unknown option, missing argument, bad value
        where = e.ctx.command_path if e.ctx is not None else "curate"
        _fail(f"{e.format_message()} (see `{where} --help`)", None, e.exit_code)
    except click.exceptions.ClickException as e:
        _fail(e.format_message(), None, e.exit_code)
    else:
        # typer returns, rather than raises, an Exit's code when not standalone (Ctrl-C arrives as 130)
        if isinstance(rv, int) and rv:
            if rv == 130:
                err_console.print("[bold red]error:[/] interrupted")
            sys.exit(rv)
