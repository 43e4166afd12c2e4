"""Labeling on Ray Data, behind `curate verify --executor ray` (and `curate eval --executor ray`).

The driver plans the unlabeled samples per verifier (`TraceStore.unlabeled_plan`: sample ids, problems and row
positions in the shard files; no text) and cuts the plan into pieces of at most `self_test_every` x `batch_size`
traces (a large shard becomes several pieces, small shards share one). The pieces, ids and positions with their
problems, are the dataset (`from_items`); `map_batches` runs an actor class over them (`concurrency` actors of
`num_cpus` = verifier processes each). A verifier whose class sets `max_workers` (the reward model: 1, one copy
of the model per run) has its pieces judged by their own pool of at most that many processes in all; the pools
run one after another (both executors group the work through `curate.label.by_workers`; locally every pool
starts and self-tests before any labels). Each actor reads its pieces' text
from the shared store directory itself (`TraceStore.shard_texts`; two calls at a time, so it reads the next piece
while its pool judges one), holds one warm `verifiers.pool.VerifierPool` (a process per CPU, the local executor's hard per-response kill), and runs
every verifier's self-test before it judges anything and again after every piece. A piece's verdicts leave the
actor only with that passing self-test, so the driver (the one writer, `store.add_verdicts` in chunks of
`batch_size`) writes nothing that a self-test on the actor that judged it has not confirmed afterwards. A failed self-test stops the command; the failed piece is discarded. A shard
file that is missing or damaged is skipped with the local labeler's warning (`store.warnings`). An actor that Ray
has rebuilt more than $CURATE_RAY_MAX_REBUILDS times stops the command (`ray_common.rebuilt_too_often`).

Test: `python -m pytest -q tests/test_ray_executor.py`.
"""
from __future__ import annotations

import math
import pickle
import threading
import time
from pathlib import Path
from typing import Any, Callable

from curate.errors import CurateError
from curate.scale.ray_common import (die, kill_once, max_rebuilds, one_row, probe_file, quiet_data, read_faults,
                                     rebuild_error, rebuilt_too_often, results, session, visible_error)

__all__ = ["label_store"]


class _LabelActor:
    """A Ray Data map actor: one warm verifier pool; per call it reads a piece's traces from the store, judges them
    and self-tests after them."""

    def __init__(self, preload: list[str], grace_s: float, faults: dict, processes: int, names: list[str],
                 options: dict[str, dict], visible: tuple, rebuilds: int) -> None:
        from verifiers.pool import PoolError, VerifierPool

        self.faults, self.options, self.failed, self.lock = faults, options, None, threading.Lock()
        self.tests: list[tuple[str, int]] = []  # (verifier, probes) of self-tests not yet reported
        # before any verifier starts
        self.error = visible_error(visible, False, faults) or rebuilt_too_often(visible, rebuilds, "labeling")
        if self.error:
            return
        self.pool = VerifierPool(workers=processes, grace_s=grace_s, preload=preload)
        try:
            self.pool.start()
        except PoolError as e:
            self.error = ("CurateError", f"verifier workers cannot start: {e}", None)
            return
        for name in names:  # every verifier proves itself in this actor before it judges anything
            probes, self.failed = self._self_test(name)
            if self.failed:
                return
            self.tests.append((name, probes))

    def _self_test(self, name: str) -> tuple[int, str | None]:
        from verifiers.pool import SelfTestFailed

        try:
            return self.pool.self_test(name, self.options[name]), None
        except SelfTestFailed as e:
            return 0, str(e)

    def __call__(self, batch: Any) -> dict:
        from curate.store import TraceStore

        piece = batch.column("piece")[0].as_py()
        out = {"piece": piece, "error": self.error, "failed": self.failed, "verdicts": {}, "kills": 0, "tests": [],
               "missing": []}
        if self.error or self.failed:
            return one_row(out)
        die(self.faults.get("die_label"))
        slices, problems = pickle.loads(batch.column("work")[0].as_py())
        tasks, step = [], {}
        for name, shard, items in slices:  # outside the lock: the next piece is read while this actor judges one
            texts = TraceStore.shard_texts(Path(shard), [row for _, _, row in items])
            if texts is None:  # skipped, as the local labeler skips it; the driver warns
                out["missing"].append((name, shard, len(items)))
                continue
            for (sid, pid, _), text in zip(items, texts):
                tasks.append((sid, name, self.options[name], problems[pid], text))
                step[sid] = name
        with self.lock:  # one piece at a time judges and self-tests in the pool
            out["tests"], self.tests = self.tests, []
            if self.failed:
                out["failed"] = self.failed
                return one_row(out)
            kills = self.pool.kills
            verdicts: dict[str, list] = {}
            for k, (sid, verdict) in enumerate(self.pool.run(tasks), 1):
                verdicts.setdefault(step[sid], []).append(verdict.with_sample(sid))
                if k == (len(tasks) + 1) // 2:
                    kill_once(self.faults.get("kill_label_once"))
            out["kills"] = self.pool.kills - kills
            for name in verdicts:  # a self-test after them, on this actor, confirms this piece's verdicts
                probes, failed = self._self_test(name)
                if failed:
                    out["failed"] = self.failed = failed
                    return one_row(out)
                out["tests"].append((name, probes))
        out["verdicts"] = verdicts
        return one_row(out)


def label_store(store: Any, verifier: str | None = None, workers: int = 2, relabel: bool = False,
                where: str | None = None, batch_size: int = 500, options: dict | None = None,
                progress: Callable[[int, str], None] | None = None, grace_s: float = 1.0, self_test_every: int = 1,
                address: str | None = None, planned: Callable[[int, str], None] | None = None,
                verifier_options: dict[str, dict] | None = None) -> Any:
    """`curate.label.label_store` on Ray Data (`workers` verifier processes in all, in actors of one node's
    worth each); returns a LabelReport with the same verdicts. Raises CurateError when a verifier fails its
    self-test."""
    from curate import label as L

    L.check_args(store, workers, batch_size, self_test_every)
    t0 = time.monotonic()
    report = L.LabelReport()
    steps, versions, preload = L.prepare(store, verifier, where, options, report, verifier_options)
    per_name = {name: L.options_for(name, options, verifier_options) for name, _ in steps}
    work = []  # (verifier, its plan per shard, its problems) for the verifiers with something to judge
    for name, pred in steps:
        plan, problems = store.unlabeled_plan(name, versions[name], where=pred, relabel=relabel)
        n = sum(len(items) for _, items in plan)
        if planned:
            planned(n, name)
        if n:
            work.append((name, plan, problems))
    if not work:  # nothing to judge: no Ray at all
        report.seconds = time.monotonic() - t0
        return report
    faults, rebuilds = read_faults(), max_rebuilds()
    root = store.path.resolve()
    with session(address) as ray, probe_file(root) as visible:
        quiet_data(ray)
        writer = _VerdictWriter(store, relabel, batch_size, report, progress)
        skipped: dict[tuple[str, str], int] = {}
        paths: dict[tuple[str, str], tuple] = {}

        def judge(group: list, processes: int) -> None:  # one actor pool of `processes` verifier processes in all
            n, per = _actor_shape(ray, processes)
            total = sum(len(items) for _, plan, _ in group for _, items in plan)
            chunk = max(1, min(self_test_every * batch_size, math.ceil(total / (2 * n))))
            pieces, where = _pieces(group, chunk, store.path, root)
            offset = len(paths)  # shards keep their plan order across groups
            paths.update((key, (offset + pos, path)) for key, (pos, path) in where.items())
            # from_items builds its blocks here (from_arrow starts a Ray task per table to read its metadata)
            ds = ray.data.from_items([{"piece": i, "work": w} for i, w in enumerate(pieces)],
                                     override_num_blocks=len(pieces))
            ds = ds.map_batches(_LabelActor, batch_size=1, batch_format="pyarrow", num_cpus=per,
                                compute=ray.data.ActorPoolStrategy(size=n, max_tasks_in_flight_per_actor=2,
                                                                   max_concurrent_calls_per_actor=2,
                                                                   enable_true_multi_threading=True),
                                fn_constructor_args=(preload, grace_s, faults, per, [name for name, _, _ in group],
                                                     per_name, visible, rebuilds))
            for res in results(ray, ds):
                writer.take(res)
                for name, shard, count in res["missing"]:
                    skipped[(name, shard)] = skipped.get((name, shard), 0) + count

        try:
            for processes, group in L.by_workers(work, workers):
                judge(group, processes)
            writer.flush()
        finally:  # the local labeler's warning, once per verifier and shard, in plan order
            for key in sorted(skipped, key=lambda key: paths[key][0]):
                store.warnings.append(f"shard {paths[key][1]} is missing or damaged; {skipped[key]} samples skipped")
    report.seconds = time.monotonic() - t0
    return report


def _pieces(work: list, chunk: int, base: Path, root: Path) -> tuple[list[bytes], dict[tuple[str, str], tuple]]:
    """The plan cut into pieces of at most `chunk` samples, each pickled as ([(verifier, shard file, [(sample id,
    problem id, row)])], {problem id: Problem}); and {(verifier, shard file): (plan position, path as planned)}.
    Shard files are named by the resolved store path (the one the workers' probe checked)."""
    pieces: list[bytes] = []
    slices: list[tuple] = []
    problems: dict[str, Any] = {}
    size = 0
    paths: dict[tuple[str, str], tuple] = {}

    def close() -> None:
        nonlocal slices, problems, size
        if slices:
            pieces.append(pickle.dumps((slices, problems), protocol=pickle.HIGHEST_PROTOCOL))
        slices, problems, size = [], {}, 0

    for name, plan, probs in work:
        for path, items in plan:
            shard = str(root / Path(path).relative_to(base))
            paths[(name, shard)] = (len(paths), path)
            start = 0
            while start < len(items):  # a shard larger than what is left of this piece continues in the next
                part = items[start:start + chunk - size]
                start += len(part)
                slices.append((name, shard, part))
                problems.update((pid, probs[pid]) for _, pid, _ in part)
                size += len(part)
                if size >= chunk:
                    close()
    close()
    return pieces, paths


def _actor_shape(ray: Any, workers: int) -> tuple[int, int]:
    """(actors, verifier processes per actor): one actor per node's worth of CPUs (so a node runs one warm
    forkserver and a batch crosses one process boundary, as in the local pool), at least `workers` in all."""
    node_cpus = max((int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")), default=1)
    n = math.ceil(workers / max(1, min(workers, node_cpus)))
    return n, math.ceil(workers / n)


class _VerdictWriter:
    """The driver's single writer: confirmed verdicts are written `batch_size` at a time, one transaction each."""

    def __init__(self, store: Any, relabel: bool, batch_size: int, report: Any, progress: Callable | None) -> None:
        self.store, self.relabel, self.batch_size, self.report, self.progress = store, relabel, batch_size, report, progress
        self.pending: list = []

    def take(self, res: dict) -> None:
        from curate.label import SELF_TEST_HINT, count_self_test

        if res["error"] or res["failed"]:  # this batch is discarded; what earlier self-tests confirmed is written
            self.flush()
            raise rebuild_error(res["error"]) if res["error"] else CurateError(res["failed"], hint=SELF_TEST_HINT)
        for name, probes in res["tests"]:
            count_self_test(self.report, name, probes)
        self.report.killed += res["kills"]
        for name, verdicts in res["verdicts"].items():
            for v in verdicts:
                self.report.count(v)
            self.pending += verdicts
            if self.progress:
                self.progress(len(verdicts), name)
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.report.written += self.store.add_verdicts(self.pending, replace=self.relabel)
            self.pending = []
