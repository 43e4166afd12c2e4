"""How a TraceStore reaches its catalog: the single writer, read connections (one shared by a `reading()`
block), migration on open, and the one-line errors of failed writes and queries.

One writer or many readers at a time: every connection holds the store lock (locking.py) from before DuckDB
opens the catalog until after it has closed it, and a writer checkpoints before it lets go, so a reader
normally replays no WAL. When that checkpoint fails (disk full), what the writer committed stays in
`catalog.duckdb.wal`: readers see it, and the next write on a healthy disk checkpoints it away. A failure to
write (disk full, read-only, permission denied) is a StoreError naming the path and cause.
"""
from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from pathlib import Path
from typing import Iterator

import duckdb
import pyarrow.parquet as pq

from curate.cpus import usable_cpus
from curate.errors import StoreError, first_line
from curate.store import shards as shard_io
from curate.store.connection import connect, connect_readonly, lock_down, lock_down_writer, lock_timeout, trust_catalog
from curate.store.locking import store_lock
from curate.store.migrations import KNOWN, MIGRATIONS, newer_store_error
from curate.store.views import create_views

CATALOG = "catalog.duckdb"
SHARDS = "shards"
RECORDS = "records"
_OS_CAUSES = ("No space left on device", "Read-only file system", "Permission denied", "Disk quota exceeded")
WRITE_HINT = "free space or fix the permissions, then rerun the same command; `curate doctor` checks the store"


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


class CatalogAccess:
    """The store's folders and its connections; the other parts of TraceStore work through these."""

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

    # ------------------------------------------------------------------ the single writer
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
            # DuckDB would start a thread per CPU of the machine, not per CPU this process may use.
            con = connect(self.db_path, read_only=False, config={"threads": usable_cpus()})
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

    # ------------------------------------------------------------------ readers
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
            merged = names if shared.con is None or names is None else shared.names | names
            shared.close()
            shared.names = merged
            shared.con = shared.stack.enter_context(self._open_read(merged))
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

    # ------------------------------------------------------------------ migrations
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

    # ------------------------------------------------------------------ committed shards a reader may open
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
