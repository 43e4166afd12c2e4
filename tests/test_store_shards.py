"""Shard files as written through a real TraceStore: write threads sized by usable CPUs."""
from __future__ import annotations

import os
import threading

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
