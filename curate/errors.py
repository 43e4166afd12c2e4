"""Typed errors. The CLI turns any CurateError into one red line (plus a hint) and a non-zero exit."""
from __future__ import annotations


def first_line(e: BaseException) -> str:
    """The first non-empty line of an exception's message (its type name when there is none)."""
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


class CurateError(Exception):
    """Base for every error a user can cause or fix. `hint` says what to do about it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InputError(CurateError):
    """Bad user input: a malformed file, row, field, mapping or option. Name the file, line and field."""

    exit_code = 2


class StoreError(CurateError):
    """The trace store cannot do what was asked (bad path, corrupted shard, SQL error)."""


class StoreLocked(StoreError):
    """Another process holds the store's write lock longer than we were willing to wait."""


class StoreVersionError(StoreError):
    """The store was written by a newer curate, or its migrations are unknown to this version."""


class ConfigError(InputError):
    """A recipe or training config failed validation; the message names the field path."""


class OutputError(CurateError):
    """An output folder (a mixture, an export) could not be written: disk full, read-only, permission denied."""

    @classmethod
    def from_os(cls, e: OSError, out, what: str = "the output") -> "OutputError":
        import os

        cause = e.strerror or (os.strerror(e.errno) if e.errno else first_line(e))  # pyarrow sets errno only
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        return cls(f"cannot write {what} to {out}: {cause}{where}",
                   hint="free space or fix the permissions, then rerun the same command")


class BackendError(CurateError):
    """A generation backend failed after its retries (unreachable server, missing package)."""


class Interrupted(CurateError):
    """The user stopped a long command (Ctrl-C); the message says what was kept. Exit 130, like a shell."""

    exit_code = 130


class QueryInterrupted(StoreError):
    """A running query was stopped: by its time limit (exit 1), or by Ctrl-C/SIGTERM (128 + the signal, like a shell)."""

    def __init__(self, message: str, hint: str | None = None, exit_code: int = 130) -> None:
        super().__init__(message, hint)
        self.exit_code = exit_code


def require_extra(module: str, extra: str, what: str) -> None:
    """Stop with one line naming the extra to install when an optional package is missing (not a traceback)."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        cpu = " (on a CPU-only machine install torch==2.13.0 first)" if extra == "train" else ""
        raise CurateError(f"{what} needs {module}, which is not installed",
                          hint=f"install curate's `{extra}` extra: pip install '.[{extra}]' in the checkout{cpu}")
