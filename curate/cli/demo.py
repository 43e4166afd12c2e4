"""`curate demo`: the pipeline on embedded defaults (no GPU, no network, no download)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from curate.cli.common import JsonOpt, StoreOpt, invocation, out_console, print_table


def register(app: typer.Typer) -> None:
    app.command()(demo)


def demo(
    store: StoreOpt = Path("demo-out/store"),
    out: Annotated[Path, typer.Option(help="Where the mixtures go.")] = Path("demo-out"),
    problems: Annotated[int, typer.Option(help="Chain-sum training problems to generate.")] = 4800,
    samples: Annotated[int, typer.Option(help="Synthetic traces per problem.")] = 4,
    workers: Annotated[int, typer.Option(help="Verifier worker processes.")] = 2,
    json_: JsonOpt = False,
) -> None:
    """The whole pipeline on embedded defaults: chain sums -> synthetic traces -> verify -> store -> the demo study's 3 mixtures."""
    from curate.demo import DemoConfig, report_json, run_demo

    cfg = DemoConfig(problems=problems, samples_per_problem=samples, workers=workers)
    say = (lambda s: None) if json_ else (lambda s: out_console.print(Text(str(s))))
    rep = run_demo(store, out, cfg, say=say)
    if json_:
        print(report_json(rep))
        return
    print_table(rep.store_summary, title="store: traces by source and teacher")
    print_table([{k: v for k, v in m.items() if k != "path"} for m in rep.mixtures],
                 title="mixtures: the same problems, three data-quality conditions")
    out_console.print(Text(f"Mixtures (Hugging Face datasets with cards): {out / 'mixtures'}"))
    cmd = invocation()
    out_console.print(Text(f"Query the store: {cmd} sql \"SELECT status, count(*) FROM traces GROUP BY status\" --store {store}"))
    out_console.print(Text(f"Browse it (the `view` extra): {cmd} view --store {store} --mixtures {out / 'mixtures'}"))
