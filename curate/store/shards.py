"""Parquet shards: how trace text and sample metadata travel from producers into the store.

A producer (a generation worker, an importer, another machine writing into a shared directory) turns
samples into an Arrow table, adds feature columns, and writes `<store>/shards/<name>.parquet` atomically:
a temporary name in the same directory, fsync, then rename. A half-written file therefore never has a
shard's name, and a killed producer leaves only a `.tmp-*` file that nobody reads.

Row groups are bounded by bytes as well as rows (`row_group_sizes`): reading one trace (`read_texts`, the
trace browser) decodes the whole row group that holds it, so a group holds at most ROW_GROUP_BYTES of rows,
not a fixed 65,536 rows (tens of MB of 512-byte traces, gigabytes of 16k-token ones). Readers take the groups
from each file's footer, so shards written with 65,536-row groups read as before.

A shard is read only as `shard_path(shard_dir, name)`: the name (from the catalog, or a pending file's stem)
is a plain file name, never a path, and `looks_complete` accepts only a regular file, not a symlink. So a
catalog naming `../../elsewhere` or a shard file linked to a file outside the store can neither widen what
`curate sql` may read nor pull a host file into the catalog (tests/test_security_store.py).
"""
from __future__ import annotations

import bisect
import itertools
import os
import re
import stat
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import features
from curate.cpus import usable_cpus
from curate.errors import StoreError
from curate.records import Sample, canonical_json

SHARD_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("problem_id", pa.string()),
        ("backend", pa.string()),
        ("model", pa.string()),
        ("revision", pa.string()),
        ("params", pa.string()),  # canonical JSON
        ("sample_index", pa.int32()),
        ("seed", pa.int64()),
        ("finish_reason", pa.string()),
        ("prompt_tokens", pa.int32()),
        ("completion_tokens", pa.int32()),
        ("teacher_logprob", pa.float64()),
        ("teacher_entropy", pa.float64()),
        ("latency_s", pa.float64()),
        ("run_id", pa.string()),
        ("text", pa.string()),
    ]
)
META_COLUMNS = [n for n in SHARD_SCHEMA.names if n != "text"]
PARQUET_MAGIC = b"PAR1"
SHARD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}")  # what new_shard_name makes, and room for other producers


def samples_to_table(samples: Iterable[Sample]) -> pa.Table:
    """Samples as a shard table (without features); the first of two samples with one id wins."""
    seen: set[str] = set()
    cols: dict[str, list] = {n: [] for n in SHARD_SCHEMA.names}
    for s in samples:
        if s.id in seen:
            continue
        seen.add(s.id)
        d = s.to_dict()
        d["params"] = canonical_json(d["params"])
        for n in SHARD_SCHEMA.names:
            cols[n].append(d[n])
    return pa.table(cols, schema=SHARD_SCHEMA)


# Text bytes per feature task. Each task makes several passes over its texts; 16 MB tasks measured ~10% less
# CPU and wall time than 32 MB ones on 2 KB texts (benchmarks/store_ingest.py), and keep memory bounded
# for long traces, where a count of rows would not.
FEATURE_CHUNK_BYTES = 16 << 20


def with_features(table: pa.Table) -> pa.Table:
    """Append the feature columns to a shard table, computed in chunks on a thread per usable CPU (the
    pyarrow and polars kernels release the GIL, so the chunks of a large batch really run in parallel)."""
    def compute(t: pa.Table) -> pa.Table:
        return features.compute(t.column("text"), t.column("finish_reason"), t.column("completion_tokens"))

    ends = np.cumsum(pc.fill_null(pc.binary_length(table.column("text")), 0).to_numpy(), dtype=np.int64)
    cuts = np.flatnonzero(np.diff(ends // FEATURE_CHUNK_BYTES, prepend=0)) + 1  # after each full FEATURE_CHUNK_BYTES
    bounds = [0, *cuts[cuts < table.num_rows].tolist(), table.num_rows]
    chunks = [table.slice(a, b - a) for a, b in zip(bounds, bounds[1:])]
    workers = min(len(chunks), usable_cpus())
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            feats = pa.concat_tables(pool.map(compute, chunks))
    else:
        feats = compute(table)
    for name in feats.column_names:
        table = table.append_column(f"f_{name}", feats.column(name))
    return table


# Uncompressed bytes per row group. A group costs ~3 KB of footer (a chunk per column, measured on a shard
# with its features), under 0.1% of 4 MB; the floor only binds for rows over 64 KB.
ROW_GROUP_BYTES = 4 << 20
ROW_GROUP_ROWS = (64, 65_536)


def row_group_sizes(table: pa.Table) -> list[int]:
    """Row counts of consecutive row groups for `table`: as many rows as fit in ROW_GROUP_BYTES, within
    ROW_GROUP_ROWS. A row counts its text's bytes plus the table's mean for the other columns, so a run of
    long traces gets fewer rows per group than a run of short ones."""
    low, high = ROW_GROUP_ROWS
    n = table.num_rows
    if n == 0:
        return []
    if "text" in table.column_names:
        text = table.column("text")
        lengths = pc.fill_null(pc.binary_length(text), 0).to_numpy().astype(np.float64) + 4  # + its offset
        rest = (table.nbytes - text.nbytes) / n
    else:
        lengths, rest = np.zeros(n), table.nbytes / n
    ends = np.cumsum(lengths + rest)
    sizes, start, before = [], 0, 0.0
    while start < n:
        fit = int(np.searchsorted(ends, before + ROW_GROUP_BYTES, side="right"))  # rows ending within budget
        stop = min(n, start + high, max(fit, start + low))
        sizes.append(stop - start)
        start, before = stop, float(ends[stop - 1])
    return sizes


def new_shard_name(prefix: str = "s") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def shard_path(shard_dir: Path, name: str) -> Path:
    """The file of shard `name` in `shard_dir`; StoreError when the name is not a plain file name (a catalog
    that names a path points outside its store, which no curate writer does)."""
    if not isinstance(name, str) or not SHARD_NAME.fullmatch(name):
        raise StoreError(f"store {shard_dir.parent}: its catalog names a shard {str(name)[:60]!r} that is not a shard "
                         "file name (it points outside the store's shards folder); refusing to read it",
                         hint="the catalog was damaged or tampered with; `curate doctor --rebuild` rebuilds it from the shards")
    return shard_dir / f"{name}.parquet"


def write_atomic(table: pa.Table, directory: Path, name: str) -> Path:
    """Write `table` to directory/name.parquet so the final name appears only once the file is complete."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{name}.parquet"
    tmp = directory / f".tmp-{name}-{os.getpid()}.parquet"
    try:
        # `text` gets no statistics (its min/max, up to 4 KB each per group, prune no query and would double
        # the footer) and no dictionary (traces are unique: the writer would hash ~1 MB of each group's text
        # into a dictionary before falling back to plain).
        others = [c for c in table.column_names if c != "text"]
        with pq.ParquetWriter(tmp, table.schema, compression="zstd", write_statistics=others,
                              use_dictionary=others) as writer:
            start = 0
            for rows in row_group_sizes(table) or [0]:
                writer.write_table(table.slice(start, rows), row_group_size=max(1, rows))
                start += rows
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if tmp.exists():
            tmp.unlink()
    return final


def looks_complete(path: Path) -> bool:
    """Cheap check that a shard file is whole and really in its folder: a regular file (not a symlink, which
    could point anywhere, nor a FIFO or device), with Parquet's magic bytes at both ends (catches truncation)."""
    try:
        st = path.lstat()
        size = st.st_size
        if not stat.S_ISREG(st.st_mode) or size < 12:
            return False
        with open(path, "rb", opener=lambda p, flags: os.open(p, flags | os.O_NOFOLLOW)) as f:
            head = f.read(4)
            f.seek(size - 4)
            tail = f.read(4)
        return head == PARQUET_MAGIC and tail == PARQUET_MAGIC
    except OSError:
        return False


def read_texts(path: Path, rows: list[int]) -> list[str] | None:
    """The trace text at these row positions of a shard file (None when the file is missing or damaged).
    Only the row groups holding those rows are read and decoded, whatever their sizes."""
    if not looks_complete(path):
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
