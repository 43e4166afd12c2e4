"""Write-ahead records (`records/<kind>/*.parquet`): what `curate doctor --rebuild` replays into a new catalog.

Every write of something the shards do not hold leaves a record under the write lock, before its
transaction (and removes it again if the transaction fails; a failed checkpoint after a commit keeps it): problems, verdicts, eval results, planned eval samples, what a study
recorded about a run (`study_runs`) and run renames (`renames`). Each record carries the `created_at`
(`recorded_at` for study runs) its rows get in the catalog, so a rebuild restores those times exactly.

A record's name is `<nanosecond clock>-<random>[-replace]`; `-replace` marks a relabel batch or an eval import
that replaces an earlier one. A rebuild replays problems first, then every other record in write order (a rename
applies to the eval rows written before it, not to later ones).

`compact(store)` (run by `curate doctor` on a healthy store) bounds how many files `records/` holds: under
the store's write lock it writes each recorded table of the catalog as one record (the catalog is exactly
what replaying the old records gives), then deletes the records it replaces. A kill between the two
leaves both, and replaying both gives the same catalog. Tested in tests/test_doctor.py.
"""
from __future__ import annotations

import contextlib
import datetime
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate.store import shards as shard_io

KINDS = ("problems", "verdicts", "eval_samples", "evals", "study_runs", "renames")
RENAME_SCHEMA = pa.schema([("run", pa.string()), ("new_name", pa.string()), ("suite", pa.string())])
_TIME_COLUMN = {"study_runs": "recorded_at"}


def time_column(kind: str) -> str:
    return _TIME_COLUMN.get(kind, "created_at")


def stamped(table: pa.Table, column: str = "created_at", at: datetime.datetime | None = None) -> pa.Table:
    """`table` with a timestamp column (local time, as DuckDB's now() stores it); kept when already there."""
    if column in table.column_names:
        return table
    at = (at or datetime.datetime.now()).replace(tzinfo=None)
    return table.append_column(column, pa.array([at] * table.num_rows, pa.timestamp("us")))


def write_record(store, kind: str, table: pa.Table, replace: bool = False) -> Path | None:
    """A durable copy of a batch, written before its transaction; None while a rebuild replays records."""
    if not store.keep_records or table.num_rows == 0:
        return None
    name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}" + ("-replace" if replace else "")
    try:
        return shard_io.write_atomic(table, store.records_dir / kind, name)
    except OSError as e:
        raise store.write_error(e) from None


def discard_record(record: Path | None) -> None:
    """Remove the record of a batch whose transaction failed (best effort: a rebuild would only re-add it)."""
    if record is not None:
        with contextlib.suppress(OSError):
            record.unlink()


def record_files(store) -> list[tuple[str, Path]]:
    """(kind, path) of every record: problems first, then every other kind merged in write order."""
    problems, rest = [], []
    for kind in KINDS:
        d = store.records_dir / kind
        if d.exists():
            # regular files only: a symlink could bring a file from outside the store into a rebuilt catalog
            found = [(kind, p) for p in sorted(d.glob("*.parquet"))
                     if not p.name.startswith(".tmp-") and not p.is_symlink() and p.is_file()]
            (problems if kind == "problems" else rest).extend(found)
    return problems + sorted(rest, key=lambda kp: kp[1].name)


def read_record(kind: str, path: Path) -> pa.Table:
    """A record as written; one from before records carried their time gets the time of its name."""
    table = pq.read_table(path)
    col = time_column(kind)
    if col not in table.column_names and kind != "renames":
        ns = int(path.name.split("-", 1)[0])
        table = stamped(table, col, datetime.datetime.fromtimestamp(ns / 1e9))
    return table


def replay(fresh, kind: str, path: Path) -> None:
    """Apply one record to `fresh` through the same functions that wrote it."""
    from curate.store import evals, lineage

    table = read_record(kind, path)
    if kind == "problems":
        fresh.add_problem_table(table)
    elif kind == "verdicts":
        fresh.add_verdict_table(table, replace=path.stem.endswith("-replace"))
    elif kind == "eval_samples":
        evals.plan_sample_table(fresh, table)
    elif kind == "evals":
        evals.write_eval_table(fresh, table, replace=path.stem.endswith("-replace"))
    elif kind == "study_runs":
        lineage.record_run_table(fresh, table)
    else:
        for r in table.to_pylist():
            lineage.retire_run(fresh, r["run"], r["new_name"], r["suite"])


# What compaction writes per kind: the catalog's rows in the shape of that kind's records.
_SNAPSHOT_SQL = {
    "problems": "SELECT id, source, domain, prompt, reference::VARCHAR AS reference, metadata::VARCHAR AS metadata, "
                "split, created_at FROM problem_rows ORDER BY pkey",
    "verdicts": "SELECT sample_id, verifier, version, status, score, answer, reason, duration_s, created_at "
                "FROM verdict_rows ORDER BY sample_id, verifier, version",
    "eval_samples": "SELECT * FROM eval_sample_rows ORDER BY ALL",
    "evals": "SELECT * EXCLUDE (details, created_at), details::VARCHAR AS details, created_at FROM eval_rows ORDER BY ALL",
    "study_runs": "SELECT * FROM study_run_rows ORDER BY run",
}


def compact(store) -> int:
    """Replace every kind's records by one record of the catalog's rows; returns the files removed."""
    from curate.store.evals import EVAL_COLUMNS

    old = [p for _, p in record_files(store)]
    if len(old) <= len(_SNAPSHOT_SQL):
        return 0
    written: list[Path] = []
    with store._write() as con:
        old = [p for _, p in record_files(store)]  # as of holding the lock: no writer adds one now
        base = time.time_ns()
        try:
            for i, (kind, sql) in enumerate(_SNAPSHOT_SQL.items()):
                if kind == "evals":  # the record's column order is the one writes use
                    sql = f"SELECT {', '.join(EVAL_COLUMNS)}, created_at FROM ({sql})"
                table = con.sql(sql).to_arrow_table()
                if table.num_rows:
                    name = f"{base + i:020d}-compacted"
                    written.append(shard_io.write_atomic(table, store.records_dir / kind, name))
        except OSError as e:
            for p in written:
                discard_record(p)
            raise store.write_error(e) from None
    keep = set(written)
    removed = 0
    for p in old:
        if p not in keep:
            discard_record(p)
            removed += 1
    return removed
