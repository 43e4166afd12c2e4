"""store_open: what the store-open checks cost a predicate query, this checkout vs another revision.

The checks (curate/store/connection.py `check_catalog`, shards.py `shard_path` and `looks_complete`) run
when a connection opens. Each rep starts a fresh process per side (so a process's first open, which runs
the catalog check, is counted) and times, in that process, the first and then --warm more calls of
`TraceStore.problems(PREDICATE)` on one store built once with --n samples. The sides alternate rep by
rep; medians and the ratio are printed.

    python benchmarks/store_open.py --base e9ec72d            # base = a git revision of this repository
    python benchmarks/store_open.py --base e9ec72d --n 200000 --reps 15
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREDICATE = "split = 'train' AND id IN (SELECT problem_id FROM traces WHERE text_chars > 10)"

CHILD = r"""
import json, sys, time
from curate.store import TraceStore
st = TraceStore(sys.argv[1]); warm = int(sys.argv[2]); pred = sys.argv[3]
t = time.perf_counter(); n = len(st.problems(pred)); first = time.perf_counter() - t
times = []
for _ in range(warm):
    t = time.perf_counter(); st.problems(pred); times.append(time.perf_counter() - t)
print(json.dumps({"first": first, "warm": sorted(times)[len(times) // 2] if times else None, "rows": n}))
"""


def build(store: Path, n: int) -> None:
    from curate.records import Problem, Sample
    from curate.store import TraceStore

    st = TraceStore(store)
    probs = [Problem(source="bench", domain="math", prompt=f"question {i}", reference=str(i)) for i in range(max(1, n // 4))]
    st.add_problems(probs)
    st.add_samples([Sample(problem_id=probs[i % len(probs)].id, text=f"<think>trace {i} " + "x" * 64 + "</think>",
                           backend="synthetic", model="m", params={}, sample_index=i // len(probs), finish_reason="stop")
                    for i in range(n)])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="git revision to compare against (checked out with git archive)")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--warm", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", a.base], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        sys.path.insert(0, str(ROOT))
        store = Path(tmp) / "store"
        build(store, a.n)
        sides = {"base": base, "this": ROOT}
        res: dict[str, list[dict]] = {k: [] for k in sides}
        for _ in range(a.reps):
            for name, path in sides.items():
                out = subprocess.run([sys.executable, "-c", CHILD, str(store), str(a.warm), PREDICATE], check=True,
                                     capture_output=True, text=True, cwd=tmp, env={"PYTHONPATH": str(path), "PATH": "/usr/bin:/bin"})
                res[name].append(json.loads(out.stdout))
        assert len({r["rows"] for v in res.values() for r in v}) == 1, "the two sides answer differently"
        print(f"{a.n} samples, predicate over problems with a traces subquery; {a.reps} processes per side, medians")
        for key in ("first", "warm"):
            b = statistics.median(r[key] for r in res["base"])
            t = statistics.median(r[key] for r in res["this"])
            print(f"  {key:5s} call: base {b * 1000:7.1f} ms   this {t * 1000:7.1f} ms   ratio {t / b:.2f}   (+{(t - b) * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
