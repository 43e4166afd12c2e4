"""Benchmark: `curate generate` overhead. The runner (plan, resume check, hf backend, shards, commit)
vs calling `model.generate` directly on the same prompts with the same batch size, side by side.

Prints median wall and CPU seconds for each over --reps and the median of the paired throughput ratios
direct / runner (target >= 0.95x; each rep times both sides back to back, in alternating order, with the
range of the pairs) at two sizes, the small one (64 prompts x 128 tokens) and a larger one closer to real use
(256 x 512 by default), then both side by side. The runner's store work alone (the write probe, opening the
catalog for the resume plan, features, one shard, one commit) is measured around a backend that answers at
once, with what it does counted (catalog opens, commits, shard files). The extra seconds (runner - direct)
are split into that fixed store work and a rest per 1,000 generated tokens: a fixed cost leaves the rest
near zero and its ratio rises toward 1 with size; a per-token cost keeps the ratio where it is at every size.
One per-token difference is by design: the runner samples each row from its own seeded generator (so a
sample's text does not depend on its batch or on a resume), the direct side draws a batch at once; on this
tiny model (320-token vocabulary, two layers) that sampling is a visible share of a step, on a real model
it is not. The direct side renders its chat prompts before its clock starts; the runner renders them
inside (part of what it does). On a shared machine wall time swings with other people's load; process CPU
time (all threads of this process) is the steadier measure of the work each side does. Both sides sample
the same number of new tokens per row (EOS is suppressed so neither side stops early), so the comparison is
of everything around the model.

Run: python benchmarks/gen_runner_overhead.py [--sizes 64x128,256x512] [--batch-size 16] [--reps 3] [--threads 1]
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

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from curate.generate import RunConfig, SamplingParams  # noqa: E402
from curate.generate.hf_backend import HFBackend, HFConfig  # noqa: E402
from curate.generate.prompting import DEFAULT_TEMPLATE, user_text  # noqa: E402
from curate.generate.runner import run  # noqa: E402
from curate.generate.tiny import build_tiny_model  # noqa: E402
from curate.records import Problem  # noqa: E402
from curate.store import TraceStore  # noqa: E402
from curate.tasks.countdown import CountdownConfig, generate as countdown  # noqa: E402


def direct(model_dir: str, problems: list[Problem], max_tokens: int, batch_size: int) -> tuple[float, float]:
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    prompts = [tok.apply_chat_template([{"role": "user", "content": user_text(p.prompt, DEFAULT_TEMPLATE)}],
                                       tokenize=False, add_generation_prompt=True) for p in problems]
    prompts.sort(key=len)  # the same length-sorted batching the backend does, so only overhead differs
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(prompts), batch_size):
        enc = tok(prompts[i:i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(i)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_tokens, min_new_tokens=max_tokens, do_sample=True,
                                 temperature=0.6, top_p=0.95, top_k=20, pad_token_id=tok.pad_token_id)
        tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return time.perf_counter() - t0, time.process_time() - c0


def through_runner(model_dir: str, problems: list[Problem], max_tokens: int, batch_size: int) -> tuple[float, float]:
    tmp = Path(tempfile.mkdtemp())
    try:
        st = TraceStore(tmp / "store")
        st.add_problems(problems)
        backend = HFBackend(model_dir, HFConfig(batch_size=batch_size), SamplingParams(max_tokens=max_tokens))
        backend.lm.generation_config.min_new_tokens = max_tokens  # same token count as the direct side
        t0, c0 = time.perf_counter(), time.process_time()
        r = run(st, backend, None, RunConfig(n=1, sampling=SamplingParams(max_tokens=max_tokens)), progress=False)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert r.generated == len(problems)
        return elapsed, cpu
    finally:
        shutil.rmtree(tmp)


class Instant:
    """A backend that answers at once: the runner with it costs only the store's fixed work."""
    name, model, revision = "instant", "none", None

    def identity_params(self) -> dict:
        return {}

    def generate(self, requests):
        from curate.generate.base import Completion

        for r in requests:
            yield Completion(request_id=r.id, text="<think>x</think> 1", finish_reason="length", prompt_tokens=1,
                             completion_tokens=1)

    def close(self) -> None:
        pass


def fixed_cost(prompts: int, reps: int) -> tuple[float, float, dict]:
    """Median wall and CPU seconds of the runner around a backend that takes no time, and what one such run
    does to the store (counted, not timed: DuckDB opens, shard files written, commits)."""
    import duckdb

    problems = [countdown(CountdownConfig(max_numbers=4), 0, i) for i in range(prompts)]
    out, counts = [], {}
    for rep in range(reps):
        tmp = Path(tempfile.mkdtemp())
        try:
            st = TraceStore(tmp / "store")
            st.add_problems(problems)
            real_connect, real_commit, opens, commits = duckdb.connect, st.commit_pending, [], []
            if rep == 0:
                duckdb.connect = lambda *a, **k: opens.append(1) or real_connect(*a, **k)
                st.commit_pending = lambda: commits.append(1) or real_commit()
            try:
                t0, c0 = time.perf_counter(), time.process_time()
                run(st, Instant(), None, RunConfig(n=1), progress=False)
                out.append((time.perf_counter() - t0, time.process_time() - c0))
            finally:
                duckdb.connect = real_connect
            if rep == 0:
                counts = {"catalog opens": len(opens), "commits": len(commits),
                          "shard files": len(list(st.shard_dir.glob("*.parquet")))}
        finally:
            shutil.rmtree(tmp)
    return statistics.median(x[0] for x in out), statistics.median(x[1] for x in out), counts


def measure(model_dir: str, prompts: int, max_tokens: int, batch_size: int, reps: int) -> dict:
    """Each rep times both sides back to back, in alternating order, and keeps their ratio: a machine that
    slows down for a while (other tenants, clock changes) slows both sides of a pair, so the median of the
    paired ratios is steadier than a ratio of medians."""
    problems = [countdown(CountdownConfig(max_numbers=4), 0, i) for i in range(prompts)]
    d, r = [], []
    for rep in range(reps):
        if rep % 2:
            r.append(through_runner(model_dir, problems, max_tokens, batch_size))
            d.append(direct(model_dir, problems, max_tokens, batch_size))
        else:
            d.append(direct(model_dir, problems, max_tokens, batch_size))
            r.append(through_runner(model_dir, problems, max_tokens, batch_size))
    md, mr = statistics.median(x[0] for x in d), statistics.median(x[0] for x in r)
    cd, cr = statistics.median(x[1] for x in d), statistics.median(x[1] for x in r)
    wall = sorted(a[0] / b[0] for a, b in zip(d, r))
    cpu = sorted(a[1] / b[1] for a, b in zip(d, r))
    fw, fc, counts = fixed_cost(prompts, reps)
    print(f"[{prompts} prompts x {max_tokens} tokens, batch {batch_size}, {reps} reps, median]\n"
          f"  wall: direct model.generate {md:.2f}s, curate runner {mr:.2f}s (store included), paired ratio "
          f"{statistics.median(wall):.2f}x (range {wall[0]:.2f}-{wall[-1]:.2f}), runner - direct {mr - md:+.2f}s\n"
          f"  cpu:  direct model.generate {cd:.2f}s, curate runner {cr:.2f}s (store included), paired ratio "
          f"{statistics.median(cpu):.2f}x (range {cpu[0]:.2f}-{cpu[-1]:.2f}), runner - direct {cr - cd:+.2f}s\n"
          f"  the runner around an instant backend (its fixed store work): wall {fw:.2f}s, cpu {fc:.2f}s; one run: "
          + ", ".join(f"{v} {k}" for k, v in counts.items()), flush=True)
    return {"size": f"{prompts}x{max_tokens}", "tokens": prompts * max_tokens, "wall": (md, mr), "cpu": (cd, cr),
            "fixed": (fw, fc), "ratio": (statistics.median(wall), statistics.median(cpu))}


def summary(rows: list[dict]) -> None:
    """The sizes side by side. The extra seconds split into the store's fixed work (the instant-backend run)
    and the rest per 1,000 generated tokens: a fixed cost shows as a ratio that rises toward 1 with size while
    the per-token rest stays flat; a per-token cost shows as a ratio that does not move."""
    print("\nside by side (target >= 0.95x; ratios are medians of the paired reps)")
    print(f"  {'size':>10}  {'ratio wall':>10}  {'ratio cpu':>9}  {'extra wall':>10}  {'extra cpu':>9}  "
          f"{'fixed cpu':>9}  {'rest cpu / 1k tok':>17}")
    for r in rows:
        (md, mr), (cd, cr), (_, fc), (rw, rc) = r["wall"], r["cpu"], r["fixed"], r["ratio"]
        rest = (cr - cd - fc) / r["tokens"] * 1000
        print(f"  {r['size']:>10}  {rw:>9.2f}x  {rc:>8.2f}x  {mr - md:>+9.2f}s  {cr - cd:>+8.2f}s  "
              f"{fc:>8.2f}s  {rest:>+16.4f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64x128,256x512", help="PROMPTSxTOKENS,... (each measured side by side)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)  # one thread: steadier timings on a shared machine
    tmp = Path(tempfile.mkdtemp())
    model_dir = str(build_tiny_model(tmp / "tiny"))
    rows = []
    for size in args.sizes.split(","):
        prompts, tokens = (int(x) for x in size.lower().split("x"))
        rows.append(measure(model_dir, prompts, tokens, args.batch_size, args.reps))
    summary(rows)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
