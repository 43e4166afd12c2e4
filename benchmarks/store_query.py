"""store_query: GROUP BY source/status with average completion tokens, TraceStore SQL vs pandas on the same data.

The store holds N samples (metadata in DuckDB, text in Parquet shards) with problems and verdicts. The
pandas peer reads the same shard Parquet files plus problems/verdicts exported to Parquet, merges and groups.
Each side runs --reps times (interleaved); medians and the ratio are printed. Target: >= 3x faster than pandas.

    python benchmarks/store_query.py --n 1000000
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from benchmarks._common import paired, sample_table  # noqa: E402
from curate.store import TraceStore  # noqa: E402
from curate.store.shards import with_features  # noqa: E402

QUERY = """SELECT p.source, v.status, count(*) AS n, avg(s.completion_tokens) AS avg_completion_tokens
FROM samples s JOIN problems p ON p.id = s.problem_id JOIN verdicts v ON v.sample_id = s.id
GROUP BY p.source, v.status ORDER BY p.source, v.status"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-query-"))
    try:
        table = sample_table(args.n)
        pids = sorted(set(table.column("problem_id").to_pylist()))
        rng = np.random.default_rng(1)
        sources = np.array(["math500", "openr1", "countdown", "numina"])[rng.integers(0, 4, len(pids))]
        problems = pa.table({"id": pids, "source": sources.tolist(), "domain": ["math"] * len(pids), "prompt": ["q"] * len(pids),
                             "reference": ['"1"'] * len(pids), "metadata": ["{}"] * len(pids), "split": ["train"] * len(pids)})
        statuses = np.array(["correct", "incorrect", "no_answer"])[rng.integers(0, 3, args.n)]
        verdicts = pa.table({"sample_id": table.column("id"), "verifier": ["math"] * args.n, "version": ["1"] * args.n,
                             "status": statuses.tolist(), "score": (statuses == "correct").astype(float),
                             "answer": pa.nulls(args.n, pa.string()), "reason": [""] * args.n, "duration_s": np.zeros(args.n)})
        st = TraceStore(base / "store")
        st.add_problem_table(problems)
        st.add_samples(with_features(table))
        with st._write() as con:
            con.register("v", verdicts)
            con.execute("INSERT INTO verdict_rows SELECT *, now() FROM v")
        pq.write_table(problems, base / "problems.parquet")
        pq.write_table(verdicts, base / "verdicts.parquet")
        shard_files = sorted((base / "store" / "shards").glob("*.parquet"))

        def ours():
            return st.query(QUERY)

        def pandas_peer():
            s = pd.concat([pd.read_parquet(f, columns=["id", "problem_id", "completion_tokens"]) for f in shard_files])
            p = pd.read_parquet(base / "problems.parquet", columns=["id", "source"])
            v = pd.read_parquet(base / "verdicts.parquet", columns=["sample_id", "status"])
            m = s.merge(p, left_on="problem_id", right_on="id").merge(v, left_on="id_x", right_on="sample_id")
            return m.groupby(["source", "status"]).agg(n=("id_x", "size"), avg_completion_tokens=("completion_tokens", "mean")).reset_index()

        a = ours().to_pandas().sort_values(["source", "status"]).reset_index(drop=True)
        b = pandas_peer().sort_values(["source", "status"]).reset_index(drop=True)
        assert (a["n"].to_numpy() == b["n"].to_numpy()).all(), "the two sides disagree"
        o, q = paired(ours, pandas_peer, args.reps)
        print(f"{args.n:,} samples; identical groups on both sides")
        print(f"TraceStore SQL  median {o * 1000:8.1f} ms")
        print(f"pandas          median {q * 1000:8.1f} ms")
        print(f"ratio: {q / o:.1f}x faster than pandas (target >= 3x)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
