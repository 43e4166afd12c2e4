"""TraceStore: a directory holding a DuckDB catalog (`catalog.duckdb`) and Parquet shards (`shards/`).

The catalog holds problems, sample metadata, verdicts, features and the list of committed shards; trace
text stays in the shards and is joined in by the `texts`/`traces` views. Every method opens a connection,
works and closes it, so other processes (`curate sql` during a long generation) get their turn.

Writes are idempotent: ids are content hashes and every insert is an anti-join against what is stored.
Committing a shard is one transaction (insert rows + register the shard), so a kill at any point leaves
the shard either fully committed or still pending; the next commit picks it up without duplicates.

One writer or many readers at a time: every connection holds the store lock (locking.py) from before DuckDB
opens the catalog until after it has closed it, and a writer checkpoints before it lets go, so a reader
normally replays no WAL. When that checkpoint fails (disk full), what the writer committed stays in
`catalog.duckdb.wal`: readers see it, and the next write on a healthy disk checkpoints it away. A failure to write (disk full, read-only, permission denied) is a StoreError naming the path
and cause; a shard is set aside in `quarantine/` only when reading it fails on its own.

Problems, verdicts, eval results and study records also leave write-ahead records (journal.py:
`records/<kind>/*.parquet`, written before their transaction, removed if it fails, carrying the rows'
created_at), so `curate doctor --rebuild` can rebuild a damaged catalog from files.
"""
from __future__ import annotations

import bisect
import contextlib
import hashlib
import itertools
import json
import os
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import InputError, StoreError, first_line
from curate.records import Problem, Sample, Verdict, canonical_json
from curate.store import commit, journal, keys
from curate.store import shards as shard_io
from curate.store.connection import (connect, connect_readonly, lock_down, lock_down_writer, lock_timeout, run_query,
                                     trust_catalog)
from curate.store.journal import discard_record  # noqa: F401 (re-exported for writers of records)
from curate.store.locking import store_lock
from curate.store.migrations import KNOWN, MIGRATIONS, newer_store_error
from curate.store.sqlcheck import check_predicate, check_statement, referenced_names
from curate.store.views import create_views

CATALOG = "catalog.duckdb"
SHARD_ROWS = 131_072  # rows per shard file: bounded reader memory, and parallel writes for big batches
SHARDS = "shards"
RECORDS = "records"
_OS_CAUSES = ("No space left on device", "Read-only file system", "Permission denied", "Disk quota exceeded")
WRITE_HINT = "free space or fix the permissions, then rerun the same command; `curate doctor` checks the store"

PROBLEM_SCHEMA = pa.schema(
    [("id", pa.string()), ("source", pa.string()), ("domain", pa.string()), ("prompt", pa.string()),
     ("reference", pa.string()), ("metadata", pa.string()), ("split", pa.string())]
)
VERDICT_SCHEMA = pa.schema(
    [("sample_id", pa.string()), ("verifier", pa.string()), ("version", pa.string()), ("status", pa.string()),
     ("score", pa.float64()), ("answer", pa.string()), ("reason", pa.string()), ("duration_s", pa.float64())]
)


def sql_error(e: duckdb.Error, query: str | None = None) -> StoreError:
    """One readable line from a DuckDB error (its message, not a traceback)."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    msg = " ".join(lines) if lines else type(e).__name__
    hint = "`curate schema` lists the views and their columns"
    if isinstance(e, duckdb.OutOfMemoryException):  # DuckDB's own advice (SET threads, ...) is locked here
        msg = msg.split(" Possible solutions:")[0]
        hint = "reads are limited by CURATE_SQL_MEMORY (default 50%) and CURATE_SQL_THREADS; raise them or narrow the query"
    elif isinstance(e, duckdb.PermissionException):
        hint = "queries read only the store's views: files, URLs, extensions and settings are off limits"
    if len(msg) > 400:
        msg = msg[:400] + "..."
    return StoreError(f"SQL error: {msg}", hint=hint)


class TraceStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"store path {self.path} is a file, not a directory", hint="pass a directory with --store")
        self.db_path = self.path / CATALOG
        self.shard_dir = self.path / SHARDS
        self.records_dir = self.path / RECORDS
        self._session: duckdb.DuckDBPyConnection | None = None
        self._reads: _SharedRead | None = None
        self.keep_records = True  # both off only while `curate doctor --rebuild` replays records and shards
        self.unlink_empty_shards = True
        self.warnings: list[str] = []

    # ------------------------------------------------------------------ connections
    @property
    def exists(self) -> bool:
        return self.db_path.exists()

    def _require(self) -> None:
        if not self.exists:
            raise StoreError(f"no store at {self.path}", hint="create one with `curate import`, `curate tasks add` or `curate demo`")

    def write_error(self, e: BaseException, what: str | None = None) -> StoreError:
        """One line naming the store (or file) and the cause of a failed write."""
        cause = e.strerror if isinstance(e, OSError) and e.strerror else first_line(e)
        known = [c for c in _OS_CAUSES if c in cause]
        cause = known[0] if known and not isinstance(e, OSError) else cause  # DuckDB wraps the OS error in prose
        where = what or (e.filename if isinstance(e, OSError) and e.filename else None)
        return StoreError(f"cannot write to the store {self.path}: {cause}" + (f" ({where})" if where else ""),
                          hint=WRITE_HINT)

    def check_writable(self) -> None:
        """Raise a one-line StoreError unless the store directory, its catalog and its shards can be written."""
        for d in (self.path, self.shard_dir):
            try:
                d.mkdir(parents=True, exist_ok=True)
                probe = d / f".tmp-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                try:
                    with open(probe, "wb") as f:
                        f.write(b"\0" * 4096)  # a real block, so a full disk shows here and not after generating
                        f.flush()
                        os.fsync(f.fileno())
                finally:
                    with contextlib.suppress(OSError):
                        probe.unlink()
            except OSError as e:
                raise self.write_error(e, str(d)) from None
        for f in (self.db_path, Path(str(self.db_path) + ".wal")):
            if f.exists() and not os.access(f, os.W_OK):
                raise self.write_error(PermissionError(13, "Permission denied"), str(f))

    @contextlib.contextmanager
    def session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Hold one write connection across many writes (a rebuild's replay): every `_write` inside reuses it."""
        with self._write() as con:
            self._session = con
            try:
                yield con
            finally:
                self._session = None

    @contextlib.contextmanager
    def _write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The single writer: the store lock, a read-write connection, and a checkpoint before letting go."""
        if self._session is not None:
            yield self._session
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise self.write_error(e, str(self.path)) from None
        with store_lock(self.path, exclusive=True, timeout=lock_timeout()):
            con = connect(self.db_path, read_only=False)
            failed = True
            try:
                lock_down_writer(con, [self.path, self.shard_dir, self.records_dir])
                self._migrate(con)
                yield con
                try:
                    con.execute("CHECKPOINT")  # a WAL outlives its writer only when this fails
                except duckdb.Error as e:
                    raise self.write_error(e, f"checkpointing {self.db_path.name}; what was committed is kept in "
                                              f"{self.db_path.name}.wal until the next write") from None
                failed = False
            except duckdb.Error as e:
                raise self.write_error(e) from None
            finally:
                try:
                    con.close()
                except duckdb.Error as e:
                    if not failed:  # an error already on its way is the one that matters
                        raise self.write_error(e) from None
                trust_catalog(self.db_path)  # checked when opened; since then it gained only what we wrote

    @staticmethod
    def _transaction(con, body):
        """Run body() in one transaction. A failed COMMIT ends the transaction itself, so the ROLLBACK that
        follows may fail too: the original error is the one raised."""
        con.execute("BEGIN TRANSACTION")
        try:
            out = body()
            con.execute("COMMIT")
            return out
        except BaseException:
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass
            raise

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Reads inside the block share one connection: opening a catalog costs DuckDB about 15 ms of CPU, a
        visible share of a small job (a generation plan reads problems, then the stored sample ids). The first
        read opens it with the views it needs; a later read that needs more reopens it with both (a second
        connection in this process would get the first one's locked-down database). The block holds the
        store's shared lock, so writers wait for it: keep it to a few reads."""
        if self._reads is not None:
            yield
            return
        self._reads = _SharedRead()
        try:
            yield
        finally:
            self._reads.close()
            self._reads = None

    @contextlib.contextmanager
    def connect(self, names: set[str] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only, locked-down connection with the views in place (migrating an older store first).

        Every read, and so all user SQL, runs here: only the catalog and the committed shards are
        reachable, and no setting can change (see curate/store/connection.py). `names`: the columns the
        queries on this connection mention (sqlcheck.referenced_names), so `traces` joins only what they use.
        Inside a `reading()` block this is the block's connection."""
        shared = self._reads
        if shared is None:
            with self._open_read(names) as con:
                yield con
            return
        if not shared.covers(names):
            shared.close()
            shared.names = names if shared.con is None or names is None or shared.names is None else shared.names | names
            shared.con = shared.stack.enter_context(self._open_read(shared.names))
        yield shared.con

    @contextlib.contextmanager
    def _open_read(self, names: set[str] | None) -> Iterator[duckdb.DuckDBPyConnection]:
        self._require()
        migrate = False
        with store_lock(self.path, exclusive=False, timeout=lock_timeout()):  # held until DuckDB has closed
            con = connect_readonly(self.db_path)
            try:
                migrate = bool(self._pending_migrations(con))
                if not migrate:
                    # A query that names no text never opens a shard (a stat per file adds up on a network
                    # filesystem): its texts views are empty and it may read no shard file.
                    text = names is None or not names.isdisjoint(("text", "texts", "shard_texts"))
                    shards = self._readable_shards(con) if text else []
                    lock_down(con, [path for path, _ in shards])
                    try:
                        create_views(con, shards, names)
                    except duckdb.Error:  # a shard that is Parquet but not a shard (no `text`): leave it out
                        create_views(con, self._shards_with_text(shards), names)
                    yield con
            finally:
                con.close()
        if migrate:  # an older store: migrate under the write lock, then read
            with self._write():
                pass
            with self._open_read(names) as con:
                yield con

    def _pending_migrations(self, con) -> list[str]:
        has = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'curate_migrations' AND database_name = current_database()"
        ).fetchone()[0]
        applied = [r[0] for r in con.execute("SELECT name FROM curate_migrations").fetchall()] if has else []
        unknown = sorted(set(applied) - KNOWN)
        if unknown:
            raise newer_store_error(self.path, unknown)
        return [name for name, _ in MIGRATIONS if name not in applied]

    def _migrate(self, con) -> None:
        con.execute("CREATE TABLE IF NOT EXISTS curate_migrations (name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)")
        for name in self._pending_migrations(con):
            step = dict(MIGRATIONS)[name]

            def body(step=step, name=name) -> None:
                step(con, self) if callable(step) else con.execute(step)
                con.execute("INSERT INTO curate_migrations VALUES (?, now())", [name])

            self._transaction(con, body)

    def _readable_shards(self, con) -> list[tuple[str, int]]:
        """(path, shard_no) of every committed shard with rows whose file looks whole, in shard_no order."""
        out = []
        for name, number in con.execute("SELECT name, shard_no FROM shard_rows WHERE rows > 0 ORDER BY shard_no").fetchall():
            p = shard_io.shard_path(self.shard_dir, name)
            if shard_io.looks_complete(p):
                out.append((str(p.resolve()), number))
            else:
                self._warn_once(f"shard {p} is missing or damaged; its trace text is unavailable (other data is intact)",
                                stacklevel=4)
        return out

    def _warn_once(self, msg: str, stacklevel: int) -> None:
        """Keep `msg` in self.warnings (the CLI prints them) and warn once per store object."""
        if msg not in self.warnings:
            self.warnings.append(msg)
            warnings.warn(msg, stacklevel=stacklevel)

    def _shards_with_text(self, shards: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """The shards whose file has a `text` column; a warning names each one that has not."""
        out = []
        for path, number in shards:
            try:
                ok = "text" in pq.read_schema(path).names
            except Exception:  # whatever pyarrow raises, the file is no readable shard
                ok = False
            if ok:
                out.append((path, number))
            else:
                self._warn_once(f"shard {path} has no text column; its trace text is unavailable (other data is intact)",
                                stacklevel=5)
        return out

    # ------------------------------------------------------------------ writing
    def init(self) -> "TraceStore":
        with self._write():
            pass
        return self

    def add_problems(self, problems: Iterable[Problem]) -> int:
        rows: dict[str, dict] = {}
        for p in problems:
            if p.id not in rows:
                rows[p.id] = {"id": p.id, "source": p.source, "domain": p.domain, "prompt": p.prompt,
                              "reference": canonical_json(p.reference), "metadata": canonical_json(p.metadata), "split": p.split}
        table = pa.Table.from_pylist(list(rows.values()), schema=PROBLEM_SCHEMA)
        return self.add_problem_table(table)

    def add_problem_table(self, table: pa.Table) -> int:
        if table.num_rows == 0:
            with self._write():
                return 0

        def insert(con) -> int:
            base = keys.next_key(con, "problem_rows", "pkey")
            n = con.execute(
                """INSERT INTO problem_rows
                SELECT $1 + row_number() OVER (), n.id, n.source, n.domain, n.prompt, n.reference::JSON,
                       n.metadata::JSON, n.split, n.created_at
                FROM new_problems n ANTI JOIN problem_rows p ON p.id = n.id""", [base]).fetchone()[0]
            if n and con.execute("SELECT count(*) FROM sample_rows WHERE pkey IS NULL").fetchone()[0]:
                con.execute("""UPDATE sample_rows s SET pkey = p.pkey FROM problem_rows p
                    WHERE s.pkey IS NULL AND p.pkey > $1 AND p.id = s.problem_id""", [base]).fetchall()
            return int(n)

        return self._recorded_write("problems", table, "new_problems", insert)

    def _recorded_write(self, kind: str, table: pa.Table, name: str, body: Callable, replace: bool = False):
        """Leave the write-ahead record of `table`, then run body(con) in one transaction with `table`
        registered as `name`. The record is removed again when the transaction fails."""
        table = journal.stamped(table)  # the rows' created_at, the same in the record and the catalog
        with self._write() as con:
            # Written under the write lock, so a record compaction sees belongs to a finished transaction;
            # kept when only the checkpoint after the commit fails (the rows are committed then).
            record = self._write_record(kind, table, replace)
            try:
                con.register(name, table)
                out = self._transaction(con, lambda: body(con))
                con.unregister(name)
                return out
            except BaseException:
                discard_record(record)
                raise

    # ------------------------------------------------------------------ write-ahead records (journal.py)
    def _write_record(self, kind: str, table: pa.Table, replace: bool = False) -> Path | None:
        return journal.write_record(self, kind, table, replace)

    def record_files(self) -> list[tuple[str, Path]]:
        return journal.record_files(self)

    def write_shard(self, samples: Iterable[Sample] | pa.Table, prefix: str = "s") -> list[Path]:
        """Producer side: write samples (with features) as pending shards. No catalog lock is taken.

        Features are computed on a thread per core (shards.with_features), then a large batch is split into
        shards of SHARD_ROWS, each written by its own thread (Parquet compression releases the GIL)."""
        table = samples if isinstance(samples, pa.Table) else shard_io.samples_to_table(samples)
        if table.num_rows == 0:
            return []
        if "f_text_chars" not in table.column_names:
            table = shard_io.with_features(table)
        parts = [table.slice(i, SHARD_ROWS) for i in range(0, table.num_rows, SHARD_ROWS)]

        def write(part: pa.Table) -> Path:
            return shard_io.write_atomic(part, self.shard_dir, shard_io.new_shard_name(prefix))

        try:
            if len(parts) == 1:
                return [write(parts[0])]
            with ThreadPoolExecutor(max_workers=min(len(parts), os.cpu_count() or 1)) as pool:
                return list(pool.map(write, parts))
        except OSError as e:  # disk full, read-only, permission denied: nothing of this batch is stored
            raise self.write_error(e) from None

    def add_samples(self, samples: Iterable[Sample] | pa.Table) -> int:
        """Write one shard and commit it (and anything else pending). Returns newly stored samples."""
        self.write_shard(samples)
        return self.commit_pending()

    def pending_shards(self, con=None) -> list[Path]:
        """Shard files on disk that the catalog has not registered yet (read on `con`, else a short read)."""
        if not self.shard_dir.exists():
            return []
        files = sorted(p for p in self.shard_dir.glob("*.parquet") if not p.name.startswith(".tmp-"))
        if not files or (con is None and not self.exists):
            return files
        if con is None:
            with self.connect(set()) as own:  # reads shard_rows only: no committed shard file is opened
                return self.pending_shards(own)
        done = {r[0] for r in con.execute("SELECT name FROM shard_rows").fetchall()}
        return [p for p in files if p.stem not in done]

    def commit_pending(self) -> int:
        """The single writer: commit every pending shard in one short transaction. Returns new samples."""
        with self._write() as con:
            return commit.commit_shards(self, con, self.pending_shards(con))

    def add_verdicts(self, verdicts: Iterable[Verdict], replace: bool = False) -> int:
        rows: dict[tuple, dict] = {}
        for v in verdicts:
            if not v.sample_id:
                raise InputError(f"verdict from {v.verifier} has no sample_id")
            rows[(v.sample_id, v.verifier, v.version)] = {
                "sample_id": v.sample_id, "verifier": v.verifier, "version": v.version, "status": v.status,
                "score": float(v.score), "answer": v.answer, "reason": v.reason, "duration_s": float(v.duration_s)}
        if not rows:
            return 0
        return self.add_verdict_table(pa.Table.from_pylist(list(rows.values()), schema=VERDICT_SCHEMA), replace=replace)

    def add_verdict_table(self, table: pa.Table, replace: bool = False) -> int:
        """Insert verdict rows (VERDICT_SCHEMA, one per key); `replace` overwrites stored ones with these keys."""

        def insert(con) -> int:
            con.execute("""CREATE OR REPLACE TEMP TABLE keyed_verdicts AS
                SELECT s.skey, n.* FROM new_verdicts n LEFT JOIN sample_rows s ON s.id = n.sample_id""")
            if replace:
                con.execute(
                    """DELETE FROM verdict_rows v USING keyed_verdicts n
                    WHERE v.sample_id = n.sample_id AND v.verifier = n.verifier AND v.version = n.version""")
            cols = ", ".join(keys.VERDICT_COLUMNS)
            n = con.execute(
                f"""INSERT INTO verdict_rows (skey, {cols}, created_at) SELECT n.skey, {', '.join('n.' + c for c in keys.VERDICT_COLUMNS)}, n.created_at
                FROM keyed_verdicts n
                ANTI JOIN verdict_rows v ON v.sample_id = n.sample_id AND v.verifier = n.verifier AND v.version = n.version"""
            ).fetchone()[0]
            if n or replace:
                keys.refresh_latest(con, "SELECT skey FROM keyed_verdicts WHERE skey IS NOT NULL")
            con.execute("DROP TABLE keyed_verdicts")
            return int(n)

        return self._recorded_write("verdicts", table, "new_verdicts", insert, replace)

    def record_import_progress(self, source_key: str, run_id: str, rows: int, byte_offset: int | None) -> None:
        """Mark the first `rows` input rows of an import as committed (called after their data is)."""
        with self._write() as con:
            con.execute("INSERT INTO import_progress VALUES (?, ?, ?, ?, now())", [source_key, run_id, rows, byte_offset])

    def import_progress(self, source_key: str) -> tuple[int, int | None, dict[str, int]]:
        """(rows committed, byte offset after them, samples stored per problem by that import) for a resume."""
        if not self.exists:
            return 0, None, {}
        with self.connect() as con:  # connect() migrates first, so the table exists
            row = con.execute(
                "SELECT rows, byte_offset, run_id FROM import_progress WHERE source_key = ? ORDER BY rows DESC LIMIT 1",
                [source_key]).fetchone()
            if row is None:
                return 0, None, {}
            seen = dict(con.execute(
                "SELECT problem_id, max(sample_index) + 1 FROM sample_rows WHERE run_id = ? GROUP BY problem_id",
                [row[2]]).fetchall())
        return int(row[0]), row[1], {k: int(v) for k, v in seen.items()}

    # ------------------------------------------------------------------ reading
    def query(self, sql: str, params: list | None = None, max_rows: int | None = None,
              consume: Callable[[pa.RecordBatchReader], Any] | None = None) -> Any:
        """Run one read-only statement over the views (checked first: see sqlcheck.check_statement) on the
        locked-down connection, with the statement timeout; errors come back as one StoreError line.
        `max_rows`: fetch at most that many rows (streamed; the rest is never materialised). `consume`: hand
        the result to it as a reader of small record batches while the connection is open and return what it
        returns (a result larger than memory is never held whole) instead of an Arrow table."""
        if not sql or not sql.strip():
            raise InputError("empty SQL query")
        check_statement(sql)
        with self.connect(referenced_names(sql)) as con:
            try:
                return run_query(con, sql, params, max_rows=max_rows, consume=consume)
            except duckdb.Error as e:
                raise sql_error(e) from None

    def problems(self, where: str | None = None, params: list | None = None) -> list[Problem]:
        """Problems matching `where`, one boolean expression over the `problems` view."""
        q = "SELECT id, source, domain, prompt, reference, metadata, split FROM problems"
        if where:
            q += f" WHERE {check_predicate(where, 'problems', 'predicate over `problems`')}"
        rows = self.query(q + " ORDER BY id", params).to_pylist()
        return [_problem(r) for r in rows]

    def sample_ids(self, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        if not ids or not self.exists:
            return set()
        t = pa.table({"id": pa.array(ids, pa.string())})
        with self.connect(set()) as con:  # reads sample_rows only: a resume check opens no shard file
            con.register("wanted", t)
            try:
                return {r[0] for r in con.execute("SELECT s.id FROM sample_rows s SEMI JOIN wanted USING (id)").fetchall()}
            finally:
                con.unregister("wanted")  # the connection may be shared by a `reading()` block

    def unlabeled_plan(self, verifier: str, version: str, where: str | None = None, relabel: bool = False,
                       ) -> tuple[list[tuple[Path, list[tuple[str, str, int]]]], dict[str, Problem]]:
        """The samples without a verdict from this verifier version, without reading any text.

        Returns ([(shard file, [(sample_id, problem_id, row), ...]), ...], {problem_id: Problem}), shards in
        key order, rows ascending: `row` is the sample's position in its shard file (read the text with
        `shard_texts`). `where` is a predicate over the `traces` view. Samples whose problem is not stored,
        or whose shard was lost before integer keys existed, are left out."""
        # `traces` joins trace text in only when the predicate names `text` (store/views.py).
        pred = check_predicate(where, 'traces', 'predicate over `traces`') if where else "true"
        skip = "" if relabel else (
            "AND NOT EXISTS (SELECT 1 FROM verdict_rows v WHERE v.skey = s.skey AND v.verifier = $1 AND v.version = $2)")
        chosen = f"s.id IN (SELECT id FROM traces WHERE {pred})" if where else "true"
        query = f"""SELECT s.id, s.problem_id, s.shard, s.skey % {1 << keys.ROW_BITS} AS row FROM sample_rows s
            WHERE {chosen} AND s.skey >= 0 AND s.pkey IS NOT NULL {skip} ORDER BY s.skey"""
        with self.connect(referenced_names(f"SELECT 1 FROM traces WHERE {pred}")) as con:
            try:
                t = run_query(con, query, [verifier, version] if skip else None)
            except duckdb.Error as e:
                raise sql_error(e) from None
            ids, pids, shards, rows = (t.column(i).to_pylist() for i in range(4))
            probs = {}
            if pids:
                con.register("pids", pa.table({"id": pa.array(sorted(set(pids)), pa.string())}))
                for r in con.sql("SELECT p.* FROM problems p SEMI JOIN pids USING (id)").to_arrow_table().to_pylist():
                    probs[r["id"]] = _problem(r)
        plan: dict[str, list[tuple[str, str, int]]] = {}
        for sid, pid, shard, row in zip(ids, pids, shards, rows):
            plan.setdefault(shard, []).append((sid, pid, int(row)))
        return [(shard_io.shard_path(self.shard_dir, shard), items) for shard, items in plan.items()], probs

    @staticmethod
    def shard_texts(path: Path, rows: list[int]) -> list[str] | None:
        """The trace text at these row positions of a shard file (None when the file is missing or damaged).
        Only the row groups holding those rows are read and decoded."""
        if not shard_io.looks_complete(path):
            return None
        f = pq.ParquetFile(path)
        if "text" not in f.schema_arrow.names:  # Parquet, but not a shard
            return None
        sizes = [f.metadata.row_group(g).num_rows for g in range(f.metadata.num_row_groups)]
        firsts = [0, *itertools.accumulate(sizes)][:-1]  # first row of each row group
        group = [bisect.bisect_right(firsts, r) - 1 for r in rows]
        wanted = sorted(set(group))
        # where each wanted group starts in what is read
        offset = dict(zip(wanted, [0, *itertools.accumulate(sizes[g] for g in wanted)]))
        text = f.read_row_groups(wanted, columns=["text"]).column("text")
        return text.take(pa.array([offset[g] + r - firsts[g] for g, r in zip(group, rows)], pa.int64())).to_pylist()

    def unlabeled(self, verifier: str, version: str, where: str | None = None, relabel: bool = False,
                  batch_size: int = 1000, on_plan: Callable[[int], None] | None = None,
                  ) -> Iterator[list[tuple[Problem, str, str]]]:
        """Batches of (problem, sample_id, text) without a verdict from this verifier version (see
        `unlabeled_plan`). Batches follow shard order so each shard is read once, and no connection is held
        between batches (the caller writes verdicts in between)."""
        plan, probs = self.unlabeled_plan(verifier, version, where, relabel)
        if on_plan is not None:  # how many samples this call will yield, for a progress total
            on_plan(sum(len(items) for _, items in plan))
        batch: list[tuple[Problem, str, str]] = []
        for path, items in plan:
            texts = self.shard_texts(path, [row for _, _, row in items])
            if texts is None:
                self.warnings.append(f"shard {path} is missing or damaged; {len(items)} samples skipped")
                continue
            for (sid, pid, _), text in zip(items, texts):
                batch.append((probs[pid], sid, text))
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def counts(self) -> dict[str, int]:
        if not self.exists:
            return {"problems": 0, "samples": 0, "verdicts": 0, "shards": 0}
        with self.connect() as con:
            r = con.execute(
                """SELECT (SELECT count(*) FROM problem_rows), (SELECT count(*) FROM sample_rows),
                          (SELECT count(*) FROM verdict_rows), (SELECT count(*) FROM shard_rows)"""
            ).fetchone()
        return dict(zip(("problems", "samples", "verdicts", "shards"), map(int, r)))

    def stats(self) -> dict[str, list[dict]]:
        """Counts by source/domain/split, by backend/model (with token totals) and by verifier/status."""
        q = {
            "problems": """SELECT source, domain, split, count(*) AS problems FROM problems GROUP BY ALL ORDER BY ALL""",
            "samples": """SELECT backend, model, count(*) AS samples, count(DISTINCT problem_id) AS problems,
                sum(prompt_tokens)::BIGINT AS prompt_tokens, sum(completion_tokens)::BIGINT AS completion_tokens,
                round(avg(text_chars)) AS avg_chars, sum(truncated::INT)::BIGINT AS truncated
                FROM traces GROUP BY ALL ORDER BY ALL""",
            "verdicts": """SELECT verifier, version, status, count(*) AS verdicts FROM verdicts GROUP BY ALL ORDER BY ALL""",
        }
        names = [referenced_names(v) for v in q.values()]
        with self.connect(None if None in names else set().union(*names)) as con:
            return {k: con.sql(v).to_arrow_table().to_pylist() for k, v in q.items()}

    def snapshot(self) -> dict:
        """A fingerprint of the stored content (ids, verdicts), for provenance in dataset cards.

        Order-free (an XOR over rows) and built from MD5, which is fixed by its standard: unlike DuckDB's
        hash(), it does not change with the DuckDB version, so one store has one snapshot id everywhere."""
        def digest(expr: str, table: str) -> str:
            return f"(SELECT coalesce(bit_xor(('0x' || left(md5({expr}), 16))::UBIGINT), 0) FROM {table})"

        with self.connect() as con:
            r = con.execute(
                f"""SELECT (SELECT count(*) FROM problem_rows), {digest('id', 'problem_rows')},
                          (SELECT count(*) FROM sample_rows), {digest('id', 'sample_rows')},
                          (SELECT count(*) FROM verdict_rows),
                          {digest("concat_ws(chr(31), sample_id, verifier, version, status)", 'verdict_rows')}"""
            ).fetchone()
        digest = hashlib.sha256(canonical_json([str(x) for x in r]).encode()).hexdigest()[:16]
        return {"id": digest, "problems": int(r[0]), "samples": int(r[2]), "verdicts": int(r[4])}


class _SharedRead:
    """The connection a `reading()` block shares, and the column names its views were made for."""

    def __init__(self) -> None:
        self.stack = contextlib.ExitStack()
        self.con: duckdb.DuckDBPyConnection | None = None
        self.names: set[str] | None = None

    def covers(self, names: set[str] | None) -> bool:
        return self.con is not None and (self.names is None or (names is not None and names <= self.names))

    def close(self) -> None:
        self.con = None
        self.stack.close()


def _problem(r: dict) -> Problem:
    ref, meta = r.get("reference"), r.get("metadata")
    return Problem(
        source=r["source"], domain=r["domain"], prompt=r["prompt"],
        reference=json.loads(ref) if isinstance(ref, str) else ref,
        metadata=json.loads(meta) if isinstance(meta, str) else (meta or {}),
        split=r["split"], id=r["id"],
    )
