"""`curate train`: the bundled FSDP2 runner on a `messages` dataset."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from curate.cli.common import SetOpt, emit_json, err_console, out_console


def register(app: typer.Typer) -> None:
    app.command("train")(train)


def train(
    config: Annotated[Path, typer.Argument(help="Training config YAML, or a shipped one by name: study, debug.")],
    set_: SetOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in output_dir from its latest state.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print the run's summary as JSON on stdout (logs go to stderr).")] = False,
) -> None:
    """Fine-tune a causal LM on a `messages` dataset with the bundled FSDP2 runner (launches torchrun)."""
    from curate.errors import require_extra

    require_extra("torch", "train", "training")
    from curate.train import train_from_config
    from curate.train.launch import describe_result

    console = err_console if json_ else out_console
    result = train_from_config(config, set_ or [], resume=resume, echo=lambda m: console.print(Text(str(m))),
                               stdout=sys.stderr if json_ else None)
    if not emit_json(result, json_):
        out_console.print(Text(describe_result(result), style="green"))
