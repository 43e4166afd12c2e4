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
from rich.markup import escape
from rich.text import Text

from curate.errors import CurateError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Data-quality curation and ablation for reasoning SFT.")
# Data is printed as Text (or escape()d inside our own markup) and emoji codes stay off: a trace saying
# `:x:` or `[bold]`, or a hint saying `pip install 'curate[vllm]'`, prints as written.
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
out_console = Console(highlight=False, soft_wrap=True, emoji=False)

StoreOpt = Annotated[
    Path,
    typer.Option("--store", "-s", envvar="CURATE_STORE", help="Trace store directory (env CURATE_STORE).", show_default=True),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DEFAULT_STORE = Path("curate-store")


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


# ---------------------------------------------------------------- store (issue 2)
def _store(path: Path):
    from curate.store import TraceStore

    return TraceStore(path)


def _print_table(rows: list[dict], title: str | None = None) -> None:
    from rich.table import Table

    table = Table(title=None if title is None else Text(title), title_justify="left")
    cols = list(rows[0]) if rows else []
    for c in cols:
        table.add_column(Text(str(c)), overflow="fold")
    for r in rows:
        table.add_row(*(Text("" if r[c] is None else str(r[c])) for c in cols))
    out_console.print(table)


def _warn(store) -> None:
    for w in store.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(str(w))}")


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="One query over the views problems, samples, verdicts, features, traces: SELECT, WITH ... SELECT, DESCRIBE, SHOW or EXPLAIN.")],
    store: StoreOpt = DEFAULT_STORE,
    json_: JsonOpt = False,
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    limit: Annotated[int, typer.Option(help="Rows to show in a table (JSON/CSV print all).")] = 50,
) -> None:
    """Run one read-only SQL query against the store (no writes, files, extensions or settings)."""
    import warnings

    from curate.report import print_result

    st = _store(store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = st.query(query)
    _warn(st)
    print_result(table, out_console, fmt="json" if json_ else "csv" if csv else "table", limit=limit)


@app.command()
def stats(store: StoreOpt = DEFAULT_STORE, json_: JsonOpt = False) -> None:
    """Counts by source, domain, model and verdict status, with token totals."""
    import json

    st = _store(store)
    data = st.stats()
    if json_:
        out_console.print_json(json.dumps(data, default=str))
        return
    for name, rows in data.items():
        if rows:
            _print_table(rows, title=name)
        else:
            out_console.print(f"[dim]{name}: none[/]")


@app.command()
def doctor(
    store: StoreOpt = DEFAULT_STORE,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild the catalog from the shards and records first (the old one is kept).")] = False,
    json_: JsonOpt = False,
) -> None:
    """Check the store's integrity: every table, every shard, one line per problem (exit 1 if any)."""
    import json

    from curate.errors import StoreError
    from curate.store.doctor import doctor as run_doctor

    rep, built = run_doctor(_store(store), rebuild_catalog=rebuild)
    if json_:
        print(json.dumps({**rep.to_dict(), "rebuild": built.to_dict() if built else None}))
    else:
        if built:
            out_console.print(f"rebuilt {built.catalog}: {built.problems} problems, {built.samples} samples, "
                              f"{built.verdicts} verdicts from {built.shards} shards; old catalog kept as {built.kept_as}")
        for line in rep.problems:
            out_console.print(f"[red]problem:[/] {line}")
        for line in rep.notes:
            out_console.print(f"[dim]note: {line}[/]")
        if rep.ok:
            out_console.print(f"ok: {', '.join(f'{k} {v}' for k, v in rep.counts.items())}")
    if not rep.ok:
        raise StoreError(f"store {store} has {len(rep.problems)} integrity problems",
                         hint="`curate doctor --rebuild` rebuilds the catalog from the shards and records")


@app.command()
def schema(
    json_: JsonOpt = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the README's schema table.")] = False,
) -> None:
    """The views you can query, with a one-line description of each column."""
    import json

    from curate.store.views import VIEW_DOCS, schema_markdown

    if json_:
        out_console.print_json(json.dumps({v: {"description": d, "columns": dict(c)} for v, (d, c) in VIEW_DOCS.items()}))
    elif markdown:
        print(schema_markdown(), end="")
    else:
        for view, (desc, cols) in VIEW_DOCS.items():
            _print_table([{"column": c, "description": d} for c, d in cols], title=f"{view}: {desc}")


@app.command("import")
def import_(
    source: Annotated[str, typer.Argument(help="JSONL or Parquet file, a save_to_disk directory, or a Hub dataset id.")],
    store: StoreOpt = DEFAULT_STORE,
    preset: Annotated[str, typer.Option(help="generic, pool, openr1, sharegpt or numina.")] = "generic",
    map_: Annotated[Optional[list[str]], typer.Option("--map", help="FIELD=COLUMN, e.g. response=generation (repeatable).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Problem source name (default: preset or file name).")] = None,
    domain: Annotated[Optional[str], typer.Option(help="Problem domain (default: the preset's, math).")] = None,
    split: Annotated[str, typer.Option(help="Problem split: train or eval.")] = "train",
    model: Annotated[Optional[str], typer.Option(help="Model that wrote the responses (default: the preset's).")] = None,
    hf_split: Annotated[str, typer.Option(help="Dataset split to read from a DatasetDict or the Hub.")] = "train",
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip and list bad rows instead of stopping.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Import problems and traces (and any correctness labels they carry) into the store."""
    import json

    from curate.importer import import_dataset, parse_mapping

    st = _store(store)
    with err_console.status("importing...") as status:
        rep = import_dataset(st, source, preset=preset, mapping=parse_mapping(map_ or []), source_name=name, domain=domain,
                             split=split, model=model, hf_split=hf_split, skip_bad=skip_bad,
                             progress=lambda r: status.update(f"importing... {r.rows} rows, {r.samples} new samples"))
    _warn(st)
    if json_:
        out_console.print_json(json.dumps(rep.to_dict()))
        return
    resumed = f" (resumed after {rep.resumed_after} rows committed earlier)" if rep.resumed_after else ""
    out_console.print(f"{rep.rows} rows -> {rep.problems} new problems, {rep.samples} new samples, {rep.verdicts} new labels{resumed}")
    for s in rep.skipped[:10]:
        err_console.print(f"[yellow]skipped:[/] {escape(str(s))}")
    if len(rep.skipped) > 10:
        err_console.print(f"[yellow]... and {len(rep.skipped) - 10} more skipped rows[/]")



# ---------------------------------------------------------------- verifiers and labeling (issue 3)
verifiers_app = typer.Typer(no_args_is_help=True, help="The verifier registry (built-ins and plugins).")
app.add_typer(verifiers_app, name="verifiers")


@verifiers_app.command("list")
def verifiers_list(json_: JsonOpt = False) -> None:
    """Registered verifiers: name, version, what they handle, where they come from."""
    import json

    from curate.errors import InputError
    from verifiers.registry import RegistryError, describe_all

    try:
        rows = describe_all()
    except RegistryError as e:
        raise InputError(str(e)) from None
    if json_:
        out_console.print_json(json.dumps(rows))
        return
    _print_table([{"name": r["name"], "version": r["version"], "domains": ",".join(r["domains"]),
                   "sources": ",".join(r["sources"]), "origin": r["origin"], "description": r["description"]} for r in rows])


ExecutorOpt = Annotated[str, typer.Option("--executor", help="local: this machine's processes; ray: a Ray cluster (pip install 'curate[ray]'; docs/scale.md).")]
RayAddressOpt = Annotated[Optional[str], typer.Option("--ray-address", help="With --executor ray: a running cluster (auto, HOST:PORT, ray://HOST:10001); default: RAY_ADDRESS, else a local instance.")]


@app.command()
def verify(
    store: StoreOpt = DEFAULT_STORE,
    verifier: Annotated[Optional[str], typer.Option("--verifier", help="Verifier for every sample (default: per problem: metadata.verifier, else source, else domain).")] = None,
    workers: Annotated[int, typer.Option(help="Verifier worker processes.")] = max(1, min(8, (os.cpu_count() or 2))),
    relabel: Annotated[bool, typer.Option("--relabel", help="Re-verify samples that already have a verdict from this version.")] = False,
    where: Annotated[Optional[str], typer.Option(help="SQL predicate over the `traces` view, e.g. \"source = 'math500'\".")] = None,
    batch_size: Annotated[int, typer.Option(help="Verdicts written per store transaction (a kill loses at most one batch).")] = 500,
    self_test_every: Annotated[int, typer.Option(help="Re-run each verifier's self-test after this many batches; a batch is written only after it passes.")] = 1,
    max_error_share: Annotated[float, typer.Option(help="Exit non-zero when a verifier's share of `error` verdicts is above this.")] = 0.01,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Label stored samples that lack a verdict, in worker processes with a hard per-response timeout."""
    import functools
    import json
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from curate.errors import InputError
    from curate.scale import check_executor

    if check_executor(executor, ray_address) == "ray":
        from curate.scale.ray_executor import label_store as ray_label_store

        label_store = functools.partial(ray_label_store, address=ray_address)
    else:
        from curate.label import label_store
    if not 0.0 <= max_error_share <= 1.0:
        raise InputError(f"--max-error-share must be between 0 and 1, got {max_error_share:g}")
    st = _store(store)
    columns = [TextColumn("verifying {task.fields[name]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}/s"), TimeElapsedColumn()]
    with Progress(*columns, console=err_console, transient=True, disable=json_) as bar:
        task = bar.add_task("verify", total=None, name="", rate="-")
        started, done = time.monotonic(), 0

        def tick(n: int, name: str) -> None:
            nonlocal done
            done += n
            elapsed = time.monotonic() - started
            bar.update(task, advance=n, name=name, rate=f"{done / elapsed:.1f}" if elapsed > 0 else "-")

        def plan(n: int, name: str) -> None:  # each verifier adds its share to the total as it starts
            bar.update(task, total=(bar.tasks[0].total or 0) + n, name=name)

        rep = label_store(st, verifier=verifier, workers=workers, relabel=relabel, where=where, batch_size=batch_size,
                          planned=plan, progress=tick, self_test_every=self_test_every)
    _warn(st)
    data = rep.to_dict()
    if json_:
        out_console.print_json(json.dumps(data))
    else:
        _print_verify_summary(data)
    for w in data["warnings"]:
        err_console.print(f"[yellow]warning:[/] {w}")
    over = rep.over_error_share(max_error_share)
    if over:
        raise CurateError(f"error share above --max-error-share {max_error_share:.1%}: {'; '.join(over)}",
                          hint="these verdicts say the verifier could not judge: `curate sql \"SELECT verifier, reason, "
                               "count(*) FROM verdicts WHERE status = 'error' GROUP BY ALL\"` shows why (docs/verifiers.md)")


def _print_verify_summary(data: dict) -> None:
    statuses = ("correct", "incorrect", "no_answer", "timeout", "error")
    rows = []
    for k, c in data["by_verifier"].items():
        total = sum(c.values())
        rows.append({"verifier": k, **{s: f"{c.get(s, 0)} ({c.get(s, 0) / total:.1%})" for s in statuses}, "total": total})
    if rows:
        _print_table(rows, title="status distribution per verifier")
    out_console.print(f"labeled {data['labeled']} samples in {data['seconds']:.1f}s ({data['written']} new verdicts, "
                      f"{data['killed_workers']} workers killed on timeout, {data['self_tests']} self-tests passed)")
    for u in data["unclaimed"]:
        why = f"names unknown verifier {u['verifier']!r}" if u.get("verifier") else "no verifier claims it"
        line = f"source={u['source']} domain={u['domain']} ({why}); name one with --verifier"
        err_console.print(f"[yellow]not labeled:[/] {escape(line)}")


# ---------------------------------------------------------------- tasks and generation (issue 4)
tasks_app = typer.Typer(no_args_is_help=True, help="Problem sources: list them, add problems to the store.")
app.add_typer(tasks_app, name="tasks")
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", "-o", help="A config field as key=value (repeatable).")]


def _kv(pairs: list[str] | None, flag: str) -> dict:
    from curate.errors import InputError

    out = {}
    for item in pairs or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{flag} expects key=value, got {item!r}")
        out[key.strip()] = value
    return out


@tasks_app.command("list")
def tasks_list(json_: JsonOpt = False) -> None:
    """Every registered problem source with its domain, verifier and options."""
    import json

    from curate.tasks import list_tasks

    rows = list_tasks()
    if json_:
        print(json.dumps(rows, indent=2, default=str))
        return
    _print_table([{"name": r["name"], "domain": r["domain"], "kind": "generated" if r["generated"] else "loaded",
                   "verifier": r["verifier"] or "", "options": ", ".join(o["name"] for o in r["options"]),
                   "description": r["description"]} for r in rows])


@tasks_app.command("add")
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
    import json

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from curate.tasks import add_problems

    columns = [TextColumn(f"adding {source}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=err_console, transient=True, disable=json_) as bar:
        task = bar.add_task("add", total=size)
        result = add_problems(_store(store), source, _kv(set_, "--set"), size=size, seed=seed, split=split,
                              progress=lambda done, total: bar.update(task, completed=done, total=total))
    if json_:
        print(json.dumps(result))
    else:
        out_console.print(Text(f"{result['source']}: {result['seen']} problems, {result['added']} new, into {store}"))
    if result["conflicts"] and not json_:
        first = result["conflicting"][0]
        n = result["conflicts"]
        err_console.print("[yellow]warning:[/] " + escape(
            f"{n} {'problem is' if n == 1 else 'problems are'} already stored under another split and "
            f"{'was' if n == 1 else 'were'} not added as {result['split']} (a problem has one split), e.g. problem "
            f"{first['id']} is stored as {first['stored_split']} (`tasks add --json` lists up to 10)"))


@app.command("generate")
def generate_cmd(
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
    option: Annotated[Optional[list[str]], typer.Option("--option", "-o", help="Backend config field key=value.")] = None,
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
    from curate.generate import RunConfig, SamplingParams, generate, parse_shard
    from curate.generate.prompting import DEFAULT_TEMPLATE

    try:
        sampling = SamplingParams(temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p,
                                  max_tokens=max_tokens, logprobs=logprobs)
    except ValueError as e:
        raise InputError(str(e)) from None
    opts = _kv(option, "--option")
    if base_url:
        opts["base_url"] = base_url
    cfg = RunConfig(n=n, seed=seed, template=template or DEFAULT_TEMPLATE, system=system, shard=parse_shard(shard),
                    limit=limit, flush_every=flush_every)
    report = generate(_store(store), problems, backend, model, sampling=sampling, options=opts, revision=revision,
                      run_config=cfg, dry_run=dry_run, progress=progress and not json_, executor=executor,
                      ray_address=ray_address)
    d = report.to_dict()
    if json_:
        print(json.dumps(d, default=str))
        return
    if dry_run:
        out_console.print(f"[bold]dry run[/]: {escape(str(d['backend']))} / {escape(str(d['model']))}")
        out_console.print(f"problems {d['problems']}  samples planned {d['planned']}  already stored {d['existing']}  "
                          f"to generate {d['planned'] - d['existing']}")
        out_console.print(Text(f"params {json.dumps(d['params'])}"))
        if d["example_prompt"]:
            out_console.print(Text(f"first prompt {json.dumps(d['example_prompt'], ensure_ascii=False)}"))
        return
    out_console.print(f"generated {d['generated']} samples ({d['existing']} already stored) in {d['elapsed_s']:.1f}s, "
                      f"{d['samples_per_s']} samples/s, {d['completion_tokens']} completion tokens, "
                      f"{d['truncated']} truncated; run {d['run_id']}")




# ---------------------------------------------------------------- recipes and mixing (issue 5)

recipes_app = typer.Typer(no_args_is_help=True, help="List, show and validate recipe files.")
app.add_typer(recipes_app, name="recipes")


def _print_rows(rows: list[dict], as_json: bool, title: str | None = None) -> None:
    import json

    from rich.table import Table

    if as_json:
        out_console.print_json(json.dumps(rows, ensure_ascii=False))
        return
    table = Table(title=None if title is None else Text(title))
    cols = list(dict.fromkeys(k for r in rows for k in r))
    for c in cols:
        table.add_column(Text(str(c)))
    for r in rows:
        table.add_row(*(Text("" if r.get(c) is None else str(r.get(c))) for c in cols))
    out_console.print(table)


@app.command("mix")
def mix_cmd(
    recipe: Annotated[str, typer.Argument(help="Recipe file, or the name of a shipped recipe (see `curate recipes list`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (one sub-directory per sweep point).")],
    store: StoreOpt = DEFAULT_STORE,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing mixture at --out.")] = False,
    sweep: Annotated[Optional[list[str]], typer.Option("--sweep", help="KEY=V1,V2,... e.g. quality.incorrect_fraction=0,0.5,1 (repeatable).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a recipe field: KEY=VALUE, e.g. size=512, sources.0.where=\"...\" (repeatable).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Build a training mixture from the store: HF dataset + Parquet + dataset card + manifest."""
    import time

    from curate.mix import mix
    from curate.mix.export import manifest_line
    from curate.mix.recipe import resolve_recipe_path

    started = time.monotonic()
    with err_console.status("mixing...") as status:
        def progress(msg: str) -> None:
            if not as_json:
                status.update(f"mixing ({time.monotonic() - started:.0f}s): {msg}")

        manifests = mix(resolve_recipe_path(recipe), store, out, overwrite=overwrite, sweep=sweep, sets=set_, progress=progress)
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
    bad = [r for r in results if not r["ok"]]
    if as_json:
        _print_rows(results, True)
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



# ---------------------------------------------------------------- training (issue 6)


@app.command("train")
def train_cmd(
    config: Annotated[Path, typer.Argument(help="Training config YAML, or a shipped one by name: study, debug.")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a field: --set train.lr=1e-5 (repeatable).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in output_dir from its latest state.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print the run's summary as JSON on stdout (logs go to stderr).")] = False,
) -> None:
    """Fine-tune a causal LM on a `messages` dataset with the bundled FSDP2 runner (launches torchrun)."""
    import json

    from curate.train import train_from_config
    from curate.train.launch import describe_result

    console = err_console if json_ else out_console
    echo = lambda m: console.print(Text(str(m)))  # noqa: E731
    result = train_from_config(config, set_ or [], resume=resume, echo=echo, stdout=sys.stderr if json_ else None)
    if json_:
        print(json.dumps(result, indent=2))
    else:
        out_console.print(Text(describe_result(result), style="green"))



# ---------------------------------------------------------------- evaluation
@app.command("eval")
def eval_cmd(
    target: Annotated[str, typer.Argument(help="A training run dir (every checkpoint), a checkpoint folder, a hub id, or an http(s) endpoint.")],
    suite: Annotated[str, typer.Option("--suite", help="Suite name (paper, math, countdown, smoke) or a suite YAML file.")] = "smoke",
    store: StoreOpt = DEFAULT_STORE,
    base: Annotated[Optional[str], typer.Option(help="Base model evaluated as step 0 of the run (path or hub id).")] = None,
    run: Annotated[Optional[str], typer.Option(help="Run name in the evals table (default: the run folder's name).")] = None,
    steps: Annotated[Optional[str], typer.Option(help="Only these checkpoint steps, e.g. 10,20,40.")] = None,
    benchmark: Annotated[Optional[list[str]], typer.Option("--benchmark", "-b", help="Only this benchmark of the suite (repeatable).")] = None,
    backend: Annotated[str, typer.Option(help="hf | vllm | openai (an endpoint target always uses openai).")] = "auto",
    model: Annotated[Optional[str], typer.Option(help="Served model name for an endpoint target.")] = None,
    option: Annotated[Optional[list[str]], typer.Option("--option", "-o", help="Backend config field key=value.")] = None,
    n: Annotated[Optional[int], typer.Option("--n", help="Override samples per problem for every benchmark.")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(help="Override the most new tokens for every benchmark.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Override: at most this many problems per benchmark.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a benchmark field: key=value or BENCH.key=value (repeatable).")] = None,
    judge: Annotated[Optional[str], typer.Option(help="OpenAI-compatible URL of a harm judge for safety benchmarks (1-5 rating; ASR = share rated 5).")] = None,
    judge_model: Annotated[Optional[str], typer.Option(help="The judge's served model name.")] = None,
    workers: Annotated[int, typer.Option(help="Verifier worker processes.")] = 2,
    jobs: Annotated[int, typer.Option(help="Checkpoints evaluated side by side (one process each).")] = 1,
    gpus: Annotated[Optional[str], typer.Option(help="GPU ids shared out to the --jobs processes, e.g. 0,1,2,3.")] = None,
    lm_eval: Annotated[Optional[str], typer.Option("--lm-eval", help="Also run these lm-evaluation-harness tasks (comma-separated).")] = None,
    lm_eval_include: Annotated[Optional[Path], typer.Option(help="A folder of extra lm-eval task YAMLs.")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress.")] = True,
    flush_every: Annotated[int, typer.Option(hidden=True)] = 64,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Evaluate checkpoints on a suite: generate, verify and score into the store's `evals` table (resumable)."""
    import json

    from curate.evaluate import evaluate_command

    overrides = _kv(set_, "--set")
    for k, v in (("n", n), ("sampling.max_tokens", max_tokens), ("limit", limit)):
        if v is not None:
            overrides[k] = str(v)
    say = (lambda s: None) if json_ else (lambda s: out_console.print(s, markup=False))
    rep = evaluate_command(_store(store), target, suite, base=base, run=run, steps=steps, benchmarks=benchmark or None,
                           backend=backend, model=model, backend_options=_kv(option, "--option"), overrides=overrides,
                           judge=judge, judge_model=judge_model, workers=workers, jobs=jobs, gpus=gpus, lm_eval=lm_eval,
                           lm_eval_include=lm_eval_include, progress=progress and not json_, flush_every=flush_every, say=say,
                           executor=executor, ray_address=ray_address)
    if json_:
        print(json.dumps(rep.to_dict(), default=str))
    else:
        for note in rep.notes:
            err_console.print(f"note: {note}", markup=False)
        out_console.print(f"evaluated {rep.targets} checkpoint(s): {rep.generated} samples generated, {rep.labeled} labeled "
                          f"in {rep.seconds:.1f}s; see `curate evals --store {store}`", markup=False)
    if rep.incomplete:
        from curate.errors import CurateError

        raise CurateError(f"{len(rep.incomplete)} benchmark(s) incomplete, stored without a score: " + "; ".join(rep.incomplete),
                          hint="relabel errors with `curate verify --relabel --where \"status = 'error'\"`, then rerun the same command")


evals_app = typer.Typer(help="Evaluation results in the store: the per-checkpoint table, imports of published results.")
app.add_typer(evals_app, name="evals")


@evals_app.callback(invoke_without_command=True)
def evals_cmd(
    ctx: typer.Context,
    store: StoreOpt = DEFAULT_STORE,
    where: Annotated[Optional[str], typer.Option(help="SQL predicate over the `evals` view, e.g. \"suite = 'paper'\".")] = None,
    long: Annotated[bool, typer.Option("--long", help="One row per metric instead of one column per benchmark.")] = False,
    json_: JsonOpt = False,
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
) -> None:
    """Evaluation results: one row per checkpoint, one column per benchmark (with length and truncation)."""
    if ctx.invoked_subcommand is not None:
        return
    import pyarrow as pa

    from curate.evaluate.results import wide
    from curate.report import print_result
    from curate.store.evals import read_evals

    rows = read_evals(_store(store), where)
    table = pa.Table.from_pylist(rows if long else wide(rows)) if rows else pa.table({"evals": pa.array([], pa.string())})
    print_result(table, out_console, fmt="json" if json_ else "csv" if csv else "table", limit=10_000)


@evals_app.command("import")
def evals_import(
    file: Annotated[Path, typer.Argument(help="CSV or JSONL with run,benchmark,step,value [,metric,ci_low,ci_high,suite].")],
    store: StoreOpt = DEFAULT_STORE,
    run: Annotated[Optional[str], typer.Option(help="Use this run name for every row (the file's run column is then optional).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Import published scores (e.g. a paper's curves) into the evals table, marked as imported."""
    import json

    from curate.evaluate.results import import_results

    rep = import_results(_store(store), file, run=run)
    if json_:
        print(json.dumps(rep))
    else:
        out_console.print(f"imported {rep['rows']} rows ({len(rep['runs'])} runs, benchmarks: {', '.join(rep['benchmarks'])})",
                          markup=False)


@evals_app.command("compare")
def evals_compare(
    a: Annotated[str, typer.Argument(help="Run (condition) A, as in the evals table's `run` column.")],
    b: Annotated[str, typer.Argument(help="Run (condition) B; differences are B - A.")],
    store: StoreOpt = DEFAULT_STORE,
    benchmark: Annotated[Optional[str], typer.Option(help="Only this benchmark.")] = None,
    json_: JsonOpt = False,
) -> None:
    """B - A per benchmark at each common step, with a paired bootstrap CI over problems where possible."""
    import json

    from curate.evaluate.compare import compare

    rep = compare(_store(store), a, b, benchmark)
    if json_:
        print(json.dumps(rep))
        return
    r1 = lambda v: "" if v is None else f"{v:.1f}"  # noqa: E731
    rows = [{"benchmark": r["benchmark"], "metric": r["metric"], "step": "-" if r["step"] is None else r["step"], "A": r1(r["a"]), "B": r1(r["b"]),
             "B-A": f"{r['diff']:+.1f}", "95% CI": f"[{r['ci_low']:+.1f}, {r['ci_high']:+.1f}]" if r["ci_low"] is not None else "",
             "significant": "" if r["significant"] is None else "yes" if r["significant"] else "no",
             "method": r["method"] + (f" ({r['n_problems']} problems)" if r["n_problems"] else "")} for r in rep["rows"]]
    if rows:
        _print_table(rows, title=f"A = {a}, B = {b}")
    for n in rep["notes"]:
        err_console.print(f"[yellow]note:[/] {n}", markup=True)


@app.command("report")
def report_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for report.html, report.md, report.json and figures/.")],
    store: StoreOpt = DEFAULT_STORE,
    study: Annotated[Optional[Path], typer.Option(help="A study directory: its mixtures/*/manifest.json are described.")] = None,
    mixtures: Annotated[Optional[list[Path]], typer.Option("--mixtures", help="A mixture folder of `curate mix` (repeatable).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Curves with dip and recovery, length and truncation, final/best scores, mixtures and verdicts in one report."""
    import json

    from curate.evaluate.report import build_report

    data = build_report(_store(store), out, study=study, mixtures=mixtures or [])
    if json_:
        print(json.dumps(data, default=str))
        return
    out_console.print(f"report: {out / 'report.html'} (open it in a browser; figures in {out / 'figures'})", markup=False)
    for section, why in data["skipped"].items():
        out_console.print(f"  left out {section}: {why}", markup=False)


# ---------------------------------------------------------------- studies
study_app = typer.Typer(no_args_is_help=True, help="Ablation studies: a grid of recipes x base models x seeds in one file.")
app.add_typer(study_app, name="study")
StudyArg = Annotated[str, typer.Argument(help="Study file, or the name of a shipped study (studies/NAME.yaml).")]
StudyOut = Annotated[Optional[Path], typer.Option("--out", help="Output folder (default: the study's `output`).")]


@study_app.command("plan")
def study_plan(study: StudyArg, out: StudyOut = None, json_: JsonOpt = False) -> None:
    """The grid and the work it implies (mixtures, runs, evals, GPU-hours); does nothing."""
    import json

    from curate.study import plan_study

    p = plan_study(study, out)
    if json_:
        print(json.dumps(p, indent=2, default=str))
        return
    _print_table(p["grid"], title=f"study {p['study']}: {len(p['grid'])} cells -> {p['out']}")
    _print_table([{**m, "conditions": ", ".join(m["conditions"]), "recipe_file": Path(m["recipe_file"]).name}
                  for m in p["mixtures"]], title="mixtures (each built once)")
    e = p["estimate"]
    hours = f"{e['train_gpu_hours']:.3g} GPU-hours of training" if e["train_gpu_hours"] is not None else "GPU-hours unknown"
    rough = " (rough: no mixture built yet)" if any(r["rough"] for r in e["per_cell"]) else ""
    out_console.print(f"{e['mixtures']} mixtures, {e['runs']} runs, {e['checkpoint_evals']} checkpoint evaluations, "
                      f"{e['nodes']} nodes; {e['train_tokens']:,} training tokens, {hours}{rough}")
    for w in p["warnings"]:
        err_console.print(f"[yellow]note:[/] {w}", markup=False)


@study_app.command("run")
def study_run(
    study: StudyArg,
    out: StudyOut = None,
    executor: Annotated[Optional[str], typer.Option(help="local or slurm (default: the study's executor.kind).")] = None,
    gpus: Annotated[Optional[str], typer.Option(help="local: GPUs to use, e.g. 0,1,2,3 (one training or eval node per GPU).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print (slurm: write) what would run; run nothing.")] = False,
    rerun_stale: Annotated[bool, typer.Option("--rerun-stale", help="Redo cells the changed study file made stale (old results are kept, renamed).")] = False,
    until: Annotated[Optional[str], typer.Option(help="Stop after this stage: prepare, model, mix, train, eval or report.")] = None,
    retries: Annotated[Optional[int], typer.Option(help="Extra attempts of a failed node (default: executor.retries).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Run the study as a DAG of curate commands; rerun to resume (finished nodes are skipped)."""
    import json

    from curate.study import run_study

    gpu_list = [int(g) for g in gpus.split(",") if g.strip()] if gpus else None
    say = (lambda s: err_console.print(s, markup=False)) if json_ else (lambda s: out_console.print(s, markup=False))
    res = run_study(study, out, executor=executor, gpus=gpu_list, dry_run=dry_run, rerun_stale=rerun_stale, until=until,
                    retries=retries, echo=say)
    if json_:
        print(json.dumps(res, default=str))
    elif res.get("report"):
        out_console.print(f"report: {res['report']}", markup=False)
    elif res.get("store") and not dry_run:
        out_console.print(f"results: curate evals --store {res['store']}", markup=False)


@study_app.command("status")
def study_status_cmd(study: StudyArg, out: StudyOut = None, json_: JsonOpt = False) -> None:
    """The grid with done / running / failed / stale / pending per cell and stage."""
    import json

    from curate.study import study_status

    s = study_status(study, out)
    if json_:
        print(json.dumps(s, indent=2))
        return
    _print_table(s["cells"], title=f"study {s['study']} in {s['out']}")
    other = [n for n in s["nodes"] if not n["id"].startswith(("mix/", "train/", "eval/"))]
    if other:
        _print_table(other)


@study_app.command("show")
def study_show(
    study: StudyArg,
    out: StudyOut = None,
    cell: Annotated[Optional[str], typer.Option(help="One cell: its commands and the lineage of its eval rows.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Each node's command line (rerun any by hand); with --cell, lineage from eval rows to the recipe."""
    import json

    from curate.study import show_study

    s = show_study(study, out, cell)
    if json_:
        print(json.dumps(s, indent=2, default=str))
        return
    for n in s["nodes"]:
        out_console.print(f"# {n['id']} ({n['state']})\n{n['command']}", markup=False)
    if cell is None:
        return
    r = s["record"]
    if r:
        out_console.print(f"\nrun {r['run']}: {r['run_dir']} (config {r['train_config']}, hash {r['config_hash']})\n"
                          f"  mixture {r['mixture']}: {r['manifest']} (fingerprint {r['mixture_fingerprint']})\n"
                          f"  recipe {r['recipe_name']}: {r['recipe_file']} (hash {r['recipe_hash'][:12]})\n"
                          f"  store snapshot {r['store_snapshot']}", markup=False)
    else:
        out_console.print("\nno lineage recorded yet (the run has not finished)", markup=False)
    rows = [{k: e[k] for k in ("checkpoint", "step", "benchmark", "metric", "value", "config_hash", "mixture_fingerprint",
                               "recipe_hash", "consistent")} for e in s["evals"] if e["kind"] == "score"]
    if rows:
        _print_table(rows, title="eval rows")


@study_app.command("tiny-model", hidden=True)
def study_tiny_model(folder: Path, seed: Annotated[int, typer.Option()] = 0,
                     size: Annotated[str, typer.Option(help="bpe-64x2 or char-128x4.")] = "bpe-64x2") -> None:
    """Build the tiny local base model of CPU studies (a study node)."""
    from curate.study.tiny import build_study_model

    out_console.print(f"tiny model written to {build_study_model(folder, seed, size=size)}", markup=False)


@study_app.command("mark", hidden=True)
def study_mark(study: StudyArg, node: Annotated[str, typer.Option(help="Node id.")], out: StudyOut = None) -> None:
    """Verify a node's outputs and write its completion marker (what a Slurm job runs last)."""
    from curate.study.runner import mark

    mark(study, node, out)
    out_console.print(f"{node}: done", markup=False)


# ---------------------------------------------------------------- demo
@app.command()
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
    _print_table(rep.store_summary, title="store: traces by source and teacher")
    _print_table([{k: v for k, v in m.items() if k != "path"} for m in rep.mixtures],
                 title="mixtures: the same problems, three data-quality conditions")
    out_console.print(Text(f"Mixtures (Hugging Face datasets with cards): {out / 'mixtures'}"))
    out_console.print(Text(f"Query the store: curate sql \"SELECT status, count(*) FROM traces GROUP BY status\" --store {store}"))



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


if __name__ == "__main__":
    main()
