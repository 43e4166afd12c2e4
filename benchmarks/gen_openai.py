"""Benchmark: the openai backend vs a plain asyncio loop with the official `openai` client, both at
concurrency 64 against the same local OpenAI-compatible server (a separate process), side by side.

Prints requests/s for each (median of --reps), the ratio (target >= 0.9x), and lost requests with
faults injected (--fault-rate of 429/500/503/malformed answers; target: zero lost for ours).

Run: python benchmarks/gen_openai.py [--requests 2000] [--reps 3] [--fault-rate 0.05] [--latency 0.02]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curate.generate.base import Request, SamplingParams  # noqa: E402
from curate.generate.openai_backend import OpenAIBackend, OpenAIConfig  # noqa: E402
from curate.generate.prompting import build_messages  # noqa: E402
from curate.records import Problem  # noqa: E402


def start_server(port: int, fault_rate: float, latency: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "curate.generate.testserver", "--port", str(port),
                             "--fault-rate", str(fault_rate), "--latency", str(latency)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if "listening" not in line:
        raise RuntimeError(f"server did not start: {line!r}")
    return proc


def make_requests(n: int) -> list[Request]:
    out = []
    for i in range(n):
        p = Problem(source="bench", domain="math", prompt=f"What is {i} + {i}?", reference=str(2 * i))
        out.append(Request(id=f"{i:08d}", problem=p, messages=build_messages(p), sample_index=0, seed=0))
    return out


def run_ours(url: str, reqs: list[Request], concurrency: int) -> tuple[float, int]:
    b = OpenAIBackend("test-model", OpenAIConfig(base_url=url, concurrency=concurrency, backoff_s=0.05,
                                                 backoff_max_s=1.0, max_retries=10, timeout_s=60),
                      SamplingParams(max_tokens=256))
    t0 = time.perf_counter()
    got = {c.request_id for c in b.generate(reqs)}
    return time.perf_counter() - t0, len(reqs) - len(got)


def run_official(url: str, reqs: list[Request], concurrency: int) -> tuple[float, int]:
    from openai import AsyncOpenAI

    async def main() -> int:
        client = AsyncOpenAI(base_url=url, api_key="none", max_retries=10, timeout=60)
        sem = asyncio.Semaphore(concurrency)

        async def one(r: Request):
            async with sem:
                return await client.chat.completions.create(
                    model="test-model", messages=list(r.messages), max_tokens=256, temperature=0.6, top_p=0.95,
                    seed=r.per_sample_seed, extra_body={"top_k": 20, "min_p": 0.0})

        res = await asyncio.gather(*(one(r) for r in reqs), return_exceptions=True)
        await client.close()
        ok = 0
        for x in res:  # a malformed body can come back as an object without choices instead of an error
            if not isinstance(x, BaseException) and getattr(x, "choices", None) and x.choices[0].message.content:
                ok += 1
        return ok

    t0 = time.perf_counter()
    ok = asyncio.run(main())
    return time.perf_counter() - t0, len(reqs) - ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--fault-rate", type=float, default=0.05)
    ap.add_argument("--latency", type=float, default=0.02, help="server-side seconds per answer (a model's time)")
    ap.add_argument("--port", type=int, default=18931)
    args = ap.parse_args()
    reqs = make_requests(args.requests)
    for fault_rate in (0.0, args.fault_rate):
        server = start_server(args.port, fault_rate, args.latency)
        url = f"http://127.0.0.1:{args.port}/v1"
        try:
            ours, theirs, lost_ours, lost_theirs = [], [], [], []
            for _ in range(args.reps):  # alternate so drift hits both alike
                t, lost = run_ours(url, reqs, args.concurrency)
                ours.append(len(reqs) / t)
                lost_ours.append(lost)
                t, lost = run_official(url, reqs, args.concurrency)
                theirs.append(len(reqs) / t)
                lost_theirs.append(lost)
        finally:
            server.terminate()
            server.wait()
        mo, mt = statistics.median(ours), statistics.median(theirs)
        print(f"faults {fault_rate:.0%}: curate openai backend {mo:,.0f} req/s (lost {max(lost_ours)}), "
              f"official openai client loop {mt:,.0f} req/s (lost {max(lost_theirs)}), ratio {mo / mt:.2f}x "
              f"[{args.requests} requests, concurrency {args.concurrency}, {args.reps} reps, median]")


if __name__ == "__main__":
    main()
