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


# ---------------------------------------------------------------- training (issue 6)


@app.command("train")
def train_cmd(
    config: Annotated[Path, typer.Argument(help="Training config YAML (examples: curate/train/configs/).")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a field: --set train.lr=1e-5 (repeatable).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in output_dir from its latest state.")] = False,
) -> None:
    """Fine-tune a causal LM on a `messages` dataset with the bundled FSDP2 runner (launches torchrun)."""
    from curate.train import train_from_config

    out = train_from_config(config, set_ or [], resume=resume, echo=out_console.print)
    out_console.print(f"[green]done[/]: checkpoints in {out / 'checkpoints'}, metrics in {out / 'metrics.jsonl'}")


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
