"""Subprocess roles for the store's concurrency and crash tests (run as `python store_workers.py ROLE ...`)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate.records import Problem, Sample  # noqa: E402
from curate.store import TraceStore, commit  # noqa: E402


def samples_for(worker: int, shard: int, rows: int) -> list[Sample]:
    pid = Problem(source="conc", domain="game", prompt=f"w{worker}", reference=None).id
    return [
        Sample(problem_id=pid, text=f"<think>worker {worker} shard {shard} row {i} " + "x" * 200 + "</think>\\boxed{1}",
               backend="synthetic", model="m", sample_index=shard * rows + i, finish_reason="stop")
        for i in range(rows)
    ]


def produce(store: str, worker: int, shards: int, rows: int) -> None:
    st = TraceStore(store)
    for k in range(shards):
        st.write_shard(samples_for(worker, k, rows))
        time.sleep(0.01)


def commit_until(store: str, stop_file: str) -> None:
    st = TraceStore(store)
    while True:
        done = Path(stop_file).exists()
        st.commit_pending()
        if done:
            st.commit_pending()
            return
        time.sleep(0.02)


def commit_and_ack(store: str) -> None:
    """Commit pending shards one by one, printing each shard name once its transaction has committed."""
    st = TraceStore(store)
    with st._write() as con:
        print("ready", flush=True)
        for path in st.pending_shards(con):
            commit.commit_shards(st, con, [path])
            print(path.stem, flush=True)


if __name__ == "__main__":
    role, args = sys.argv[1], sys.argv[2:]
    if role == "produce":
        produce(args[0], int(args[1]), int(args[2]), int(args[3]))
    elif role == "commit":
        commit_until(args[0], args[1])
    elif role == "commit_ack":
        commit_and_ack(args[0])
