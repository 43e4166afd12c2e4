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
def _store(path: Path):
    from curate.store import TraceStore

    return TraceStore(path)


def _print_table(rows: list[dict], title: str | None = None) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    cols = list(rows[0]) if rows else []
    for c in cols:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*("" if r[c] is None else str(r[c]) for c in cols))
    out_console.print(table)


def _warn(store) -> None:
    for w in store.warnings:
        err_console.print(f"[yellow]warning:[/] {w}")


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL over the views problems, samples, verdicts, features, traces.")],
    store: StoreOpt = DEFAULT_STORE,
    json_: JsonOpt = False,
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    limit: Annotated[int, typer.Option(help="Rows to show in a table (JSON/CSV print all).")] = 50,
) -> None:
    """Run a read-only SQL query against the store."""
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
    out_console.print(f"{rep.rows} rows -> {rep.problems} new problems, {rep.samples} new samples, {rep.verdicts} new labels")
    for s in rep.skipped[:10]:
        err_console.print(f"[yellow]skipped:[/] {s}")
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


@app.command()
def verify(
    store: StoreOpt = DEFAULT_STORE,
    verifier: Annotated[Optional[str], typer.Option("--verifier", help="Verifier for every sample (default: by problem source, then domain).")] = None,
    workers: Annotated[int, typer.Option(help="Verifier worker processes.")] = max(1, min(8, (os.cpu_count() or 2))),
    relabel: Annotated[bool, typer.Option("--relabel", help="Re-verify samples that already have a verdict from this version.")] = False,
    where: Annotated[Optional[str], typer.Option(help="SQL predicate over the `traces` view, e.g. \"source = 'math500'\".")] = None,
    batch_size: Annotated[int, typer.Option(help="Verdicts written per store transaction (a kill loses at most one batch).")] = 500,
    json_: JsonOpt = False,
) -> None:
    """Label stored samples that lack a verdict, in worker processes with a hard per-response timeout."""
    import json
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from curate.label import label_store

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

        rep = label_store(st, verifier=verifier, workers=workers, relabel=relabel, where=where, batch_size=batch_size,
                          progress=tick)
    _warn(st)
    data = rep.to_dict()
    if json_:
        out_console.print_json(json.dumps(data))
        return
    rows = [{"verifier": k, **{s: c.get(s, 0) for s in ("correct", "incorrect", "no_answer", "timeout", "error")}}
            for k, c in data["by_verifier"].items()]
    if rows:
        _print_table(rows, title="verdicts written")
    out_console.print(f"labeled {data['labeled']} samples in {data['seconds']:.1f}s ({data['written']} new verdicts, "
                      f"{data['killed_workers']} workers killed on timeout)")
    for u in data["unclaimed"]:
        err_console.print(f"[yellow]no verifier for[/] source={u['source']} domain={u['domain']}; name one with --verifier")


# ---------------------------------------------------------------- tasks and generation (issue 4)


# ---------------------------------------------------------------- recipes and mixing (issue 5)


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
