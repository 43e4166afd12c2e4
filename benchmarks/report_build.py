"""report_build: `curate report` on a store with 10 conditions x 20 checkpoints (+ base) x 6 benchmarks.

Each (condition, step, benchmark) has a score row with a CI and 100 per-problem scores plus mean_tokens and
truncation_rate rows. Timed: the whole command as a user runs it (`python -m curate report`, a fresh process:
imports, store read, 8 figures as PNG + SVG, HTML, Markdown, JSON), and beside it the time pandas takes just
to read the same rows from a Parquet export. Target: the report builds in under 10 s.

    python benchmarks/report_build.py [--reps 3]
"""
from __future__ import annotations

import argparse
import math
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

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from curate.store import TraceStore  # noqa: E402
from curate.store.evals import EVAL_SCHEMA, read_evals, write_evals  # noqa: E402

BENCHMARKS = ("math500", "aime24", "gpqa_diamond", "mmlu_pro", "livecodebench", "countdown")
STEPS = [0] + [10 * i for i in range(1, 21)]
PROBLEMS = 100


def rows(conditions: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for c in range(conditions):
        for b, bench in enumerate(BENCHMARKS):
            base = 30 + 8 * b
            for step in STEPS:
                dip = -12 * math.exp(-((step - 30) / 20) ** 2) if step else 0.0
                p = min(0.95, max(0.05, (base + dip + 0.08 * step * (1 + c / 10) + rng.normal(0, 2)) / 100))
                solved = {f"p{i:03d}": float(rng.random() < p) for i in range(PROBLEMS)}
                v = 100 * sum(solved.values()) / PROBLEMS
                hw = 196 * math.sqrt(max(v / 100 * (1 - v / 100), 1e-4) / PROBLEMS)
                key = dict(run=f"cond-{c:02d}", checkpoint=f"cond-{c:02d}/step-{step:06d}", step=step, suite="paper",
                           benchmark=bench, settings_hash="bench", provenance="curate", n_problems=PROBLEMS,
                           n_samples=3 * PROBLEMS, complete=True)
                out.append({**key, "metric": "avg@3", "kind": "score", "value": v, "ci_low": v - hw, "ci_high": v + hw,
                            "details": {"per_problem": solved}})
                tokens = 2000 + 6000 * math.exp(-((step - 30) / 25) ** 2) * (step > 0) + rng.normal(0, 100)
                out.append({**key, "metric": "mean_tokens", "kind": "behaviour", "value": tokens})
                out.append({**key, "metric": "truncation_rate", "kind": "behaviour", "value": tokens / 400})
    return out


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conditions", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-report-"))
    try:
        store = TraceStore(tmp / "store")
        data = rows(args.conditions)
        write_evals(store, data)
        export = tmp / "evals.parquet"
        pq.write_table(pa.Table.from_pylist(read_evals(store), schema=pa.schema(list(EVAL_SCHEMA))), export)
        n_rows = len(data)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "curate", "report", "--store", str(store.path), "--out", str(tmp / "out")]
        report_times, report_cpu, pandas_times = [], [], []
        for _ in range(args.reps):
            t, before = time.perf_counter(), _child_cpu()
            subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
            report_times.append(time.perf_counter() - t)
            report_cpu.append(_child_cpu() - before)
            t = time.perf_counter()
            df = pd.read_parquet(export)
            pandas_times.append(time.perf_counter() - t)
        assert len(df) == n_rows
        figures = len(list((tmp / "out" / "figures").glob("*.png")))
        r, p = statistics.median(report_times), statistics.median(pandas_times)
        cpu = statistics.median(report_cpu)
        print(f"store: {args.conditions} conditions x {len(STEPS) - 1} checkpoints + base x {len(BENCHMARKS)} benchmarks "
              f"= {n_rows} eval rows ({PROBLEMS} per-problem scores per score row)")
        print(f"curate report (fresh process, {figures} figures as PNG+SVG, HTML, MD, JSON): median {r:.2f} s "
              f"over {args.reps} runs {[round(x, 2) for x in report_times]}; CPU (user+sys) {cpu:.2f} s")
        print(f"pandas read_parquet of the same rows:                          median {p:.3f} s")
        print(f"report / pandas read: {r / p:.0f}x; target: report < 10 s -> {'PASS' if r < 10 else 'FAIL'} "
              f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: on a busy machine the CPU time is the "
              f"figure that does not depend on other jobs)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
