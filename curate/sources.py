"""Reading rows from user files and datasets: JSONL, Parquet, `save_to_disk` directories, Hub ids.

Every reader yields (row_number, dict) and turns bad input into an InputError naming the file and line:
malformed JSON, non-UTF-8 bytes, a truncated or corrupt Parquet file, a missing dataset.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from curate.errors import InputError, first_line

Row = tuple[int, dict]


def read_rows(source: str, hf_split: str = "train") -> Iterator[Row]:
    p = Path(source)
    if p.is_dir():
        return _dataset_dir(p, hf_split)
    if p.exists():
        suffix = p.suffix.lower()
        if suffix in (".jsonl", ".json", ".ndjson"):
            return read_jsonl(p)
        if suffix == ".parquet":
            return _parquet(p)
        raise InputError(f"{p}: unsupported file type {suffix or '(none)'}", hint="use .jsonl, .parquet or a save_to_disk directory")
    if "/" in source and not source.startswith((".", "/")):
        return _hub(source, hf_split)
    raise InputError(f"{source}: no such file or directory")


def read_jsonl(path: Path) -> Iterator[Row]:
    """(line number, object) for each non-blank line; bad bytes, bad JSON and non-objects name the line."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"{path}:{n}: not valid UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{n}: malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise InputError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
            yield n, obj


def _parquet(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:
        raise InputError(f"{path}: not a readable Parquet file ({first_line(e)})") from None
    n = 0
    try:
        for batch in pf.iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                n += 1
                yield n, row
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"{path}: damaged Parquet data after row {n} ({first_line(e)})") from None


def _dataset_dir(path: Path, hf_split: str) -> Iterator[Row]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:
        raise InputError(f"{path}: not a dataset saved with save_to_disk ({first_line(e)})") from None
    if isinstance(ds, datasets.DatasetDict):
        if hf_split not in ds:
            raise InputError(f"{path}: no split {hf_split!r} (has {', '.join(ds)})", hint="choose one with --hf-split")
        ds = ds[hf_split]
    for n, row in enumerate(ds, start=1):
        yield n, row


def _hub(name: str, hf_split: str) -> Iterator[Row]:
    import datasets

    try:
        ds = datasets.load_dataset(name, split=hf_split)
    except Exception as e:
        raise InputError(f"could not load dataset {name!r} split {hf_split!r} from the Hub ({first_line(e)})",
                         hint="check the name and your network, or download it and import the local files") from None
    for n, row in enumerate(ds, start=1):
        yield n, row
