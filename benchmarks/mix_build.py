"""mix_build: build a one-correct-trace-per-problem mixture with `curate mix` vs a pure `datasets` pipeline.

Both sides do the same job on the same data: keep train-split traces verified correct and not
truncated, pick one per problem with a per-problem seeded choice, take ROWS problems in a seeded
order, write conversational `messages` with `save_to_disk` plus Parquet.
- curate: DuckDB filters and chooses over the store's views; only the chosen rows' text is read.
- peer:   `Dataset.from_parquet` of the store's traces exported to one Parquet file (the export is
          setup, not timed), `.filter`, group indices per problem in Python, `.select`, `.map`, save.
Each side runs in its own subprocess so its peak RSS (VmHWM) is its own; repetitions alternate
sides; the median time and peak memory of each are printed with their ratio.
A third line times curate with its defaults on (exact + near-duplicate dedup, 13-gram
decontamination of prompts and traces against the store's eval split), which the peer does not do.

    python benchmarks/mix_build.py              # 100,000 samples -> 4,000 rows (a few minutes here)
    python benchmarks/mix_build.py --full       # 1,000,000 samples -> 20,000 rows (the issue's size)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PER_PROBLEM = 16
TEMPLATE = "{question}\nPlease reason step by step, and put your final answer within \\boxed{}."
WORDS = ("consider the sum then wait let me check the factor again so the remainder is small and we "
         "verify each case carefully before moving on to the next step of the argument").split()


def _trace(i: int, status: str) -> tuple[str, str]:
    """Synthetic trace text (a think block, a summary, a boxed answer) and its finish reason."""
    n = 60 + (i * 7919) % 240  # 60-300 words: lengths vary so buckets and sizes are realistic-ish
    body = " ".join(WORDS[(i + k * 3) % len(WORDS)] for k in range(n))
    if status == "truncated":
        return "<think>\n" + body, "length"
    ans = (i * 31) % 1000 if status == "correct" else (i * 31 + 1) % 1000
    return f"<think>\n{body}\n</think>\n\nSo the answer is \\boxed{{{ans}}}.", "stop"


def build_store(path: Path, samples: int) -> None:
    """Setup (not timed): problems, samples (as Arrow tables, in chunks) and verdicts through TraceStore."""
    import pyarrow as pa

    from curate.records import Verdict
    from curate.store import TraceStore
    from curate.store.shards import SHARD_SCHEMA
    from curate.store.store import PROBLEM_SCHEMA

    store = TraceStore(path)
    n_problems = samples // PER_PROBLEM
    pids = [hashlib.md5(f"p{j}".encode()).hexdigest() for j in range(n_problems)]
    probs = {"id": pids, "source": ["bench-math"] * n_problems, "domain": ["math"] * n_problems,
             "prompt": [f"Problem {j}: find the value of {j} times {j % 97 + 3} plus the number of its divisors." for j in range(n_problems)],
             "reference": [json.dumps(str(j)) for j in range(n_problems)], "metadata": ["{}"] * n_problems,
             "split": ["train"] * n_problems}
    store.add_problem_table(pa.table(probs, schema=PROBLEM_SCHEMA))
    evals = [f"Evaluation question {k}: how many lattice points lie strictly inside the circle of radius {k + 5} centred at the origin?" for k in range(500)]
    store.add_problem_table(pa.table({"id": [hashlib.md5(e.encode()).hexdigest() for e in evals], "source": ["math500"] * 500,
                                      "domain": ["math"] * 500, "prompt": evals, "reference": ['"1"'] * 500,
                                      "metadata": ["{}"] * 500, "split": ["eval"] * 500}, schema=PROBLEM_SCHEMA))
    chunk = 100_000
    for start in range(0, samples, chunk):
        idx = range(start, min(samples, start + chunk))
        status = ["truncated" if i % 11 == 0 else ("incorrect" if i % 3 == 0 else "correct") for i in idx]
        texts, finish = zip(*(_trace(i, s) for i, s in zip(idx, status)))
        ids = [hashlib.md5(f"s{i}".encode()).hexdigest() for i in idx]
        cols = {"id": ids, "problem_id": [pids[(i // PER_PROBLEM) % n_problems] for i in idx], "backend": ["synthetic"] * len(ids),
                "model": ["Qwen/Qwen3-32B"] * len(ids), "revision": [None] * len(ids), "params": ['{"temperature":0.6}'] * len(ids),
                "sample_index": [i % PER_PROBLEM for i in idx], "seed": [i for i in idx], "finish_reason": list(finish),
                "prompt_tokens": [30] * len(ids), "completion_tokens": [len(t) // 4 for t in texts],
                "teacher_logprob": [None] * len(ids), "teacher_entropy": [None] * len(ids), "latency_s": [None] * len(ids),
                "run_id": ["bench"] * len(ids), "text": list(texts)}
        store.add_samples(pa.table(cols, schema=SHARD_SCHEMA))
        verdict_status = ["no_answer" if s == "truncated" else s for s in status]
        store.add_verdicts(Verdict(status=v, verifier="math", version="1", sample_id=sid) for v, sid in zip(verdict_status, ids))
    # the peer's input: what the store holds, as one Parquet file
    t = store.query("""SELECT id, problem_id, prompt, text, status, finish_reason, split, completion_tokens
                       FROM traces ORDER BY id""")
    import pyarrow.parquet as pq

    pq.write_table(t, path / "peer-input.parquet")


def recipe(rows: int, full: bool):
    from curate.mix.recipe import validate_recipe

    return validate_recipe({"name": "bench", "seed": 1, "size": rows, "sources": [{"name": "all", "where": "domain = 'math'"}],
                            "filters": {"no_truncation": True},
                            "dedup": {"exact": full, "near": full}, "decontaminate": {"enabled": full}})


def side_curate(store_path: Path, out: Path, rows: int, full: bool) -> None:
    from curate.mix import mix_recipe
    from curate.store import TraceStore

    [m] = mix_recipe(recipe(rows, full), TraceStore(store_path), out, overwrite=True)
    assert m["rows"] == rows, m["rows"]


def side_peer(store_path: Path, out: Path, rows: int) -> None:
    import datasets

    datasets.disable_progress_bars()
    ds = datasets.Dataset.from_parquet(str(store_path / "peer-input.parquet"))
    ds = ds.filter(lambda st, fr, sp_: [s == "correct" and f != "length" and sp == "train"
                                        for s, f, sp in zip(st, fr, sp_)], input_columns=["status", "finish_reason", "split"],
                   batched=True)
    # two plain lists (datasets 4+ returns a lazy Column whose per-item indexing is slow)
    cols = ds.select_columns(["id", "problem_id"]).to_dict()
    ids = cols["id"]
    groups: dict[str, list[int]] = {}
    for i, pid in enumerate(cols["problem_id"]):
        groups.setdefault(pid, []).append(i)
    pick = {}
    for pid, members in groups.items():  # the same per-problem hash choice curate makes
        pick[pid] = min(members, key=lambda i: hashlib.md5(f"1:{pid}:{ids[i]}".encode()).hexdigest())
    order = sorted(pick, key=lambda pid: hashlib.md5(f"1:problem:{pid}".encode()).hexdigest())[:rows]
    sel = ds.select([pick[p] for p in order])
    sel = sel.map(lambda r: {"messages": [{"role": "user", "content": TEMPLATE.replace("{question}", r["prompt"])},
                                          {"role": "assistant", "content": r["text"]}]},
                  remove_columns=["prompt", "text", "finish_reason", "split"])
    if out.exists():
        shutil.rmtree(out)
    sel.save_to_disk(str(out / "dataset"))
    (out / "data").mkdir(parents=True)
    sel.to_parquet(str(out / "data" / "train.parquet"))
    assert len(sel) == rows


def child(args) -> None:
    t0 = time.perf_counter()
    if args.side == "peer":
        os.environ["HF_DATASETS_CACHE"] = str(Path(args.out) / "hf-cache")
        side_peer(Path(args.store), Path(args.out), args.rows)
    else:
        side_curate(Path(args.store), Path(args.out), args.rows, args.side == "curate-full")
    dt = time.perf_counter() - t0
    print(json.dumps({"seconds": dt, "peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ru_maxrss: Linux carries that across fork+exec,
    so a child would report its parent's peak when the parent was bigger."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_side(side: str, store: Path, out: Path, rows: int) -> dict:
    if out.exists():
        shutil.rmtree(out)
    env = {**os.environ, "HF_DATASETS_CACHE": str(out) + "-hf"}
    p = subprocess.run([sys.executable, __file__, "--side", side, "--store", str(store), "--out", str(out), "--rows", str(rows)],
                       capture_output=True, text=True, env=env)
    shutil.rmtree(str(out) + "-hf", ignore_errors=True)
    if p.returncode != 0:
        raise SystemExit(f"{side} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--rows", type=int, default=4_000)
    ap.add_argument("--full", action="store_true", help="the issue's size: 1,000,000 samples, 20,000 rows")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None, help="keep the store here (reused when it exists)")
    ap.add_argument("--side", choices=["curate", "curate-full", "peer"], help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        return child(args)
    if args.full:
        args.samples, args.rows = 1_000_000, 20_000
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mix-bench-"))
    store = work / f"store-{args.samples}"
    if not (store / "peer-input.parquet").exists():
        shutil.rmtree(store, ignore_errors=True)
        t = time.perf_counter()
        build_store(store, args.samples)
        print(f"setup: store of {args.samples:,} samples built in {time.perf_counter() - t:.0f}s", flush=True)
    res: dict[str, list[dict]] = {"curate": [], "peer": [], "curate-full": []}
    for _ in range(args.reps):
        for side in ("curate", "peer", "curate-full"):
            res[side].append(run_side(side, store, work / f"out-{side}", args.rows))
    med = {k: (statistics.median(r["seconds"] for r in v), statistics.median(r["peak_rss_mb"] for r in v)) for k, v in res.items()}
    print(f"mix_build: {args.rows:,} rows from {args.samples:,} samples, median of {args.reps} (each side in its own process)")
    for side, label in (("curate", "curate mix"), ("peer", "datasets pipeline"), ("curate-full", "curate mix + dedup + decontam")):
        print(f"  {label:32s} {med[side][0]:7.2f} s   peak RSS {med[side][1]:7.0f} MB")
    print(f"  speed-up (peer / curate): {med['peer'][0] / med['curate'][0]:.2f}x   "
          f"memory (curate / peer): {med['curate'][1] / med['peer'][1]:.2f}")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
