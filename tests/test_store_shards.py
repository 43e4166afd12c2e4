"""Shard files as written and read through a real TraceStore: row groups bounded by bytes (reading one trace
decodes one group), shards written with the old 65,536-row groups, and write threads sized by usable CPUs."""
from __future__ import annotations

import os
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate import features
from curate.records import Problem, Sample
from curate.store import TraceStore, writes
from curate.store import shards as shard_io


def make(n: int, text) -> tuple[list[Problem], list[Sample]]:
    probs = [Problem(source="unit", domain="math", prompt=f"question {i}", reference=str(i)) for i in range(4)]
    samples = [Sample(problem_id=probs[i % 4].id, text=text(i), backend="synthetic", model="m", params={"t": 0.6},
                      sample_index=i, finish_reason="stop", completion_tokens=10) for i in range(n)]
    return probs, samples


def long_text(i: int) -> str:  # ~48 KB, about a 12k-token trace
    return f"<think>trace {i}: " + f"wait, let me check step {i} again. " * 1400 + f"</think> \\boxed{{{i}}}"


def test_a_shard_of_long_traces_gets_row_groups_bounded_by_bytes(store_path):
    st = TraceStore(store_path)
    probs, samples = make(200, long_text)
    st.add_problems(probs)
    [path] = st.write_shard(samples)
    md = pq.ParquetFile(path).metadata
    text_col = md.schema.to_arrow_schema().get_field_index("text")
    assert md.num_row_groups >= 3  # 65,536-row groups would have put all 9.6 MB in one
    for g in range(md.num_row_groups):
        group = md.row_group(g)
        assert group.total_byte_size <= shard_io.ROW_GROUP_BYTES
        assert group.column(text_col).total_uncompressed_size <= shard_io.ROW_GROUP_BYTES
    assert sum(md.row_group(g).num_rows for g in range(md.num_row_groups)) == 200

    assert st.commit_pending() == 200
    stored = {r["id"]: r["text"] for r in st.query("SELECT id, text FROM traces").to_pylist()}
    assert stored == {s.id: s.text for s in samples}
    plan, _ = st.unlabeled_plan("math", "1")
    [(planned, items)] = plan
    assert planned == path and len(items) == 200
    picked = [items[k] for k in (0, 82, 83, 150, 199)]  # rows in the first, middle and last groups
    assert TraceStore.shard_texts(path, [row for _, _, row in picked]) == [stored[sid] for sid, _, _ in picked]


def test_row_groups_hold_what_fits_in_the_byte_bound_within_the_row_bounds():
    low, high = shard_io.ROW_GROUP_ROWS
    assert shard_io.row_group_sizes(pa.table({"text": ["x" * 20] * (high + 10)})) == [high, 10]
    assert shard_io.row_group_sizes(pa.table({"text": ["x" * (1 << 20)] * (low + 3)})) == [low, 3]
    assert shard_io.row_group_sizes(pa.table({"text": pa.array([], pa.string())})) == []
    # a run of long traces after short ones: the long ones get smaller groups, none over the bound
    lengths = [512] * 10_000 + [64_000] * 300
    sizes = shard_io.row_group_sizes(pa.table({"text": ["y" * n for n in lengths]}))
    assert sum(sizes) == len(lengths) and len(set(sizes)) > 2
    start = 0
    for rows in sizes:
        assert sum(n + 4 for n in lengths[start:start + rows]) <= shard_io.ROW_GROUP_BYTES
        start += rows
    assert sizes[0] > 7000 and sizes[-2] == shard_io.ROW_GROUP_BYTES // 64_004


def test_shards_written_with_65536_row_groups_still_read(store_path):
    """A shard from before row groups were bounded by bytes: one 65,536-row group, text statistics kept."""
    st = TraceStore(store_path)
    probs, samples = make(300, lambda i: f"<think>old {i}</think> \\boxed{{{i}}}")
    st.add_problems(probs)
    table = shard_io.with_features(shard_io.samples_to_table(samples))
    old = st.shard_dir / "s-old.parquet"
    st.shard_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, old, compression="zstd", row_group_size=65536)
    assert pq.ParquetFile(old).metadata.num_row_groups == 1
    assert st.commit_pending() == 300
    assert {r["id"]: r["text"] for r in st.query("SELECT id, text FROM traces").to_pylist()} == {s.id: s.text for s in samples}
    assert TraceStore.shard_texts(old, [0, 150, 299]) == [samples[k].text for k in (0, 150, 299)]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_writer_and_shard_threads_follow_the_usable_cpus(store_path, monkeypatch):
    """With one CPU in this process's affinity mask (on a machine with more), the writer runs one DuckDB
    thread, features are computed on the calling thread and shards are written by one thread."""
    st = TraceStore(store_path)
    probs, samples = make(10, lambda i: f"<think>step {i}</think> \\boxed{{{i}}}" * 3)
    st.add_problems(probs)
    monkeypatch.setattr(writes, "SHARD_ROWS", 4)
    monkeypatch.setattr(shard_io, "FEATURE_CHUNK_BYTES", 64)  # several feature chunks for 10 samples
    feature_threads, write_threads = set(), set()
    real_compute, real_write = features.compute, shard_io.write_atomic
    monkeypatch.setattr(features, "compute", lambda *a: feature_threads.add(threading.get_ident()) or real_compute(*a))
    monkeypatch.setattr(shard_io, "write_atomic", lambda *a: write_threads.add(threading.get_ident()) or real_write(*a))
    mask = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(mask)})  # this thread only; threads it starts inherit it
    try:
        with st.session() as con:
            assert con.execute("SELECT current_setting('threads')").fetchone()[0] == 1
        assert len(st.write_shard(samples)) == 3
    finally:
        os.sched_setaffinity(0, mask)
    assert feature_threads == {threading.get_ident()}
    assert len(write_threads) == 1
    assert st.commit_pending() == 10
