"""view_latency: `curate view` pages on a large store vs the store's own SQL for the same data.

The store holds N samples with problems and one verdict each (built like store_query.py), plus an evaluation
that planned 400 problems x 5 checkpoints. Each page is requested through the real Starlette app (routing,
queries on the locked-down connection, Jinja2 rendering) with an in-process client; its peer is the SQL a user
would type into `curate sql` for the same answer (TraceStore.query, connection included), e.g. for a trace
page `SELECT * FROM traces WHERE id = ...`. Pages and peers alternate; medians and the ratio page/peer are
printed. The page's numbers are checked against the peer's (a wrong page fails the run). Target: every page
under 500 ms at 1M traces.

    python benchmarks/view_latency.py --n 1000000 --text-bytes 512 --reps 5
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import fail_check, paired  # noqa: E402
from benchmarks.store_query import build  # noqa: E402
from curate.store import TraceStore  # noqa: E402
from curate.store import view_queries  # noqa: E402
from curate.store.evals import plan_samples  # noqa: E402

TARGET_MS = 500
LIST_COLS = ("id, source, model, split, status, verifier, finish_reason, completion_tokens, thinking_tokens, "
             "repetition_score, truncated, backtrack_count, verify_count, text_chars, sample_index, problem_id, created_at")


def add_evaluation(st: TraceStore, problems: int = 400, steps=(0, 20, 40, 80, 160)) -> None:
    """An evaluation that planned one stored sample per problem and step (existing samples stand in for its answers)."""
    rows = st.query(f"""SELECT id, problem_id, row_number() OVER (PARTITION BY problem_id ORDER BY id) - 1 AS k
        FROM samples WHERE problem_id IN (SELECT id FROM problems ORDER BY id LIMIT {problems})""").to_pylist()
    plan = []
    for r in rows:
        if r["k"] < len(steps):
            step = steps[r["k"]]
            plan.append({"sample_id": r["id"], "problem_id": r["problem_id"], "sample_index": 0, "run": "bench-run",
                         "checkpoint": f"bench-run/step-{step}", "step": step, "suite": "bench", "benchmark": "math500",
                         "settings_hash": "h"})
    plan_samples(st, plan)


def cases(st: TraceStore) -> list[tuple[str, str, list[str], str]]:
    """(name, page URL, peer SQL statements, the number both must show) for each page."""
    sid = st.query("SELECT id FROM samples ORDER BY id LIMIT 1 OFFSET 777").column(0)[0].as_py()
    pid = st.query(f"SELECT problem_id FROM samples WHERE id = '{sid}'").column(0)[0].as_py()
    filt = "status = 'correct' AND thinking_tokens >= 1000"
    pred = "backtrack_count > 2 AND model ILIKE '%qwen%'"
    return [
        ("overview", "/", ["SELECT source, model, split, status, verifier, count(*) AS n FROM traces GROUP BY ALL"], "total"),
        ("trace list", "/traces",
         [f"SELECT {LIST_COLS} FROM traces ORDER BY created_at DESC LIMIT 50", "SELECT count(*) FROM traces"], "total"),
        ("filtered + sorted, page 3", "/traces?status=correct&min_thinking_tokens=1000&sort=thinking_tokens&page=3",
         [f"SELECT {LIST_COLS} FROM traces WHERE {filt} ORDER BY thinking_tokens DESC LIMIT 50 OFFSET 100",
          f"SELECT count(*) FROM traces WHERE {filt}"], "filtered"),
        ("predicate box", "/traces?where=" + pred.replace(" ", "+").replace("%", "%25").replace("'", "%27"),
         [f"SELECT {LIST_COLS} FROM traces WHERE {pred} ORDER BY created_at DESC LIMIT 50",
          f"SELECT count(*) FROM traces WHERE {pred}"], "predicate"),
        ("trace (with neighbours)", f"/trace/{sid}?pos=100",
         [f"SELECT * FROM traces WHERE id = '{sid}'", f"SELECT * FROM verdicts WHERE sample_id = '{sid}'"], ""),
        ("problem (all its traces)", f"/problem/{pid}",
         [f"SELECT * FROM problems WHERE id = '{pid}'", f"SELECT * FROM traces WHERE problem_id = '{pid}'"], ""),
        ("eval explorer", "/evals/grid?run=bench-run&benchmark=math500",
         ["""SELECT e.problem_id, e.step, v.status, v.answer FROM eval_samples e JOIN verdicts v ON v.sample_id = e.sample_id
             WHERE e.run = 'bench-run' AND e.benchmark = 'math500' ORDER BY e.problem_id, e.step LIMIT 250"""], ""),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--text-bytes", type=int, default=512)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    from starlette.testclient import TestClient

    from curate.view.app import create_app

    base = Path(tempfile.mkdtemp(prefix="bench-view-"))
    try:
        st = TraceStore(base / "store")
        t0 = time.perf_counter()
        build(st, args.n, args.text_bytes)
        add_evaluation(st)
        print(f"built {args.n:,} samples in {time.perf_counter() - t0:.0f} s")
        numbers = {"total": "SELECT count(*) FROM traces",
                   "filtered": "SELECT count(*) FROM traces WHERE status = 'correct' AND thinking_tokens >= 1000",
                   "predicate": "SELECT count(*) FROM traces WHERE backtrack_count > 2 AND model ILIKE '%qwen%'"}
        with TestClient(create_app(st)) as client:
            rows = []
            for name, url, peer_sql, check in cases(st):
                r = client.get(url)
                if r.status_code != 200:
                    fail_check(f"{name}: {url} answered {r.status_code}", [r.text[-400:]])
                if check:
                    want = f"{st.query(numbers[check]).column(0)[0].as_py():,}"
                    if not re.search(rf"<(strong|h1)>{re.escape(want)}</\1>|<h1>{re.escape(want)} traces</h1>", r.text):
                        fail_check(f"{name}: the page does not show {want} (the store's count)", [url])
                page, peer = paired(lambda: client.get(url), lambda: [st.query(q) for q in peer_sql], args.reps)
                rows.append((name, page, peer))
                if name == "overview":  # its answer is kept until the store changes: time the first load too
                    cold, _ = paired(lambda: (view_queries.clear_cache(), client.get(url)), lambda: None, args.reps)
                    rows.append(("overview, first load", cold, peer))
        print(f"{args.n:,} traces ({args.text_bytes} B of text each); pages through the app, peers through TraceStore.query")
        print(f"{'page':28} {'page ms':>9} {'SQL ms':>9} {'page/SQL':>9}   target < {TARGET_MS} ms")
        slow = []
        for name, page, peer in rows:
            ok = page * 1000 < TARGET_MS
            slow += [] if ok else [name]
            print(f"{name:28} {page * 1000:9.1f} {peer * 1000:9.1f} {page / peer:9.2f}   {'ok' if ok else 'SLOW'}")
        if slow:
            print(f"over {TARGET_MS} ms: {', '.join(slow)}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
