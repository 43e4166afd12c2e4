"""Opening the DuckDB catalog: short-lived connections, waiting briefly for another process's lock.

DuckDB lets one process write a database file and no other process open it meanwhile (readers included),
so every TraceStore call opens, works and closes; a blocked caller retries with backoff until
CURATE_LOCK_TIMEOUT seconds pass, then gets one clear StoreLocked error instead of a traceback.
"""
from __future__ import annotations

import os
import random
import re
import time
from pathlib import Path

import duckdb

from curate.errors import StoreError, StoreLocked, first_line

DEFAULT_LOCK_TIMEOUT = 30.0


def lock_timeout() -> float:
    raw = os.environ.get("CURATE_LOCK_TIMEOUT", "")
    try:
        return float(raw) if raw else DEFAULT_LOCK_TIMEOUT
    except ValueError:
        raise StoreError(f"CURATE_LOCK_TIMEOUT must be a number of seconds, got {raw!r}") from None


def _is_lock_error(msg: str) -> bool:
    m = msg.lower()
    return "lock" in m and ("conflicting" in m or "could not set" in m or "resource temporarily unavailable" in m)


def connect(db_path: Path, *, read_only: bool, timeout: float | None = None) -> duckdb.DuckDBPyConnection:
    timeout = lock_timeout() if timeout is None else timeout
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            con = duckdb.connect(str(db_path), read_only=read_only)
            con.execute("SET enable_progress_bar = false")
            return con
        except duckdb.Error as e:
            msg = str(e)
            if not _is_lock_error(msg):
                raise StoreError(f"cannot open the store catalog {db_path}: {first_line(e)}",
                                 hint="the file may be damaged or not a curate store") from None
            if time.monotonic() >= deadline:
                pid = re.search(r"PID (\d+)", msg)
                who = f"process {pid.group(1)}" if pid else "another process"
                raise StoreLocked(
                    f"store {db_path.parent} is busy: {who} has held its lock for more than {timeout:g}s",
                    hint="wait for that job to commit, or set CURATE_LOCK_TIMEOUT to wait longer",
                ) from None
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 1.6, 0.25)
