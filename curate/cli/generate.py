"""Problem and trace commands: `tasks list`, `tasks add` and `generate`."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from curate.cli.common import (DEFAULT_STORE, BackendOpt, ExecutorOpt, JsonOpt, RayAddressOpt, SetOpt, StoreOpt,
                               emit_json, open_store, out_console, parse_pairs, print_table, progress_bar, say,
                               warn)


def register(app: typer.Typer) -> None:
    tasks_app = typer.Typer(no_args_is_help=True, help="Problem sources: list them, add problems to the store.")
    tasks_app.command("list")(tasks_list)
    tasks_app.command("add")(tasks_add)
    app.add_typer(tasks_app, name="tasks")
    app.command("generate")(generate)


def tasks_list(json_: JsonOpt = False) -> None:
    """Every registered problem source with its domain, verifier and options."""
    from curate.tasks import list_tasks

    rows = list_tasks()
    if emit_json(rows, json_):
        return
    print_table([{"name": r["name"], "domain": r["domain"], "kind": "generated" if r["generated"] else "loaded",
                  "verifier": r["verifier"] or "", "options": ", ".join(o["name"] for o in r["options"]),
                  "description": r["description"]} for r in rows])


def tasks_add(
    source: Annotated[str, typer.Argument(help="A task name from `curate tasks list`, or a .jsonl/.parquet path.")],
    store: StoreOpt = DEFAULT_STORE,
    size: Annotated[Optional[int], typer.Option(help="How many problems (required for generated tasks).")] = None,
    seed: Annotated[int, typer.Option(help="Generator seed; problem i is drawn from sha256(seed, i), so seeds are independent.")] = 0,
    split: Annotated[Optional[str], typer.Option(help="train or eval (default: the source's own).")] = None,
    set_: SetOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Add problems from a source to the store (idempotent: ids are content hashes)."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from curate.config import parse_sets
    from curate.tasks import add_problems

    columns = [TextColumn(f"adding {source}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    with progress_bar(*columns, json_=json_) as bar:
        task = bar.add_task("add", total=size)
        result = add_problems(open_store(store), source, parse_sets(set_), size=size, seed=seed, split=split,
                              progress=lambda done, total: bar.update(task, completed=done, total=total))
    if emit_json(result, json_):
        return
    say(f"{result['source']}: {result['seen']} problems, {result['added']} new, into {store}")
    if result["conflicts"]:
        first = result["conflicting"][0]
        n = result["conflicts"]
        warn(f"{n} {'problem is' if n == 1 else 'problems are'} already stored under another split and "
             f"{'was' if n == 1 else 'were'} not added as {result['split']} (a problem has one split), e.g. problem "
             f"{first['id']} is stored as {first['stored_split']} (`tasks add --json` lists up to 10)")


def generate(
    store: StoreOpt = DEFAULT_STORE,
    problems: Annotated[Optional[str], typer.Option("--problems", "-p", help="SQL predicate over the problems view.")] = None,
    backend: Annotated[str, typer.Option(help="synthetic | openai | hf | vllm")] = "synthetic",
    model: Annotated[Optional[str], typer.Option(help="Model name or path (served name for openai).")] = None,
    revision: Annotated[Optional[str], typer.Option(help="Model revision, stored per row.")] = None,
    n: Annotated[int, typer.Option("--n", help="Samples per problem.")] = 1,
    max_tokens: Annotated[int, typer.Option(help="Most new tokens per sample.")] = 16384,
    temperature: Annotated[float, typer.Option()] = 0.6,
    top_p: Annotated[float, typer.Option()] = 0.95,
    top_k: Annotated[int, typer.Option(help="-1 turns it off.")] = 20,
    min_p: Annotated[float, typer.Option()] = 0.0,
    seed: Annotated[int, typer.Option(help="Run seed (part of each sample's id).")] = 0,
    logprobs: Annotated[bool, typer.Option(help="Record teacher logprob/entropy where supported.")] = False,
    system: Annotated[Optional[str], typer.Option(help="A system prompt (the study uses none).")] = None,
    template: Annotated[Optional[str], typer.Option(help="User-turn template containing {question}.")] = None,
    base_url: Annotated[Optional[str], typer.Option(help="openai backend: server URL, e.g. http://host:8000/v1.")] = None,
    option: BackendOpt = None,
    shard: Annotated[Optional[str], typer.Option(help="i/n: this worker's share of the problems (0-based).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="At most this many problems.")] = None,
    flush_every: Annotated[int, typer.Option(hidden=True)] = 2000,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would run; generate nothing.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Sample traces for the selected problems into the store; rerun the same command to resume."""
    import json

    from curate.errors import InputError
    from curate.generate import RunConfig, SamplingParams, generate as run_generate, parse_shard
    from curate.generate.prompting import DEFAULT_TEMPLATE

    try:
        sampling = SamplingParams(temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p,
                                  max_tokens=max_tokens, logprobs=logprobs)
    except ValueError as e:
        raise InputError(str(e)) from None
    opts = parse_pairs(option, "--option")
    if base_url:
        opts["base_url"] = base_url
    cfg = RunConfig(n=n, seed=seed, template=template or DEFAULT_TEMPLATE, system=system, shard=parse_shard(shard),
                    limit=limit, flush_every=flush_every)
    report = run_generate(open_store(store), problems, backend, model, sampling=sampling, options=opts, revision=revision,
                          run_config=cfg, dry_run=dry_run, progress=progress and not json_, executor=executor,
                          ray_address=ray_address)
    d = report.to_dict()
    if emit_json(d, json_):
        return
    if dry_run:
        say(f"dry run: {d['backend']} / {d['model']}")
        say(f"problems {d['problems']}  samples planned {d['planned']}  already stored {d['existing']}  "
            f"to generate {d['planned'] - d['existing']}")
        say(f"params {json.dumps(d['params'])}")
        if d["example_prompt"]:
            say(f"first prompt {json.dumps(d['example_prompt'], ensure_ascii=False)}")
        return
    out_console.print(f"generated {d['generated']} samples ({d['existing']} already stored) in {d['elapsed_s']:.1f}s, "
                      f"{d['samples_per_s']} samples/s, {d['completion_tokens']} completion tokens, "
                      f"{d['truncated']} truncated; run {d['run_id']}", markup=False)
