"""Problems from your own JSONL or Parquet files (`curate tasks add problems.jsonl --store ...`).

Each row needs a prompt and may carry a reference, domain, source, split and metadata. Column names
are found automatically (prompt: prompt | problem | question; reference: reference | answer) or set
with `--set prompt=COL --set reference=COL`. A row that is not valid JSON, lacks a prompt or has a bad
split or domain is reported with its file and line (JSONL) or row number (Parquet).
Test: tests/test_tasks_sources.py.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from curate.errors import InputError
from curate.records import DOMAINS, SPLITS, Problem
from curate.sources import read_rows
from curate.tasks.base import TaskSpec, register

PROMPT_COLUMNS = ("prompt", "problem", "question")
REFERENCE_COLUMNS = ("reference", "answer")


@dataclass(frozen=True)
class FileConfig:
    path: str = ""
    prompt: str = ""  # empty: the first of prompt | problem | question present in the row
    reference: str = ""  # empty: reference | answer if present
    domain: str = ""  # empty: the row's `domain`, else math
    source: str = ""  # empty: the row's `source`, else the file's stem
    metadata: tuple[str, ...] = ()  # extra columns copied into metadata

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError("give the file: curate tasks add PATH.jsonl (or --set path=...)")
        if self.domain and self.domain not in DOMAINS:
            raise ValueError(f"domain must be one of {DOMAINS}, got {self.domain!r}")


def _rows(path: Path) -> Iterator[tuple[str, dict]]:
    """(where, row) through the shared reader (sources.read_rows): JSONL lines and Parquet rows, each error
    naming the file and line."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    parquet = path.suffix.lower() == ".parquet"
    for n, row in read_rows(str(path)):
        yield (f"{path}: row {n}" if parquet else f"{path}:{n}"), row


def _pick(row: dict, explicit: str, candidates: tuple[str, ...], where: str, field: str) -> str | None:
    if explicit:
        if explicit not in row:
            raise InputError(f"{where}: no field {explicit!r} (the {field} column); fields are {', '.join(row)}")
        return explicit
    return next((c for c in candidates if c in row), None)


def load(cfg: FileConfig, size: int | None, seed: int, split: str) -> Iterator[Problem]:
    path = Path(cfg.path).expanduser()
    count = 0
    for where, row in _rows(path):
        if size is not None and count >= size:
            return
        pcol = _pick(row, cfg.prompt, PROMPT_COLUMNS, where, "prompt")
        if pcol is None or not isinstance(row[pcol], str) or not row[pcol].strip():
            raise InputError(f"{where}: missing or empty prompt (looked for {cfg.prompt or ' | '.join(PROMPT_COLUMNS)})")
        rcol = _pick(row, cfg.reference, REFERENCE_COLUMNS, where, "reference")
        row_split = row.get("split", split)
        if row_split not in SPLITS:
            raise InputError(f"{where}: field 'split' must be one of {', '.join(SPLITS)}, got {row_split!r}")
        domain = cfg.domain or row.get("domain") or "math"
        if domain not in DOMAINS:
            raise InputError(f"{where}: field 'domain' must be one of {', '.join(DOMAINS)}, got {domain!r}")
        meta = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
        for c in cfg.metadata:
            if c not in row:
                raise InputError(f"{where}: no field {c!r} (asked for in metadata)")
            meta[c] = row[c]
        try:
            yield Problem(source=cfg.source or row.get("source") or path.stem, domain=domain, prompt=row[pcol],
                          reference=row[rcol] if rcol else None, metadata=json.loads(json.dumps(meta, default=str)),
                          split=row_split)
        except (TypeError, ValueError) as e:
            raise InputError(f"{where}: {e}") from None
        count += 1


register(TaskSpec(name="file", description="Your own .jsonl/.parquet problems (pass the path as SOURCE)", domain="math",
                  config_cls=FileConfig, load=load))
