"""Store commands: `sql`, `stats`, `doctor`, `schema` and `import`."""
from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.markup import escape

from curate.cli.common import (DEFAULT_STORE, JsonOpt, StoreOpt, emit_json, err_console, open_store, out_console,
                               print_result, print_table, warn, warn_store, write_rows)


def register(app: typer.Typer) -> None:
    app.command()(sql)
    app.command()(stats)
    app.command()(doctor)
    app.command()(schema)
    app.command("import")(import_)


def sql(
    query: Annotated[str, typer.Argument(help="One query over the views problems, samples, verdicts, features, traces: "
                                              "SELECT, WITH ... SELECT, DESCRIBE, SHOW or EXPLAIN.")],
    store: StoreOpt = DEFAULT_STORE,
    json_: JsonOpt = False,
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    limit: Annotated[int, typer.Option(help="Rows to show in a table (JSON/CSV print all).")] = 50,
) -> None:
    """Run one read-only SQL query against the store (no writes, files, extensions or settings)."""
    import warnings

    st = open_store(store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if json_ or csv:  # every row, written batch by batch while the query runs
            st.query(query, consume=lambda reader: write_rows("json" if json_ else "csv", reader.schema.names, reader))
        else:  # a table shows `limit` rows: fetch one more to know there are more, never the whole result
            table = st.query(query, max_rows=max(limit, 0) + 1)
    warn_store(st)
    if not (json_ or csv):
        print_result(table, limit=limit, counted=False)


def stats(store: StoreOpt = DEFAULT_STORE, json_: JsonOpt = False) -> None:
    """Counts by source, domain, model and verdict status, with token totals."""
    data = open_store(store).stats()
    if emit_json(data, json_):
        return
    for name, rows in data.items():
        if rows:
            print_table(rows, title=name)
        else:
            out_console.print(f"[dim]{name}: none[/]")


def doctor(
    store: StoreOpt = DEFAULT_STORE,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild the catalog from the shards and records first "
                                                            "(the old one is kept).")] = False,
    json_: JsonOpt = False,
) -> None:
    """Check the store's integrity: every table, every shard, one line per problem (exit 1 if any)."""
    from curate.errors import StoreError
    from curate.store.doctor import doctor as run_doctor

    rep, built = run_doctor(open_store(store), rebuild_catalog=rebuild)
    if not emit_json({**rep.to_dict(), "rebuild": built.to_dict() if built else None}, json_):
        if built:
            kept = f"old catalog kept as {built.kept_as}" if built.kept_as else "there was no catalog before"
            out_console.print(f"rebuilt {built.catalog}: {built.problems} problems, {built.samples} samples, "
                              f"{built.verdicts} verdicts from {built.shards} shards and {built.records} records; {kept}",
                              markup=False)
        for line in rep.problems:
            out_console.print(f"[red]problem:[/] {escape(line)}")
        for line in rep.notes:
            out_console.print(f"[dim]note: {escape(line)}[/]")
        if rep.ok:
            out_console.print(f"ok: {', '.join(f'{k} {v}' for k, v in rep.counts.items())}", markup=False)
    if not rep.ok:
        raise StoreError(f"store {store} has {len(rep.problems)} integrity problems",
                         hint="`curate doctor --rebuild` rebuilds the catalog from the shards and records")


def schema(
    json_: JsonOpt = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the README's schema table.")] = False,
) -> None:
    """The views you can query, with a one-line description of each column."""
    from curate.store.views import VIEW_DOCS, schema_markdown

    if emit_json({v: {"description": d, "columns": dict(c)} for v, (d, c) in VIEW_DOCS.items()}, json_):
        return
    if markdown:
        print(schema_markdown(), end="")
        return
    for view, (desc, cols) in VIEW_DOCS.items():
        print_table([{"column": c, "description": d} for c, d in cols], title=f"{view}: {desc}")


def import_(
    source: Annotated[str, typer.Argument(help="JSONL or Parquet file, a save_to_disk directory, or a Hub dataset id.")],
    store: StoreOpt = DEFAULT_STORE,
    preset: Annotated[str, typer.Option(help="generic, pool, openr1_math, sharegpt or numinamath (see docs/store.md).")] = "generic",
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
    from curate.importer import import_dataset, parse_mapping

    st = open_store(store)
    with err_console.status("importing...") as status:
        rep = import_dataset(st, source, preset=preset, mapping=parse_mapping(map_ or []), source_name=name, domain=domain,
                             split=split, model=model, hf_split=hf_split, skip_bad=skip_bad,
                             progress=lambda r: status.update(f"importing... {r.rows} rows, {r.samples} new samples"))
    warn_store(st)
    if emit_json(rep.to_dict(), json_):
        return
    resumed = f" (resumed after {rep.resumed_after} rows committed earlier)" if rep.resumed_after else ""
    out_console.print(f"{rep.rows} rows -> {rep.problems} new problems, {rep.samples} new samples, {rep.verdicts} new labels"
                      f"{resumed}", markup=False)
    for s in rep.skipped[:10]:
        warn(str(s), "skipped")
    if len(rep.skipped) > 10:
        err_console.print(f"[yellow]... and {len(rep.skipped) - 10} more skipped rows[/]")
