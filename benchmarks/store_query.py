"""store_query: group-bys and counts over the store's views vs pandas on the same Parquet data.

The store holds N samples (metadata in DuckDB, text in Parquet shards) with problems and one verdict each,
written through the store's own API. The pandas peer reads the same shard files plus the problems and
verdicts exported to Parquet, merges and groups. Each side runs --reps times, interleaved; medians and
ratios are printed. Three store queries are timed (each through TraceStore.query, connection included):
  traces   : SELECT source, status, count(*), avg(completion_tokens) FROM traces GROUP BY ...  (the peer's result)
  joins    : the same answer joined by hand from samples, problems and verdicts on their text ids
  count    : SELECT count(*) FROM traces
Targets: `traces` >= 3x faster than pandas at 1M and 10M samples; `count` under 1 s at 10M.

    python benchmarks/store_query.py --n 1000000
    python benchmarks/store_query.py --n 10000000 --text-bytes 256 --reps 3
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from benchmarks._common import fail_check, paired, sample_table, timed  # noqa: E402
from curate.store import TraceStore  # noqa: E402
from curate.store.shards import with_features  # noqa: E402

TRACES = """SELECT source, status, count(*) AS n, avg(completion_tokens) AS avg_completion_tokens
FROM traces GROUP BY source, status ORDER BY source, status"""
JOINS = """SELECT p.source, v.status, count(*) AS n, avg(s.completion_tokens) AS avg_completion_tokens
FROM samples s JOIN problems p ON p.id = s.problem_id JOIN verdicts v ON v.sample_id = s.id
GROUP BY p.source, v.status ORDER BY p.source, v.status"""
COUNT = "SELECT count(*) AS n FROM traces"
CHUNK = 1_000_000


def build(store: TraceStore, n: int, text_bytes: int) -> tuple[pa.Table, pa.Table]:
    """Write n samples in chunks (bounded memory), their problems and one verdict each; return problems, verdicts."""
    n_problems = max(1, n // 8)
    rng = np.random.default_rng(1)
    pids = [f"p{i:031x}" for i in range(n_problems)]
    sources = np.array(["math500", "openr1", "countdown", "numina"])[rng.integers(0, 4, n_problems)]
    problems = pa.table({"id": pids, "source": sources.tolist(), "domain": ["math"] * n_problems, "prompt": ["q"] * n_problems,
                         "reference": ['"1"'] * n_problems, "metadata": ["{}"] * n_problems, "split": ["train"] * n_problems})
    store.add_problem_table(problems)
    ids = []
    for start in range(0, n, CHUNK):
        t = sample_table(min(CHUNK, n - start), text_bytes=text_bytes, n_problems=n_problems, seed=start)
        t = t.set_column(0, "id", pa.array([f"{i:032x}" for i in range(start, start + t.num_rows)]))
        t = t.set_column(1, "problem_id", pa.array([pids[i % n_problems] for i in range(start, start + t.num_rows)]))
        store.add_samples(with_features(t))
        ids.append(t.column("id"))
    statuses = np.array(["correct", "incorrect", "no_answer"])[rng.integers(0, 3, n)]
    verdicts = pa.table({"sample_id": pa.chunked_array(ids).combine_chunks(), "verifier": ["math"] * n, "version": ["1"] * n,
                         "status": statuses.tolist(), "score": (statuses == "correct").astype(float),
                         "answer": pa.nulls(n, pa.string()), "reason": [""] * n, "duration_s": np.zeros(n)})
    store.add_verdict_table(verdicts)
    return problems, verdicts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--text-bytes", type=int, default=2048, help="trace length (smaller keeps a 10M store on a small disk)")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-query-"))
    try:
        st = TraceStore(base / "store")
        t0 = time.perf_counter()
        problems, verdicts = build(st, args.n, args.text_bytes)
        print(f"built {args.n:,} samples in {time.perf_counter() - t0:.0f} s")
        pq.write_table(problems.select(["id", "source"]), base / "problems.parquet")
        pq.write_table(verdicts.select(["sample_id", "status"]), base / "verdicts.parquet")
        del problems, verdicts
        shard_files = sorted((base / "store" / "shards").glob("*.parquet"))

        def pandas_peer():
            s = pd.concat([pd.read_parquet(f, columns=["id", "problem_id", "completion_tokens"]) for f in shard_files])
            p = pd.read_parquet(base / "problems.parquet")
            v = pd.read_parquet(base / "verdicts.parquet")
            m = s.merge(p, left_on="problem_id", right_on="id").merge(v, left_on="id_x", right_on="sample_id")
            return m.groupby(["source", "status"]).agg(n=("id_x", "size"), avg_completion_tokens=("completion_tokens", "mean")).reset_index()

        want = pandas_peer().sort_values(["source", "status"]).reset_index(drop=True)
        for name, sql in (("traces", TRACES), ("joins", JOINS)):
            got = st.query(sql).to_pandas().rename(columns={"p.source": "source"})
            if not ((got["n"].to_numpy() == want["n"].to_numpy()).all()
                    and np.allclose(got["avg_completion_tokens"], want["avg_completion_tokens"])):
                fail_check(f"the `{name}` query and pandas disagree", [str(got), str(want)])
        if st.query(COUNT).column("n")[0].as_py() != args.n:
            fail_check("count(*) over traces is wrong", [str(st.query(COUNT))])
        ours, peer = paired(lambda: st.query(TRACES), pandas_peer, args.reps)
        joins, _ = timed(lambda: st.query(JOINS), args.reps)
        count, _ = timed(lambda: st.query(COUNT), args.reps)
        print(f"{args.n:,} samples ({args.text_bytes} B of text each); identical groups on every side")
        print(f"traces group-by  median {ours * 1000:9.1f} ms   {peer / ours:5.1f}x faster than pandas (target >= 3x)")
        print(f"text-id joins    median {joins * 1000:9.1f} ms   {peer / joins:5.1f}x faster than pandas")
        print(f"count(*) traces  median {count * 1000:9.1f} ms   (target < 1000 ms at 10M)")
        print(f"pandas           median {peer * 1000:9.1f} ms")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
