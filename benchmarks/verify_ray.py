"""Benchmark: labeling throughput of the Ray executor vs the local worker pool, on this machine's cores.

    python benchmarks/verify_ray.py                 # 2,000 math traces, 2 workers, 3 reps
    python benchmarks/verify_ray.py --n 500 --reps 1

Traces: the math benchmark's realistic long-CoT cases (benchmarks/verify_math.py: a few KB of thinking, a
boxed answer in the formats models use, ~60% correct). Local: `curate.label.label_store` (what `curate verify`
calls), `--workers` verifier processes. Ray: `curate.scale.ray_executor.label_store` (what `curate verify
--executor ray` calls) on a local Ray started once with `num_cpus=--workers` (a cluster exists before a job
runs, so Ray's own start is not timed; its actors and their verifier processes are, like the local pool's
start). Each rep re-labels every trace (--relabel), the two sides alternately so both see the same machine
load. Prints median seconds, traces/s and the ratio (Ray / local throughput; target >= 0.8x: the overhead
must stay small so that more machines mean more speed). The verdicts of the two paths are compared first:
when any (sample, status, answer) differs it prints the differences, no ratio, and exits 1.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import fail_check  # noqa: E402
from benchmarks.verify_math import make_cases  # noqa: E402
from curate.label import label_store  # noqa: E402
from curate.records import Problem, Sample  # noqa: E402
from curate.store import TraceStore  # noqa: E402


def _verdicts(st: TraceStore) -> dict[str, tuple]:
    rows = st.query("SELECT sample_id, status, answer FROM verdicts WHERE verifier = 'math'").to_pylist()
    return {r["sample_id"]: (r["status"], r["answer"]) for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=500)
    args = ap.parse_args()
    try:
        import ray
    except ImportError:
        sys.exit("verify_ray: Ray is not installed (pip install 'curate[ray]')")
    from curate.scale import ray_executor

    cases = make_cases(args.n)
    t0 = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             _system_config=ray_executor.LOCAL_SYSTEM_CONFIG)  # what `--executor ray` starts locally
    ray_start = time.perf_counter() - t0
    local_t, ray_t, differ = [], [], []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            stores = {}
            for side in ("local", "ray"):
                st = stores[side] = TraceStore(Path(tmp) / side)
                probs = [Problem("math500", "math", f"Problem {i}", g) for i, (g, _, _) in enumerate(cases)]
                st.add_problems(probs)
                st.add_samples([Sample(p.id, o, "bench", "m") for p, (_, o, _) in zip(probs, cases)])
            for rep in range(args.reps):
                t0 = time.perf_counter()
                a = label_store(stores["local"], verifier="math", workers=args.workers, relabel=rep > 0,
                                batch_size=args.batch_size)
                local_t.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                b = ray_executor.label_store(stores["ray"], verifier="math", workers=args.workers, relabel=rep > 0,
                                             batch_size=args.batch_size)
                ray_t.append(time.perf_counter() - t0)
                if not a.labeled == b.labeled == len(cases):
                    differ.append(f"rep {rep}: labeled {a.labeled} locally, {b.labeled} on Ray, of {len(cases)}")
                va, vb = _verdicts(stores["local"]), _verdicts(stores["ray"])
                differ += [f"rep {rep}: sample {k}: local {va.get(k)}, ray {vb.get(k)}"
                           for k in sorted(set(va) | set(vb)) if va.get(k) != vb.get(k)]
    finally:
        ray.shutdown()
    if differ:
        fail_check(f"verify_ray: the two paths' verdicts DIFFER ({len(differ)}), no ratio printed:", differ)
    ml, mr = statistics.median(local_t), statistics.median(ray_t)
    print(f"verify_ray: {args.n} math traces, {args.workers} workers, batch {args.batch_size}, {args.reps} reps "
          f"(Ray start {ray_start:.1f}s, not timed)")
    print(f"  local pool  median {ml:.2f}s  {args.n / ml:,.0f} traces/s  (reps {', '.join(f'{t:.2f}' for t in local_t)})")
    print(f"  ray         median {mr:.2f}s  {args.n / mr:,.0f} traces/s  (reps {', '.join(f'{t:.2f}' for t in ray_t)})")
    print(f"  ratio       {ml / mr:.2f}x (Ray / local throughput; target >= 0.8x)")
    print("  verdicts    identical on every rep")


if __name__ == "__main__":
    main()
