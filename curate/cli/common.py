"""What every command module shares: the two consoles, option types, the store opener, one table printer
and one `--json` emitter.

Data is printed as rich Text (or escape()d inside our own markup) and emoji codes stay off: a trace saying
`:x:` or `[bold]`, or a hint saying `pip install 'curate[vllm]'`, prints as written. Control characters in
printed text (ESC and C1 sequences that recolour, retitle or clear a terminal or write its clipboard, BEL,
and bidirectional overrides that reorder what a line shows) are printed as escapes (`\x1b`, `\u202e`) by
both consoles, whatever the print call; table cells are made printable before layout so columns line up.
`--json` escapes the same characters inside its strings (same values); `--csv` cells show them as escapes too
(newlines and tabs stay, quoted as CSV quotes them).
"""
from __future__ import annotations

import csv
import json
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.segment import Segment
from rich.text import Text


def _width(stream) -> int | None:
    # rich falls back to 80 columns when the stream is no terminal: a piped table would wrap its rows
    if os.environ.get("COLUMNS") or stream.isatty():
        return None
    return 100_000


# C0 controls but newline and tab, DEL, C1 controls, and the bidirectional marks and overrides
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with every character that would control the terminal shown as its escape (ESC -> `\\x1b`)."""
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


class _Console(Console):
    """A rich Console that never writes a control character it was given as text: rich's own styling and
    cursor moves (control segments) are added after, so colours and progress bars still work."""

    def _render_buffer(self, buffer):
        return super()._render_buffer(seg if seg.control or not seg.text else Segment(printable(seg.text), seg.style)
                                      for seg in buffer)


err_console = _Console(stderr=True, highlight=False, soft_wrap=True, emoji=False, width=_width(sys.stderr))
out_console = _Console(highlight=False, soft_wrap=True, emoji=False, width=_width(sys.stdout))

DEFAULT_STORE = Path("curate-store")
StoreOpt = Annotated[
    Path,
    typer.Option("--store", "-s", envvar="CURATE_STORE", help="Trace store directory (env CURATE_STORE).", show_default=True),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a config field: KEY=VALUE (repeatable).")]
BackendOpt = Annotated[Optional[list[str]], typer.Option("--option", help="Backend config field KEY=VALUE (repeatable).")]
ExecutorOpt = Annotated[str, typer.Option("--executor", help="local: this machine's processes; ray: a Ray cluster "
                                                            "(pip install 'curate[ray]'; docs/scale.md).")]
RayAddressOpt = Annotated[Optional[str], typer.Option("--ray-address", help="With --executor ray: a running cluster (auto, "
                                                      "HOST:PORT, ray://HOST:10001); default: RAY_ADDRESS, else a local instance.")]


def open_store(path: Path):
    from curate.store import TraceStore

    return TraceStore(path)


def warn_store(store) -> None:
    """Print the warnings a store collected while it opened or read (unreadable shards, pending work)."""
    for w in store.warnings:
        warn(str(w))


def progress_bar(*columns, json_: bool = False):
    """A transient rich progress bar on stderr, drawn only on a terminal: rich writes a blank line when a bar
    stops on a console that is not one (where a transient bar shows nothing anyway), which would come before
    an error line."""
    from rich.progress import Progress

    return Progress(*columns, console=err_console, transient=True, disable=json_ or not err_console.is_interactive)


def warn(message: str, label: str = "warning") -> None:
    err_console.print(f"[yellow]{label}:[/] {escape(message)}")


def say(text: Any) -> None:
    """Print a line of plain text (never markup) on stdout."""
    out_console.print(Text(str(text)))


def _json_escaped(text: str) -> str:
    """JSON text with the unprintable characters json.dumps leaves alone written as \\u escapes (same values)."""
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def emit_json(data: Any, enabled: bool) -> bool:
    """With --json: print `data` as one JSON document on stdout and return True (the command is done)."""
    if enabled:
        text = json.dumps(data, default=str, ensure_ascii=False)  # escapes C0 controls; the rest only occur in strings
        sys.stdout.write(_json_escaped(text) + "\n")
    return enabled


def _cell(v) -> str:
    if v is None:
        return ""
    s = printable(str(v))
    return s if len(s) <= 200 else s[:197] + "..."


def print_table(rows: list[dict], title: str | None = None, limit: int | None = None,
                columns: list[str] | None = None) -> None:
    """The one table printer: columns are the union of the rows' keys (or `columns`), cells are literal text."""
    from rich.table import Table

    cols = columns if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
    table = Table(title=None if title is None else Text(title), title_justify="left")
    for c in cols:
        table.add_column(Text(str(c)), overflow="fold")
    for r in rows if limit is None else rows[:limit]:
        table.add_row(*(Text(_cell(r.get(c))) for c in cols))
    out_console.print(table)


def write_rows(fmt: str, columns: list[str], batches) -> None:
    """Record batches as CSV (cells printable, like tables) or as one JSON array of row objects (exact values,
    controls escaped as `emit_json` does), written batch by batch: no copy of the whole result is built."""
    if fmt == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(columns)
        for batch in batches:
            w.writerows(["" if r[c] is None else printable(str(r[c])) for c in columns] for r in batch.to_pylist())
        return
    sep = "["
    for batch in batches:
        if batch.num_rows:
            text = ", ".join(json.dumps(r, default=str, ensure_ascii=False) for r in batch.to_pylist())
            sys.stdout.write(sep + _json_escaped(text))
            sep = ", "
    sys.stdout.write("[]\n" if sep == "[" else "]\n")


def print_result(table, fmt: str = "table", limit: int = 50, counted: bool = True) -> None:
    """A query result (a pyarrow Table) as a table of at most `limit` rows, JSON or CSV (every row).
    `counted`: `table` is the whole result (else it was cut after limit + 1 rows, and the count says "more than")."""
    if fmt in ("json", "csv"):
        write_rows(fmt, table.column_names, table.to_batches())
        return
    rows = table.slice(0, limit).to_pylist()
    print_table(rows, limit=limit, columns=table.column_names)
    if table.num_rows <= limit:
        out_console.print(f"[dim]{table.num_rows} rows[/]")
    else:
        out_console.print(f"[dim]{table.num_rows if counted else f'more than {limit}'} rows (showing {limit})[/]")


def parse_pairs(pairs: list[str] | None, flag: str) -> dict[str, str]:
    """KEY=VALUE options (backend options) into a dict of strings; the backend's config types them."""
    from curate.errors import InputError

    out = {}
    for item in pairs or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{flag} expects key=value, got {item!r}")
        out[key.strip()] = value
    return out


def invocation() -> str:
    """How to run curate again the way this process was started: `curate` when that is on PATH, else the path
    the user typed (`.venv/bin/curate` after `make demo`), else `python -m curate`."""
    import shutil

    argv0 = sys.argv[0] if sys.argv else ""
    if Path(argv0).name != "curate":
        return "python -m curate"
    on_path = shutil.which("curate")
    if on_path and Path(on_path).resolve() == Path(argv0).resolve():
        return "curate"
    return argv0
