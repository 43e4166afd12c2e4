"""Benchmark: `curate eval` overhead. One checkpoint on a fixed set of stored Countdown problems through the whole stage
(suite, planning, resumable generation into the store, labeling in verifier worker processes, scoring into
`evals`) vs calling the same hf backend and the same verifier directly in this process, side by side.

Both sides load the model from the same folder, generate exactly --max-tokens tokens per problem (the tiny
model's generation_config sets min_new_tokens) with the same batch size, and verify every response with the
countdown verifier; the direct side keeps results in a list. Prints median wall and CPU seconds over --reps
and the throughput ratio direct / curate eval (target >= 0.9x: orchestration costs at most 10%).
The direct side's verdicts must equal the stored ones (same prompts, same per-sample seeds), else it exits 1.

Run: python benchmarks/eval_overhead.py [--problems 128] [--max-tokens 256] [--batch-size 16] [--reps 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Heavy imports stay inside functions: the verifier pool's forkserver re-imports this __main__ module, and
# importing torch there would be charged to curate eval's worker start-up.


def write_suite(path: Path, max_tokens: int) -> Path:
    """The fixed problem set: the store's eval-split Countdown problems (added once, before timing)."""
    path.write_text(json.dumps({
        "name": "bench", "benchmarks": [{
            "name": "countdown", "task": "countdown", "verifier": "countdown", "n": 1,
            "sampling": {"temperature": 0.6, "top_p": 0.95, "top_k": -1, "max_tokens": max_tokens}}]}))
    return path


def template_store(path: Path, problems: int) -> Path:
    from curate.store import TraceStore
    from curate.tasks import add_problems

    add_problems(TraceStore(path), "countdown", {"min_numbers": 4, "max_numbers": 4}, size=problems, seed=1000, split="eval")
    return path


def direct(model_dir: str, suite_path: Path, store_dir: Path, batch_size: int) -> tuple[float, float, dict]:
    """The same requests (ids, so per-sample seeds) the stage would send, generated and verified in-process."""
    from curate.evaluate.runner import EvalOptions, LazyBackend
    from curate.evaluate.suite import load_suite
    from curate.evaluate.targets import resolve_targets
    from curate.generate.base import Request
    from curate.generate.hf_backend import HFBackend, HFConfig
    from curate.generate.prompting import build_messages
    from curate.generate.runner import RunConfig, generator_identity
    from curate.records import Sample
    from curate.store import TraceStore
    from curate.store.evals import benchmark_predicate
    from verifiers.registry import get_verifier

    suite = load_suite(str(suite_path))
    bench = suite.benchmarks[0]
    target = resolve_targets(model_dir)[0][0]
    cfg = RunConfig(n=1, seed=bench.seed, sampling=bench.sampling.params(), template=bench.template)
    ident = LazyBackend("hf", target, EvalOptions(backend_options={"batch_size": batch_size}))
    gen = generator_identity(ident.identity, cfg)
    t0, c0 = time.perf_counter(), time.process_time()
    problems = TraceStore(store_dir).problems(benchmark_predicate(bench.problem_source))
    backend = HFBackend(model_dir, HFConfig(batch_size=batch_size), cfg.sampling)
    reqs = [Request(id=Sample.identity(p.id, gen, 0, cfg.seed), problem=p, messages=build_messages(p, cfg.template),
                    sample_index=0, seed=cfg.seed) for p in problems]
    by_id = {r.id: r for r in reqs}
    verifier = get_verifier("countdown")
    verdicts = {c.request_id: verifier.verify(by_id[c.request_id].problem, c.text).status for c in backend.generate(reqs)}
    return time.perf_counter() - t0, time.process_time() - c0, verdicts


def through_eval(model_dir: str, suite_path: Path, store_dir: Path, batch_size: int) -> tuple[float, float, dict]:
    from curate.evaluate import evaluate_command
    from curate.store import TraceStore

    tmp = Path(tempfile.mkdtemp())
    try:
        shutil.copytree(store_dir, tmp / "store")  # the same stored problems, nothing generated yet
        store = TraceStore(tmp / "store")
        t0, c0 = time.perf_counter(), time.process_time()
        rep = evaluate_command(store, model_dir, str(suite_path), backend="hf", backend_options={"batch_size": batch_size},
                               workers=2, progress=False)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert rep.generated > 0
        rows = store.query("SELECT e.sample_id, v.status FROM eval_samples e JOIN verdicts v ON v.sample_id = e.sample_id").to_pylist()
        return elapsed, cpu, {r["sample_id"]: r["status"] for r in rows}
    finally:
        shutil.rmtree(tmp)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=128)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    from curate.generate.tiny import build_tiny_model

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp())
    model_dir = str(build_tiny_model(tmp / "tiny"))
    cfg_path = Path(model_dir) / "generation_config.json"
    gen_cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**gen_cfg, "min_new_tokens": args.max_tokens}))  # equal work on both sides
    suite = write_suite(tmp / "bench.yaml", args.max_tokens)
    store_dir = template_store(tmp / "store", args.problems)
    d, e = [], []
    for _ in range(args.reps):
        d.append(direct(model_dir, suite, store_dir, args.batch_size))
        e.append(through_eval(model_dir, suite, store_dir, args.batch_size))
    if d[-1][2] != e[-1][2]:
        print(f"FAILED: direct and curate eval verdicts differ ({len(d[-1][2])} vs {len(e[-1][2])} samples)")
        sys.exit(1)
    md, me = statistics.median(x[0] for x in d), statistics.median(x[0] for x in e)
    cd, ce = statistics.median(x[1] for x in d), statistics.median(x[1] for x in e)
    print(f"wall: direct backend+verifier {md:.2f}s, curate eval {me:.2f}s (store, workers, scoring included), ratio {md / me:.2f}x\n"
          f"cpu:  direct backend+verifier {cd:.2f}s, curate eval {ce:.2f}s (this process only), ratio {cd / ce:.2f}x\n"
          f"[{args.problems} problems x {args.max_tokens} tokens, batch {args.batch_size}, {args.reps} reps, median; "
          f"identical verdicts on both sides]")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
