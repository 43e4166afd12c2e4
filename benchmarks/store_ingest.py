"""store_ingest: N synthetic samples (~2 KB text each) through TraceStore vs raw DuckDB `CREATE TABLE AS`.

Both sides start from the same in-memory Arrow table and write to the same disk. TraceStore is timed twice
so the ratio is honest about where time goes:
  store          : shard writes (zstd Parquet, fsync, rename) + the catalog commit, features precomputed
  store+features : the same plus computing the trace features (what `add_samples` does for a bare table)
Targets: `store` >= 0.8x CTAS throughput, `store+features` >= 0.65x. Wall and CPU seconds are printed:
on a shared machine the CPU ratio is the steadier one.

    python benchmarks/store_ingest.py            # 200k samples, 3 repetitions
    python benchmarks/store_ingest.py --n 1000000 --reps 3
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402

from benchmarks._common import paired_cpu, sample_table  # noqa: E402
from curate.store import TraceStore  # noqa: E402
from curate.store.shards import with_features  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    table = sample_table(args.n)
    print(f"{args.n:,} samples, {table.nbytes / 1e9:.2f} GB in Arrow")
    base = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        featured = with_features(table)

        def raw():
            d = base / f"raw-{time.monotonic_ns()}.duckdb"
            con = duckdb.connect(str(d))
            con.register("t", table)
            con.execute("CREATE TABLE samples AS SELECT * FROM t")
            con.execute("CHECKPOINT")
            con.close()

        def store(t=featured):
            TraceStore(base / f"store-{time.monotonic_ns()}").add_samples(t)

        def clear():
            for p in base.iterdir():
                shutil.rmtree(p) if p.is_dir() else p.unlink()
            os.sync()  # the next run starts with no writeback of this one's files pending

        (raw_s, raw_c), (store_s, store_c) = paired_cpu(raw, store, args.reps, after=clear)
        (raw2_s, raw2_c), (full_s, full_c) = paired_cpu(raw, lambda: store(table), args.reps, after=clear)
        print(f"raw DuckDB CTAS        median {raw_s:7.2f} s wall {raw_c:7.2f} s CPU  ({args.n / raw_s:,.0f} samples/s)")
        print(f"TraceStore store path  median {store_s:7.2f} s wall {store_c:7.2f} s CPU  ({args.n / store_s:,.0f} samples/s)")
        print(f"raw DuckDB CTAS again  median {raw2_s:7.2f} s wall {raw2_c:7.2f} s CPU  (paired with the next line)")
        print(f"TraceStore + features  median {full_s:7.2f} s wall {full_c:7.2f} s CPU  ({args.n / full_s:,.0f} samples/s)")
        print(f"ratio store/raw throughput:            {raw_s / store_s:.2f}x wall, {raw_c / store_c:.2f}x CPU  (target >= 0.8)")
        print(f"ratio (store+features)/raw throughput: {raw2_s / full_s:.2f}x wall, {raw2_c / full_c:.2f}x CPU  (target >= 0.65)")
        print(f"features cost: store+features = {full_s / store_s:.2f}x the store path (wall), {full_c / store_c:.2f}x (CPU)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
