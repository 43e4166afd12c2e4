"""Opening the DuckDB catalog: short-lived connections, waiting briefly for another process's lock, and the
locked-down connection every read (and so every piece of user SQL) runs on.

DuckDB lets one process write a database file and no other process open it meanwhile (readers included),
so every TraceStore call opens, works and closes; a blocked caller retries with backoff until
CURATE_LOCK_TIMEOUT seconds pass, then gets one clear StoreLocked error instead of a traceback.

`connect_readonly` is the only way user SQL (`curate sql`, `--problems`, `--where`, recipe predicates)
reaches DuckDB. It relies on DuckDB's own security settings, not on a filter of ours:
- `enable_external_access = false`: no file, URL, ATTACH, COPY or EXPORT outside the catalog, except the
  store's committed shard files, listed one by one in `allowed_paths` (read-only: a COPY onto a shard
  needs a temp file beside it, which is not allowed);
- extension autoinstall/autoload off, community extensions off, persistent secrets off, no Python
  replacement scans (a query cannot read the caller's variables);
- a memory limit and a thread count (CURATE_SQL_MEMORY, default 50% of RAM; CURATE_SQL_THREADS, default
  the CPUs this process may use: `curate.cpus.usable_cpus`, affinity and cgroup quota), a cap on what a statement spills to disk (CURATE_SQL_SPILL, default 10GB), then `lock_configuration = true`, so no SET/PRAGMA can undo any of this;
- `run_query` adds a statement timeout (CURATE_SQL_TIMEOUT seconds, default 600, 0 for none) and turns
  Ctrl-C or SIGTERM into `connection.interrupt()` and one line, instead of a query that ignores them.
Every connection, the writer's too, starts with extensions, community extensions, persistent secrets and
replacement scans off (`BASE_CONFIG`), and `check_catalog` refuses a catalog holding anything curate never
creates: a view, a macro (a persistent macro named `read_parquet` or `md5` replaces DuckDB's own in every
query on the file, the writer's included), a trigger, a table no migration creates (migrations.TABLES), a
type, an index, or a column default, generated column or CHECK. A catalog found clean is remembered by its file's
identity (device, inode, size, mtime, ctime, and the WAL's), so a process checks it once, and a writer's
own commit keeps it trusted (`trust_catalog`).
What it does not do: spilling to `catalog.duckdb.tmp` beside the catalog stays on (DuckDB's own temp
files, removed when the query ends), and reading the catalog file itself is allowed.
Tested by tests/test_security.py and tests/test_security_store.py.
"""
from __future__ import annotations

import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import duckdb
import pyarrow as pa

from curate.cpus import usable_cpus
from curate.errors import QueryInterrupted, StoreError, StoreLocked, first_line
from curate.store.migrations import KNOWN, TABLES, newer_store_error
from curate.store.retry import retry_waits

DEFAULT_LOCK_TIMEOUT = 30.0
DEFAULT_SQL_TIMEOUT = 600.0
DEFAULT_SQL_MEMORY = "50%"
DEFAULT_SQL_SPILL = "10GB"  # DuckDB's own default is 90% of the free disk
_SIZE = r"\d+(\.\d+)?\s*(%|[KMGT]i?B)"


def _env_number(name: str, default: float, kind=float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = kind(raw) if raw else default
    except ValueError:
        raise StoreError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise StoreError(f"{name} must not be negative, got {raw!r}")
    return value


def lock_timeout() -> float:
    return _env_number("CURATE_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT)


@dataclass(frozen=True)
class Limits:
    """Resource limits of the read connection, from the environment (the store's settings)."""

    memory_limit: str
    threads: int
    timeout: float  # seconds a statement may run; 0 = no limit
    spill: str = DEFAULT_SQL_SPILL  # disk a statement may spill to beside the catalog

    @classmethod
    def from_env(cls) -> "Limits":
        sizes = {}
        for name, default in (("CURATE_SQL_MEMORY", DEFAULT_SQL_MEMORY), ("CURATE_SQL_SPILL", DEFAULT_SQL_SPILL)):
            sizes[name] = os.environ.get(name, "").strip() or default
            if not re.fullmatch(_SIZE, sizes[name], flags=re.IGNORECASE):
                raise StoreError(f"{name} must be a size such as 4GB or 50%, got {sizes[name]!r}")
        # the CPUs this process may run on (affinity, cgroup quota), not the machine's: in a container or a
        # job pinned to a few cores, one DuckDB thread per host core only queues behind the others
        threads = int(_env_number("CURATE_SQL_THREADS", 0, int)) or usable_cpus()
        return cls(memory_limit=sizes["CURATE_SQL_MEMORY"], threads=threads,
                   timeout=_env_number("CURATE_SQL_TIMEOUT", DEFAULT_SQL_TIMEOUT), spill=sizes["CURATE_SQL_SPILL"])


def _is_lock_error(msg: str) -> bool:
    m = msg.lower()
    return "lock" in m and ("conflicting" in m or "could not set" in m or "resource temporarily unavailable" in m)


# Start-up settings of every connection: nothing is fetched, loaded or read that the SQL does not name.
BASE_CONFIG = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_persistent_secrets": False,
    "python_enable_replacements": False,
}

# What a catalog may hold: the migrations' tables, with plain columns. Lists everything else outside DuckDB
# itself: a view, macro or trigger runs inside curate's queries; a type named JSON replaces DuckDB's; a column
# default, generated column, CHECK or index expression runs on every write or read of its table.
_FOREIGN_OBJECTS = """
    SELECT 'view ' || view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary
    UNION ALL SELECT replace(function_type, '_', ' ') || ' ' || function_name FROM duckdb_functions()
        WHERE NOT internal AND function_type IN ('macro', 'table_macro')
    UNION ALL SELECT 'table ' || CASE WHEN schema_name = 'main' THEN '' ELSE schema_name || '.' END || table_name
        FROM duckdb_tables() WHERE NOT internal AND NOT temporary
        AND (schema_name <> 'main' OR table_name NOT IN (SELECT unnest(?::VARCHAR[])))
    UNION ALL SELECT 'type ' || type_name FROM duckdb_types() WHERE NOT internal AND database_name <> 'temp'
    UNION ALL SELECT 'column expression ' || table_name || '.' || column_name FROM duckdb_columns()
        WHERE NOT internal AND database_name <> 'temp' AND coalesce(column_default, generation_expression) IS NOT NULL
    UNION ALL SELECT 'check on ' || table_name FROM duckdb_constraints()
        WHERE constraint_type = 'CHECK' AND database_name <> 'temp'
    UNION ALL SELECT 'index ' || index_name FROM duckdb_indexes() WHERE database_name <> 'temp'"""
_TRIGGERS = "\n    UNION ALL SELECT 'trigger ' || trigger_name FROM duckdb_triggers()"
_has_triggers = [True]  # DuckDB releases before triggers have no duckdb_triggers(): asked once, then left out
_trusted: set[tuple] = set()


def _foreign_objects(con: duckdb.DuckDBPyConnection) -> list[str]:
    try:
        sql = _FOREIGN_OBJECTS + (_TRIGGERS if _has_triggers[0] else "")
        return [r[0] for r in con.execute(sql, [sorted(TABLES)]).fetchall()]
    except duckdb.CatalogException:
        if not _has_triggers[0]:
            raise
        _has_triggers[0] = False
        return _foreign_objects(con)


def _identity(db_path: Path) -> tuple | None:
    """The catalog file and its WAL as they are now (None when the catalog cannot be stat'ed)."""
    out: list = [str(db_path)]
    for f in (db_path, Path(str(db_path) + ".wal")):
        try:
            st = os.stat(f)
        except FileNotFoundError:
            out.append(None)
            continue
        except OSError:
            return None
        out.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(out)


def check_catalog(con: duckdb.DuckDBPyConnection, db_path: Path) -> None:
    """Refuse a catalog that holds a view, macro or trigger (curate creates tables only): such an object
    would run, or replace a built-in function, inside curate's own queries. Checked once per file state."""
    key = _identity(db_path)
    if key is not None and key in _trusted:
        return
    found = _foreign_objects(con)
    if found and all(f.startswith("table ") for f in found):
        # Plain tables only, so reading the migration list runs nothing: a newer curate's tables are no attack
        has = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND NOT temporary "
                          "AND table_name = 'curate_migrations'").fetchone()[0]
        applied = {r[0] for r in con.execute("SELECT name FROM main.curate_migrations").fetchall()} if has else set()
        if applied - KNOWN:
            raise newer_store_error(db_path.parent, list(applied - KNOWN))
    if found:
        listed = ", ".join(f[:60] for f in found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise StoreError(f"store {db_path.parent}: its catalog holds objects curate never creates ({listed}); "
                         "refusing to open it",
                         hint="the catalog was tampered with or is not a curate store; `curate doctor --rebuild` "
                              "builds a clean one from the shards and records/")
    if key is not None:
        _trusted.add(key)


def trust_catalog(db_path: Path) -> None:
    """After a writer that opened a checked catalog closed it: its new state holds what curate wrote, tables only."""
    key = _identity(db_path)
    if key is not None:
        _trusted.add(key)


def connect(db_path: Path, *, read_only: bool, timeout: float | None = None,
            config: dict | None = None) -> duckdb.DuckDBPyConnection:
    """A connection with BASE_CONFIG (plus `config`) to a catalog that passed `check_catalog`."""
    for f in (db_path, Path(f"{db_path}.wal"), Path(f"{db_path}.tmp")):
        # A linked catalog would be migrated and written wherever it points; DuckDB lets even a locked-down
        # connection read its WAL and anything under its temp folder, so a link there opens the host to SQL.
        if f.is_symlink():
            raise StoreError(f"store file {f} is a symlink; refusing to open the store",
                             hint="catalog.duckdb, its .wal and its .tmp folder are files inside the store folder "
                                  "(the store folder itself may be a link)")
    timeout = lock_timeout() if timeout is None else timeout
    msg = ""
    for _ in retry_waits(timeout, first=0.01):
        try:
            con = duckdb.connect(str(db_path), read_only=read_only, config={**BASE_CONFIG, **(config or {})})
        except duckdb.Error as e:
            msg = str(e)
            if not _is_lock_error(msg):
                raise StoreError(f"cannot open the store catalog {db_path}: {first_line(e)}",
                                 hint="the file may be damaged or not a curate store") from None
            continue
        try:
            con.execute("SET enable_progress_bar = false")
            check_catalog(con, db_path)
            return con
        except BaseException:
            con.close()
            raise
    pid = re.search(r"PID (\d+)", msg)
    who = f"process {pid.group(1)}" if pid else "another process"
    raise StoreLocked(
        f"store {db_path.parent} is busy: {who} has held its lock for more than {timeout:g}s",
        hint="wait for that job to commit, or set CURATE_LOCK_TIMEOUT to wait longer",
    )


def locked_config(limits: Limits) -> dict:
    """Settings fixed when the database starts (the rest need the database running: see `lock_down`)."""
    return {
        "memory_limit": limits.memory_limit,
        "threads": limits.threads,
        "max_temp_directory_size": limits.spill,
    }


def lock_down(con: duckdb.DuckDBPyConnection, readable: list[str]) -> None:
    """Only `readable` files stay reachable, then the configuration is frozen (order matters: DuckDB
    refuses to change allowed_paths once external access is off)."""
    con.execute("SET allowed_paths = ?", [list(readable)])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def lock_down_writer(con: duckdb.DuckDBPyConnection, folders: list[Path]) -> None:
    """A writer reads and writes files only inside `folders` (the store's), then its configuration is frozen."""
    dirs = sorted({str(d) + os.sep for f in folders for d in (Path(os.path.abspath(f)), Path(f).resolve())})
    con.execute("SET allowed_directories = ?", [dirs])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def connect_readonly(db_path: Path, limits: Limits | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection with the start-up settings of `locked_config` (call `lock_down` next)."""
    return connect(db_path, read_only=True, config=locked_config(limits or Limits.from_env()))


class _Signalled(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_signalled(signum, frame):  # runs in the main thread while it waits for the worker
    raise _Signalled(signum)


def _short(sql: str, n: int = 120) -> str:
    s = " ".join(sql.split())
    return s if len(s) <= n else s[: n - 3] + "..."


STREAM_ROWS = 2048  # rows per batch a streamed result is read in (DuckDB's vector size)


def _reader(rel, batch_rows: int) -> pa.RecordBatchReader:
    make = getattr(rel, "to_arrow_reader", None) or rel.fetch_arrow_reader  # DuckDB 2 / 1.x
    return make(batch_rows)


def _first_rows(reader: pa.RecordBatchReader, max_rows: int) -> pa.Table:
    """The first `max_rows` rows of a streamed result: the rest of the result is never built."""
    batches, n = [], 0
    for batch in reader:
        batches.append(batch)
        n += batch.num_rows
        if n >= max_rows:
            break
    return pa.Table.from_batches(batches, schema=reader.schema).slice(0, max_rows)


def run_query(con: duckdb.DuckDBPyConnection, sql: str, params=None, timeout: float | None = None,
              max_rows: int | None = None, consume: Callable[[pa.RecordBatchReader], Any] | None = None):
    """Run one statement to an Arrow table, interrupting it after `timeout` seconds or on Ctrl-C/SIGTERM.
    With `max_rows`, only that many rows are fetched (a table that shows 50 rows holds 50 rows in memory).
    With `consume`, the result is handed to it as a reader of STREAM_ROWS-row batches and its return value
    is returned: memory holds a batch, not the result (`--json`, `--csv`); the timeout covers consuming too.

    The query runs in a worker thread: DuckDB does not return to Python while it executes, so a signal
    handler in the executing thread would only run once the query ended (a cross join: never). The main
    thread waits, and on a signal or the deadline calls `con.interrupt()`, which stops DuckDB at its next
    check; the worker then ends with an InterruptException and the caller gets one typed error."""
    timeout = Limits.from_env().timeout if timeout is None else timeout
    box: dict = {}
    done = threading.Event()

    def work() -> None:
        try:
            rel = con.sql(sql, params=params or None)
            if consume is None and max_rows is None:
                box["table"] = rel.to_arrow_table()
                return
            reader = _reader(rel, STREAM_ROWS if consume is not None else max(1, min(max_rows, 65_536)))
            try:
                box["table"] = consume(reader) if consume is not None else _first_rows(reader, max_rows)
            finally:
                reader.close()
        except BaseException as e:  # handed to the waiting thread, which raises or maps it
            box["error"] = e
        finally:
            done.set()

    worker = threading.Thread(target=work, name="curate-sql", daemon=True)
    in_main = threading.current_thread() is threading.main_thread()
    saved = {}
    if in_main:  # installed explicitly: a job started with SIGINT ignored must still be stoppable
        for sig in (signal.SIGINT, signal.SIGTERM):
            saved[sig] = signal.signal(sig, _raise_signalled)
    stopped: str | None = None
    signum = 0
    try:
        worker.start()
        deadline = time.monotonic() + timeout if timeout else None
        try:
            while not done.wait(0.25 if deadline is None else max(0.0, min(0.25, deadline - time.monotonic()))):
                if deadline is not None and time.monotonic() >= deadline:
                    stopped = "timeout"
                    break
        except (_Signalled, KeyboardInterrupt) as e:
            stopped = "signal"
            signum = getattr(e, "signum", signal.SIGINT)
        if stopped:
            con.interrupt()
            done.wait(10.0)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    if stopped == "timeout":
        raise QueryInterrupted(f"query stopped after {timeout:g}s: {_short(sql)}", exit_code=1,
                               hint="set CURATE_SQL_TIMEOUT to allow longer (seconds; 0 for no limit)")
    if stopped == "signal":
        name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
        raise QueryInterrupted(f"query interrupted ({name}); nothing was written", exit_code=128 + int(signum))
    err = box.get("error")
    if err is not None:
        raise err
    return box["table"]
