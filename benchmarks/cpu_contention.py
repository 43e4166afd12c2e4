"""Benchmark: a tiny `curate train` + `curate eval` (2 checkpoints, a Countdown suite, hf backend) on a quiet
machine and beside --busy processes that each spin one CPU, as plain command lines (the threads curate picks
for itself, curate/cpus.py), against the same job with OMP_NUM_THREADS=1.

The fair-share bound of the loaded run is quiet x (busy + 1) / usable CPUs: one thread of ours among `busy`
spinning ones gets (usable / (busy + 1)) of a CPU. Prints each wall time, the slowdown and its ratio to that
bound (target <= 1.5x). The machine's other load counts as well, so run it on an otherwise idle machine.

Run: python benchmarks/cpu_contention.py [--busy 8] [--problems 16] [--max-tokens 64]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "train"))


def _spin() -> None:
    while True:
        pass


def setup(root: Path, problems: int, max_tokens: int) -> tuple[Path, Path, Path]:
    """Tokenizer, training rows, a config with exports at steps 1 and 2, an eval store and suite."""
    import tiny

    from curate.store import TraceStore
    from curate.tasks import add_problems

    tiny.make_tokenizer(root / "tok")
    tiny.write_jsonl(root / "data.jsonl", tiny.rows(32, seed=11))
    add_problems(TraceStore(root / "store"), "countdown", {"min_numbers": 4, "max_numbers": 4}, size=problems,
                 seed=1000, split="eval")
    suite = root / "suite.json"
    suite.write_text(json.dumps({"name": "bench", "benchmarks": [{
        "name": "countdown", "task": "countdown", "verifier": "countdown", "n": 1,
        "sampling": {"temperature": 0.6, "top_p": 0.95, "top_k": -1, "max_tokens": max_tokens}}]}))
    cfg = tiny.write_config(root / "train.yaml", root / "tok", root / "data.jsonl", root / "run",
                            train={"global_batch_size": 8, "epochs": 1, "max_steps": 2, "seed": 7},
                            checkpoint={"steps": [1, 2], "every": None})
    return cfg, suite, root / "store"


def job(cfg: Path, suite: Path, store: Path, out: Path, env: dict) -> float:
    """Train into `out`, then evaluate both checkpoints; wall seconds."""
    full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    t0 = time.perf_counter()
    for argv in (["train", str(cfg), "--set", f"output_dir={out}"],
                 ["eval", str(out), "--suite", str(suite), "--store", str(store), "--backend", "hf",
                  "--no-progress", "--workers", "1"]):
        r = subprocess.run([sys.executable, "-m", "curate", *argv], capture_output=True, text=True, env=full)
        if r.returncode:
            sys.exit(f"curate {argv[0]} failed:\n{r.stderr[-2000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--busy", type=int, default=8)
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=64)
    a = ap.parse_args()
    from curate.cpus import usable_cpus

    usable, load = usable_cpus(), os.getloadavg()[0]
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.clear()
    os.environ.update(clean)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        cfg, suite, store = setup(root, a.problems, a.max_tokens)
        quiet = job(cfg, suite, store, root / "quiet", {})
        spinners = [mp.Process(target=_spin, daemon=True) for _ in range(a.busy)]
        for p in spinners:
            p.start()
        try:
            loaded = job(cfg, suite, store, root / "loaded", {})
            one = job(cfg, suite, store, root / "one", {"OMP_NUM_THREADS": "1"})
        finally:
            for p in spinners:
                p.kill()
    bound = quiet * (a.busy + 1) / usable
    print(f"usable CPUs {usable}, busy processes {a.busy}, load before start {load:.1f}")
    print(f"quiet {quiet:.1f}s | loaded, curate's threads {loaded:.1f}s | loaded, OMP_NUM_THREADS=1 {one:.1f}s")
    print(f"fair-share bound {bound:.1f}s: curate's threads {loaded / bound:.2f}x of it, OMP_NUM_THREADS=1 "
          f"{one / bound:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
