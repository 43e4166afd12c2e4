"""Reading rows from user files and datasets: JSONL, Parquet, `save_to_disk` directories, Hub ids.

Every reader yields (row_number, dict) and turns bad input into an InputError naming the file and line:
malformed JSON, non-UTF-8 bytes, a truncated or corrupt Parquet file, a missing dataset. With `on_bad`, a
bad JSONL line is passed to it (as that same message) and skipped instead.

A JSONL line is at most MAX_LINE_BYTES long (a longer one is a bad line, read past in bounded pieces), and
JSON that Python cannot turn into values (nesting deeper than its recursion limit, integers of more than
4,300 digits, numbers that overflow to infinity, a lone surrogate escape such as \ud800) or that is not JSON
(NaN, Infinity) is a malformed line like any other: never a traceback.

`iter_rows` can start part-way (`start_row`, and for JSONL the byte offset after that row), so an import
resumes without re-reading what it committed; `fingerprint` says whether a source is still the same one.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Callable, Iterator

from curate.errors import InputError, first_line

MAX_LINE_BYTES = 256 << 20  # one JSONL row; a study pool row (32 long traces) is a few MB
Row = tuple[int, dict]
PosRow = tuple[int, dict, "int | None"]  # (row number, row, byte offset after it for JSONL, else None)


def read_rows(source: str, hf_split: str = "train") -> Iterator[Row]:
    for n, row, _ in iter_rows(source, hf_split):
        yield n, row


def iter_rows(source: str, hf_split: str = "train", start_row: int = 0, start_offset: int | None = None,
              on_bad: Callable[[str], None] | None = None) -> Iterator[PosRow]:
    """Rows after the first `start_row` (JSONL seeks to `start_offset` when given); see the module docstring."""
    p = Path(source)
    if p.is_dir():
        return _positions(_dataset_dir(p, hf_split, start_row))
    if p.exists():
        suffix = p.suffix.lower()
        if suffix in (".jsonl", ".json", ".ndjson"):
            return _jsonl(p, start_row, start_offset, on_bad)
        if suffix == ".parquet":
            return _positions(_parquet(p, start_row))
        raise InputError(f"{p}: unsupported file type {suffix or '(none)'}", hint="use .jsonl, .parquet or a save_to_disk directory")
    if "/" in source and not source.startswith((".", "/")):
        return _positions(_hub(source, hf_split, start_row))
    raise InputError(f"{source}: no such file or directory")


def fingerprint(source: str, hf_split: str = "train") -> str:
    """Identity of a source's content: path, size and mtime of its files (a Hub id and split as given)."""
    p = Path(source)
    if p.exists():
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        parts = [str(p.resolve())] + [f"{f.relative_to(p) if p.is_dir() else ''}:{f.stat().st_size}:{f.stat().st_mtime_ns}"
                                      for f in files]
    else:
        parts = ["hub", source, hf_split]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _positions(rows: Iterator[Row]) -> Iterator[PosRow]:
    for n, row in rows:
        yield n, row, None


def read_jsonl(path: Path) -> Iterator[Row]:
    """(line number, object) for each non-blank line; bad bytes, bad JSON and non-objects name the line."""
    for n, obj, _ in _jsonl(path, 0, None, None):
        yield n, obj


def _lines(f, limit: int) -> Iterator[tuple[bytes | None, int]]:
    """(line, bytes consumed) per line of a binary file; a line longer than `limit` is (None, its length),
    skipped in pieces of `limit` bytes so it never sits in memory whole."""
    while True:
        raw = f.readline(limit + 1)
        if not raw:
            return
        if len(raw) <= limit or raw.endswith(b"\n"):
            yield raw, len(raw)
            continue
        size = len(raw)
        while raw and not raw.endswith(b"\n"):
            raw = f.readline(limit)
            size += len(raw)
        yield None, size


def _jsonl(path: Path, start_row: int, start_offset: int | None, on_bad: Callable[[str], None] | None) -> Iterator[PosRow]:
    with open(path, "rb") as f:
        offset = 0
        if start_offset is not None:
            f.seek(start_offset)
            offset = start_offset
        for n, (raw, size) in enumerate(_lines(f, MAX_LINE_BYTES), start=1 if start_offset is None else start_row + 1):
            offset += size
            if n <= start_row:
                continue
            try:
                if raw is None:
                    raise InputError(f"{path}:{n}: line of {size:,} bytes is longer than the limit of {MAX_LINE_BYTES:,}")
                obj = _json_line(path, n, raw)
            except InputError as e:
                if on_bad is None:
                    raise
                on_bad(e.message)
                continue
            if obj is not None:
                yield n, obj, offset


def _json_line(path: Path, n: int, raw: bytes) -> dict | None:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}:{n}: not valid UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})") from None
    if not line.strip():
        return None
    try:
        obj = json.loads(line, parse_constant=_not_json, parse_float=_finite)
        if _SURROGATE.search(raw):  # only an escape can make one; a valid pair is joined by json.loads
            _check_surrogates(obj)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{n}: malformed JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:
        raise InputError(f"{path}:{n}: malformed JSON (nested too deeply)") from None
    except ValueError as e:  # an integer too long to convert, or NaN/Infinity
        raise InputError(f"{path}:{n}: malformed JSON ({str(e).split(';')[0][:120]})") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _not_json(name: str):
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999999 overflows to inf
        raise ValueError(f"{text[:40]} is out of range for a number")
    return value


_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def _check_surrogates(obj) -> None:
    """Raise ValueError at a string holding half of a UTF-16 surrogate pair (it cannot be stored as UTF-8)."""
    stack = [obj]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("a \\u escape names half of a surrogate pair, which is no character") from None
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def _parquet(path: Path, start_row: int = 0) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:
        raise InputError(f"{path}: not a readable Parquet file ({first_line(e)})") from None
    n = 0
    groups = []  # whole row groups before start_row are never read
    for g in range(pf.num_row_groups):
        rows = pf.metadata.row_group(g).num_rows
        if n + rows <= start_row:
            n += rows
        else:
            groups.append(g)
    try:
        for batch in pf.iter_batches(batch_size=4096, row_groups=groups):
            for row in batch.to_pylist():
                n += 1
                if n > start_row:
                    yield n, row
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"{path}: damaged Parquet data after row {n} ({first_line(e)})") from None


def _dataset_dir(path: Path, hf_split: str, start_row: int = 0) -> Iterator[Row]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:
        raise InputError(f"{path}: not a dataset saved with save_to_disk ({first_line(e)})") from None
    if isinstance(ds, datasets.DatasetDict):
        if hf_split not in ds:
            raise InputError(f"{path}: no split {hf_split!r} (has {', '.join(ds)})", hint="choose one with --hf-split")
        ds = ds[hf_split]
    yield from _from(ds, start_row)


def _from(ds, start_row: int) -> Iterator[Row]:
    if start_row:
        ds = ds.select(range(min(start_row, len(ds)), len(ds)))
    for n, row in enumerate(ds, start=start_row + 1):
        yield n, row


def _hub(name: str, hf_split: str, start_row: int = 0) -> Iterator[Row]:
    import datasets

    try:
        ds = datasets.load_dataset(name, split=hf_split)
    except Exception as e:
        raise InputError(f"could not load dataset {name!r} split {hf_split!r} from the Hub ({first_line(e)})",
                         hint="check the name and your network, or download it and import the local files") from None
    yield from _from(ds, start_row)
