"""Helpers shared by the benchmarks: synthetic sample tables, timing with medians, peak RSS in a subprocess."""
from __future__ import annotations

import statistics
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

VOCAB = ("the of a to is we so then let x y equals number sum plus times divide check value answer compute step first "
         "next therefore since because wait alternatively verify hmm case term factor prime root square").split()


def _pool(rng: np.random.Generator, n: int, words: int) -> pa.Array:
    idx = rng.integers(0, len(VOCAB), size=(n, words))
    return pa.array([" ".join(VOCAB[i] for i in row) for row in idx])


def sample_table(n: int, text_bytes: int = 2048, n_problems: int | None = None, seed: int = 0) -> pa.Table:
    """n synthetic samples shaped like a shard (metadata + ~text_bytes of text); texts are nearly all distinct."""
    from curate.store.shards import SHARD_SCHEMA

    rng = np.random.default_rng(seed)
    n_problems = n_problems or max(1, n // 8)
    parts = 4
    pools = [_pool(rng, 1000, text_bytes // parts // 6) for _ in range(parts)]
    chunks = [pc.take(p, pa.array(rng.integers(0, 1000, n))) for p in pools]
    text = pc.binary_join_element_wise("<think>", *chunks, "</think> The answer is \\boxed{7}.", " ")
    ids = pa.array([f"{i:032x}" for i in range(n)])
    pids = pa.array([f"p{i % n_problems:031x}" for i in range(n)])
    models = pa.array(np.array(["Qwen/Qwen3-32B", "deepseek-ai/DeepSeek-R1"])[rng.integers(0, 2, n)])
    ct = pa.array(rng.integers(200, 16384, n).astype(np.int32))
    fin = pa.array(np.array(["stop", "stop", "stop", "length"])[rng.integers(0, 4, n)])
    cols = {
        "id": ids, "problem_id": pids, "backend": pa.array(["vllm"] * n), "model": models,
        "revision": pa.nulls(n, pa.string()), "params": pa.array(['{"temperature":0.6,"top_p":0.95}'] * n),
        "sample_index": pa.array((np.arange(n) // n_problems).astype(np.int32)), "seed": pa.nulls(n, pa.int64()),
        "finish_reason": fin, "prompt_tokens": pa.array(np.full(n, 120, np.int32)), "completion_tokens": ct,
        "teacher_logprob": pa.nulls(n, pa.float64()), "teacher_entropy": pa.nulls(n, pa.float64()),
        "latency_s": pa.nulls(n, pa.float64()), "run_id": pa.array(["bench"] * n), "text": text,
    }
    return pa.table(cols, schema=SHARD_SCHEMA)


def paired(a, b, reps: int) -> tuple[float, float]:
    """Median seconds of `a` and of `b`, run alternately so both sides see the same machine load."""
    (wall_a, _), (wall_b, _) = paired_cpu(a, b, reps)
    return wall_a, wall_b


def paired_cpu(a, b, reps: int, after=None) -> tuple[tuple[float, float], tuple[float, float]]:
    """Like `paired`, also with CPU seconds (all threads of this process): ((wall_a, cpu_a), (wall_b, cpu_b)).
    CPU time moves less than wall time when other jobs share the machine. `after`, if given, runs untimed
    after every call (e.g. deleting what the call wrote, so that no run pays for the previous one's files)."""
    def once(fn):
        t, c = time.perf_counter(), time.process_time()
        fn()
        spent = time.perf_counter() - t, time.process_time() - c
        if after is not None:
            after()
        return spent

    pairs = [(once(a), once(b)) for _ in range(reps)]
    med = statistics.median
    return ((med(p[0][0] for p in pairs), med(p[0][1] for p in pairs)),
            (med(p[1][0] for p in pairs), med(p[1][1] for p in pairs)))


def timed(fn, reps: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def fail_check(header: str, lines: list[str], shown: int = 20) -> None:
    """A benchmark's own correctness check failed: say what, print no ratio, exit 1."""
    import sys

    print(header, file=sys.stderr)
    for line in lines[:shown]:
        print(f"  {line}", file=sys.stderr)
    sys.exit(1)
