"""Printing query results as a rich table, JSON lines or CSV (shared by `curate sql` and friends).

Data is printed literally: table cells are rich Text, never markup. Tested by tests/test_security.py.
"""
from __future__ import annotations

import csv
import io
import json
import sys

import pyarrow as pa


def _cell(v) -> str:
    if v is None:
        return ""
    s = str(v)
    return s if len(s) <= 200 else s[:197] + "..."


def print_result(table: pa.Table, console, fmt: str = "table", limit: int = 50) -> None:
    rows = table.to_pylist()
    if fmt == "json":
        sys.stdout.write(json.dumps(rows, default=str, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(table.column_names)
        for r in rows:
            w.writerow(["" if r[c] is None else r[c] for c in table.column_names])
        sys.stdout.write(buf.getvalue())
    else:
        from rich.table import Table
        from rich.text import Text

        # Text, not str: rich would read `[bold]` in a trace as markup and `:x:` as an emoji
        t = Table(show_lines=False)
        for c in table.column_names:
            t.add_column(Text(c), overflow="fold")
        for r in rows[:limit]:
            t.add_row(*(Text(_cell(r[c])) for c in table.column_names))
        console.print(t)
        more = f" (showing {limit})" if len(rows) > limit else ""
        console.print(f"[dim]{len(rows)} rows{more}[/]")
