"""`curate doctor`: check a store's integrity, and rebuild a damaged catalog from the files beside it.

check(store) reads every table of the catalog in full (DuckDB verifies each block's checksum as it reads),
then cross-checks what the catalog says against the files: every registered shard exists, is whole and
holds the samples the catalog points at; ids and keys are unique; every sample has its features, problem and shard
row; every verdict has its sample. Each problem found is one line. Notes (pending shards, leftover temp
files, quarantined shards) are reported but are not problems.

rebuild(store) builds a fresh catalog from durable files only, and keeps the old one aside:
- samples and their features: from the shards (`shards/*.parquet`, including pending ones);
- problems, verdicts, evaluation results, planned eval samples, study run records and run renames, with
  their created_at/recorded_at: from the write-ahead records every write leaves in `records/`
  (journal.py), replayed in write order through one connection;
- lost: `created_at` of samples and `committed_at` of shards (the rebuild time is used), import resume
  marks (an import rerun then re-reads its source and stores nothing new), and anything written by a
  curate that did not yet keep records (problems and verdicts of such stores cannot be recovered; the check
  says so); records written before they carried their time give their rows the time of the record's name.
Test: tests/test_doctor.py.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from curate.errors import StoreError, first_line
from curate.store import journal, keys
from curate.store import shards as shard_io

TABLES = ("curate_migrations", "problem_rows", "sample_rows", "verdict_rows", "shard_rows", "import_progress")

# (problem line, query returning a count that must be 0)
CONSISTENCY = [
    ("sample ids are not unique", "SELECT count(*) - count(DISTINCT id) FROM sample_rows"),
    ("problem ids are not unique", "SELECT count(*) - count(DISTINCT id) FROM problem_rows"),
    ("verdicts repeat a (sample, verifier, version)",
     "SELECT count(*) FROM (SELECT 1 FROM verdict_rows GROUP BY sample_id, verifier, version HAVING count(*) > 1)"),
    ("sample keys are not unique", "SELECT count(*) - count(DISTINCT skey) FROM sample_rows"),
    ("samples without features", "SELECT count(*) FROM sample_rows WHERE text_chars IS NULL"),
    ("samples whose problem key is out of date",
     "SELECT count(*) FROM sample_rows s JOIN problem_rows p ON p.id = s.problem_id WHERE s.pkey IS DISTINCT FROM p.pkey"),
    ("verdicts whose sample key is out of date",
     "SELECT count(*) FROM verdict_rows v LEFT JOIN sample_rows s ON s.id = v.sample_id WHERE v.skey IS DISTINCT FROM s.skey"),
    ("samples whose latest verdict is out of date",
     f"""SELECT count(*) FROM sample_rows s LEFT JOIN ({keys.latest_verdicts_sql()}) l ON l.skey = s.skey
         WHERE s.v_status IS DISTINCT FROM l.v.status OR s.v_verifier IS DISTINCT FROM l.v.verifier
            OR s.v_version IS DISTINCT FROM l.v.version OR s.v_score IS DISTINCT FROM l.v.score"""),
    ("samples whose problem is not stored",
     "SELECT count(*) FROM sample_rows s ANTI JOIN problem_rows p ON p.id = s.problem_id"),
    ("verdicts whose sample is not stored",
     "SELECT count(*) FROM verdict_rows v ANTI JOIN sample_rows s ON s.id = v.sample_id"),
    ("samples whose shard is not registered",
     "SELECT count(*) FROM sample_rows s ANTI JOIN shard_rows r ON r.name = s.shard"),
    ("shards whose registered row count differs from their samples",
     """SELECT count(*) FROM shard_rows r LEFT JOIN (SELECT shard, count(*) AS n FROM sample_rows GROUP BY shard) c
        ON c.shard = r.name WHERE r.rows <> coalesce(c.n, 0)"""),
]


@dataclass
class CheckReport:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"ok": self.ok, "problems": self.problems, "notes": self.notes, "counts": self.counts}


def check(store) -> CheckReport:
    """Every integrity problem of `store`, one line each (see the module docstring)."""
    from curate.store.connection import lock_timeout
    from curate.store.locking import store_lock

    rep = CheckReport()
    store._require()
    with store_lock(store.path, exclusive=False, timeout=lock_timeout()):  # no writer changes it under us
        _check(store, rep)
    return rep


def _check(store, rep: CheckReport) -> None:
    from curate.store.connection import connect

    try:
        con = connect(store.db_path, read_only=True)
    except StoreError as e:
        if type(e) is not StoreError:  # locked: not a verdict on the store's health
            raise
        rep.problems.append(f"catalog {store.db_path}: cannot be opened ({e.message}); `curate doctor --rebuild` rebuilds it")
        _check_files(store, rep, registered=None)
        return
    try:
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()").fetchall()}
        readable = set()
        for t in TABLES:
            if t not in tables:
                continue
            try:
                rep.counts[t] = int(con.execute(f"SELECT count(*), sum(hash(COLUMNS(*))) FROM {t}").fetchone()[0])
                readable.add(t)
            except duckdb.Error as e:
                rep.problems.append(f"catalog table {t}: unreadable ({first_line(e)}); `curate doctor --rebuild` rebuilds the catalog")
        needed = {"problem_rows", "sample_rows", "verdict_rows", "shard_rows"}
        if "feature_rows" in tables:  # written before the keyed layout: the next command converts it
            rep.notes.append("the catalog predates integer keys; the next command that opens it converts it in place")
        elif needed <= readable:
            for line, q in CONSISTENCY:
                n = int(con.execute(q).fetchone()[0])
                if n:
                    rep.problems.append(f"catalog: {line} ({n})")
        registered = None
        if "shard_rows" in readable and "sample_rows" in readable:
            registered = {name: rows for name, rows in con.execute("SELECT name, rows FROM shard_rows").fetchall()}
            _check_shard_contents(store, con, registered, rep)
    finally:
        con.close()
    _check_files(store, rep, registered)


def _check_shard_contents(store, con, registered: dict[str, int], rep: CheckReport) -> None:
    by_shard: dict[str, set[str]] = {}
    for sid, shard in con.execute("SELECT id, shard FROM sample_rows").fetchall():
        by_shard.setdefault(shard, set()).add(sid)
    for name, rows in sorted(registered.items()):
        if rows == 0:
            continue  # every row was already stored; the file was removed on purpose
        path = store.shard_dir / f"{name}.parquet"
        if not path.exists():
            rep.problems.append(f"shard {path}: missing; the text of its {rows} samples is lost (their metadata is intact)")
            continue
        try:
            if not shard_io.looks_complete(path):
                raise ValueError("truncated file")
            ids = set(pq.read_table(path, columns=["id"]).column("id").to_pylist())
        except Exception as e:  # any reader failure is a finding about this file
            rep.problems.append(f"shard {path}: unreadable ({first_line(e)})")
            continue
        missing = by_shard.get(name, set()) - ids
        if missing:
            rep.problems.append(f"shard {path}: lacks {len(missing)} of the samples the catalog places in it")


def _check_files(store, rep: CheckReport, registered: dict[str, int] | None) -> None:
    if store.shard_dir.exists():
        tmp = [p for p in store.shard_dir.iterdir() if p.name.startswith(".tmp-")]
        if tmp:
            rep.notes.append(f"{len(tmp)} temporary shard files from killed writers in {store.shard_dir} (safe to delete)")
        if registered is not None:
            pending = [p for p in store.shard_dir.glob("*.parquet") if not p.name.startswith(".tmp-") and p.stem not in registered]
            if pending:
                rep.notes.append(f"{len(pending)} shards are written but not committed yet (the next write commits them)")
    qdir = store.path / "quarantine"
    if qdir.exists() and any(qdir.iterdir()):
        rep.notes.append(f"{sum(1 for _ in qdir.iterdir())} files set aside in {qdir} because they could not be read")
    if not store.records_dir.exists():
        rep.notes.append("no problem/verdict records: a rebuild could recover samples and features only")


@dataclass
class RebuildReport:
    catalog: str = ""
    kept_as: str | None = None
    problems: int = 0
    samples: int = 0
    verdicts: int = 0
    shards: int = 0
    records: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def rebuild(store) -> RebuildReport:
    """A new catalog from the records and shards; the old one is kept as catalog.duckdb.damaged-<time>."""
    from curate.store.connection import lock_timeout
    from curate.store.locking import store_lock
    from curate.store.store import TraceStore

    t0 = time.monotonic()
    if not store.path.is_dir():
        raise StoreError(f"no store at {store.path}")
    rep = RebuildReport(catalog=str(store.db_path))
    with store_lock(store.path, exclusive=True, timeout=lock_timeout()):  # no writer while we swap catalogs
        work = store.path / ".rebuild"
        shutil.rmtree(work, ignore_errors=True)
        fresh = TraceStore(work)
        fresh.shard_dir = store.shard_dir  # the real shards, read in place: nothing is copied or deleted
        fresh.path.mkdir()
        fresh.keep_records = False
        fresh.unlink_empty_shards = False
        files = store.record_files()
        with fresh.session():  # one connection for the whole replay, checkpointed once at the end
            for kind, path in files:
                journal.replay(fresh, kind, path)
            fresh.commit_pending()
        rep.records = len(files)
        counts = fresh.counts()
        rep.problems, rep.samples, rep.verdicts, rep.shards = (counts[k] for k in ("problems", "samples", "verdicts", "shards"))
        store.warnings += fresh.warnings
        if store.exists:
            kept = store.path / f"{store.db_path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}"
            os.replace(store.db_path, kept)
            wal = Path(str(store.db_path) + ".wal")
            if wal.exists():
                os.replace(wal, Path(str(kept) + ".wal"))
            rep.kept_as = str(kept)
        os.replace(fresh.db_path, store.db_path)
        shutil.rmtree(work, ignore_errors=True)
    rep.seconds = round(time.monotonic() - t0, 3)
    return rep


def doctor(store, rebuild_catalog: bool = False, compact: bool = True) -> tuple[CheckReport, RebuildReport | None]:
    """What `curate doctor` runs: an optional rebuild, then the check of the result; a healthy store's
    records are then compacted (journal.compact), noted in the report."""
    built = rebuild(store) if rebuild_catalog else None
    rep = check(store)
    if compact and rep.ok and store.records_dir.exists():
        try:
            removed = journal.compact(store)
        except StoreError as e:  # a check must not fail because the disk is full: the records stay as they are
            rep.notes.append(f"records not compacted ({e.message})")
        else:
            if removed:
                rep.notes.append(f"compacted {store.records_dir}: {removed} record files replaced by one per kind")
    return rep, built
