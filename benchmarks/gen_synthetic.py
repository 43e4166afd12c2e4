"""Benchmark: synthetic Countdown traces per minute, committed to a real store (target >= 10,000/min on
2 cores), side by side with the bare backend (traces built in memory, nothing stored).

Problems are generated and added once (not timed); each repetition runs the full runner into a fresh
store: plan, resume check, traces, Parquet shards with features, commit. Prints medians and the ratio.

Run: python benchmarks/gen_synthetic.py [--problems 2500] [--n 4] [--reps 3] [--wrong-share 0.2]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curate.generate import RunConfig  # noqa: E402
from curate.generate.base import Request  # noqa: E402
from curate.generate.prompting import build_messages  # noqa: E402
from curate.generate.runner import run  # noqa: E402
from curate.generate.synthetic import SyntheticBackend, SyntheticConfig  # noqa: E402
from curate.store import TraceStore  # noqa: E402
from curate.tasks.countdown import CountdownConfig, generate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=2500)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--wrong-share", type=float, default=0.2)
    args = ap.parse_args()
    t = time.perf_counter()
    problems = [generate(CountdownConfig(), 0, i) for i in range(args.problems)]
    print(f"generated {len(problems)} countdown problems (3-6 numbers) in {time.perf_counter() - t:.1f}s (not timed below)")
    backend = SyntheticBackend(config=SyntheticConfig(wrong_share=args.wrong_share))
    total = args.problems * args.n
    stored, bare = [], []
    for _ in range(args.reps):
        tmp = Path(tempfile.mkdtemp())
        try:
            st = TraceStore(tmp / "store")
            st.add_problems(problems)
            t0 = time.perf_counter()
            r = run(st, backend, None, RunConfig(n=args.n), progress=False)
            dt = time.perf_counter() - t0
            n_stored = st.query("SELECT count(*) AS n FROM samples").to_pylist()[0]["n"]
            assert r.generated == total == n_stored, (r.generated, total, n_stored)
            stored.append(total / dt * 60)
        finally:
            shutil.rmtree(tmp)
        reqs = [Request(id=f"{p.id}{i}", problem=p, messages=build_messages(p), sample_index=i, seed=0)
                for p in problems for i in range(args.n)]
        t0 = time.perf_counter()
        for _ in backend.generate(reqs):
            pass
        bare.append(total / (time.perf_counter() - t0) * 60)
    ms, mb = statistics.median(stored), statistics.median(bare)
    print(f"committed to the store: {ms:,.0f} traces/min ({'meets' if ms >= 10_000 else 'MISSES'} 10,000); "
          f"bare backend: {mb:,.0f} traces/min; ratio {ms / mb:.2f}x "
          f"[{total} traces per rep, wrong_share {args.wrong_share}, {args.reps} reps, median]")


if __name__ == "__main__":
    main()
