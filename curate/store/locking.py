"""The store's own lock: one writer or many readers, held from before DuckDB opens the catalog until after it closed it.

DuckDB's lock on `catalog.duckdb` is a POSIX record lock (fcntl). It is taken only once DuckDB has opened the
file and is dropped as soon as *any* descriptor of that file closes in the process, and it never conflicts
between two opens inside one process. This lock (flock on `<store>/.lock`) has none of those gaps: it belongs
to one open file description, so it also excludes a second open of the same store in the same process, and
it covers DuckDB's whole open (header and WAL replay) and close (the checkpoint on shutdown).

A store on read-only media cannot have a writer, so readers there go without the lock. The lock file is
never followed through a symlink (O_NOFOLLOW): a `.lock` linked elsewhere cannot make us create that file.
Test: tests/test_store_soak.py (with tests/test_store_concurrency.py).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from typing import Iterator

from curate.errors import StoreError, StoreLocked
from curate.store.retry import retry_waits

LOCK_FILE = ".lock"


@contextlib.contextmanager
def store_lock(store_dir: Path, *, exclusive: bool, timeout: float) -> Iterator[None]:
    path = store_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o666)
    except OSError as e:
        if exclusive or e.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise StoreError(f"cannot write to the store {store_dir}: {e.strerror} ({path})") from None
        try:  # a shared lock needs only read access (someone else's store)
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            yield  # read-only media without a lock file: nobody can write it while we read
            return
    try:
        for _ in retry_waits(timeout, first=0.005):
            try:
                fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pass
        else:
            raise StoreLocked(
                f"store {store_dir} is busy: another process has held its lock for more than {timeout:g}s",
                hint="wait for that job to commit, or set CURATE_LOCK_TIMEOUT to wait longer",
            )
        yield
    finally:
        os.close(fd)  # releases the flock
