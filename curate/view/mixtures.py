"""Where `curate view` finds built mixtures, and what it reads from them (no SQL: a mixture is a folder).

Mixtures are not in the store. The viewer looks in two places, in this order:
- each `--mixtures DIR`: a mixture folder (it holds manifest.json), or a folder of them (DIR/*/manifest.json),
  or a study folder (DIR/mixtures/*/manifest.json);
- the manifests a study recorded in the store (`study_run_rows.manifest`, the `lineage` view), when the file
  is still reachable from this machine.
A mixture is named by its folder; a second folder of the same name gets `~2`, `~3`, ... Rows are read from
`data/train-00000-of-00001.parquet` (see curate/mix/export.py), with the card (README.md) and manifest.json.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pyarrow.parquet as pq

from curate.errors import InputError

PARQUET = "data/train-00000-of-00001.parquet"
ROW_COLUMNS = ("sample_id", "problem_id", "source", "recipe_source", "domain", "status", "transform",
               "completion_tokens", "response_chars")


@dataclass(frozen=True)
class MixtureRef:
    name: str
    path: Path
    origin: str  # "--mixtures" or "study record"


def _manifests_under(folder: Path) -> list[Path]:
    if (folder / "manifest.json").is_file():
        return [folder / "manifest.json"]
    return sorted(folder.glob("*/manifest.json")) or sorted(folder.glob("mixtures/*/manifest.json"))


def find(folders: Iterable[Path], recorded: Iterable[str] = ()) -> list[MixtureRef]:
    """Mixtures under the --mixtures folders, then those a study recorded in the store (when reachable)."""
    found: list[tuple[Path, str]] = []
    for f in folders:
        f = Path(f)
        here = _manifests_under(f) if f.is_dir() else []
        if not here:
            raise InputError(f"--mixtures {f}: no manifest.json in it, its sub-folders or its mixtures/ folder",
                             hint="pass the --out folder of `curate mix`, a folder of such folders, or a study folder")
        found += [(p.parent.resolve(), "--mixtures") for p in here]
    for m in recorded:
        p = Path(m)
        if m and p.is_file():
            found.append((p.parent.resolve(), "study record"))
    refs: list[MixtureRef] = []
    seen: set[Path] = set()
    names: dict[str, int] = {}
    for path, origin in found:
        if path in seen:
            continue
        seen.add(path)
        n = names[path.name] = names.get(path.name, 0) + 1
        refs.append(MixtureRef(path.name if n == 1 else f"{path.name}~{n}", path, origin))
    return refs


class Mixtures:
    """The mixtures one viewer serves, with a lazily built sample id -> mixture names index."""

    def __init__(self, refs: list[MixtureRef]) -> None:
        self.refs = {r.name: r for r in refs}
        self._index: dict[str, list[str]] | None = None
        self._lock = threading.Lock()

    def __iter__(self):
        return iter(self.refs.values())

    def get(self, name: str) -> MixtureRef | None:
        return self.refs.get(name)

    def using(self, sample_id: str) -> list[str]:
        """Names of the mixtures with a row made from this sample."""
        with self._lock:
            if self._index is None:
                index: dict[str, list[str]] = {}
                for ref in self.refs.values():
                    try:
                        ids = pq.read_table(ref.path / PARQUET, columns=["sample_id"]).column(0).to_pylist()
                    except (OSError, ValueError, KeyError):
                        continue
                    for sid in set(ids):
                        index.setdefault(sid, []).append(ref.name)
                self._index = index
        return self._index.get(sample_id, [])


def manifest(ref: MixtureRef) -> dict:
    try:
        return json.loads((ref.path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def card(ref: MixtureRef) -> str:
    try:
        return (ref.path / "README.md").read_text(encoding="utf-8")
    except OSError:
        return ""


def rows(ref: MixtureRef, offset: int, limit: int) -> tuple[list[dict], int]:
    """One page of a mixture's rows (provenance columns and the start of the assistant message) and the total."""
    path = ref.path / PARQUET
    try:
        f = pq.ParquetFile(path)
    except (OSError, ValueError):
        return [], 0
    total = f.metadata.num_rows
    names = set(f.schema_arrow.names)
    cols = [c for c in ROW_COLUMNS if c in names] + (["messages"] if "messages" in names else [])
    table = f.read(columns=cols).slice(offset, limit)
    out = []
    for r in table.to_pylist():
        msgs = r.pop("messages", None) or []
        reply = next((m.get("content") or "" for m in reversed(msgs) if m.get("role") == "assistant"), "")
        r["response_start"] = reply[:240]
        out.append(r)
    return out, total
