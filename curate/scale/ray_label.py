"""Labeling on Ray Data, behind `curate verify --executor ray` (and `curate eval --executor ray`).

The driver plans the unlabeled samples per verifier (`TraceStore.unlabeled`, as the local labeler does), reads
their text and cuts it into pieces of at most `self_test_every` x `batch_size` traces, kept at most `AHEAD` pieces
per actor ahead of the results, in Ray's object store. The pipeline is `map_batches` over the piece numbers with
an actor class (`concurrency` actors of `num_cpus` = verifier processes each); a `_Feeder` actor hands piece i
to the actor that judges it. Each actor holds one warm `verifiers.pool.VerifierPool` (a process per CPU, the
local executor's hard per-response kill), runs every verifier's self-test before it judges anything and again
after every piece. A piece's verdicts leave the actor only with that passing self-test, so the driver (the one
writer, `store.add_verdicts` in chunks of `batch_size`) writes nothing that a self-test on the actor that judged
it has not confirmed afterwards. A failed self-test stops the command; the failed piece is discarded.

Test: `python -m pytest -q tests/test_ray_executor.py`.
"""
from __future__ import annotations

import itertools
import math
import pickle
import threading
import time
from typing import Any, Callable, Iterator

from curate.errors import CurateError
from curate.scale.ray_common import (kill_once, one_row, probe_file, quiet_data, read_faults, rebuild_error, results,
                                     session, visible_error)

__all__ = ["label_store"]

AHEAD = 4  # pieces the driver has read ahead per actor: what it holds in Ray's object store at most


class _Feeder:
    """An async actor between the driver and the map actors: the driver puts piece i (a ref to an Arrow table of
    traces) as it reads the store; the actor judging piece i gets it here, waiting until it has been read."""

    def __init__(self) -> None:
        self.refs: dict[int, list] = {}
        self.ready: dict[int, Any] = {}
        self.error: tuple | None = None

    def _event(self, i: int) -> Any:
        import asyncio

        return self.ready.setdefault(i, asyncio.Event())

    async def put(self, i: int, boxed: list) -> None:
        self.refs[i] = boxed  # boxed, so Ray hands the ref on instead of resolving it here
        self._event(i).set()

    async def get(self, i: int) -> tuple[list | None, tuple | None]:
        if self.error is None:
            await self._event(i).wait()
        return self.refs.get(i), self.error

    async def drop(self, i: int) -> None:
        self.refs.pop(i, None)

    async def fail(self, error: tuple) -> None:
        self.error = error
        for event in self.ready.values():
            event.set()


class _LabelActor:
    """A Ray Data map actor: one warm verifier pool, judging a piece of traces per call and self-testing after it."""

    def __init__(self, preload: list[str], grace_s: float, faults: dict, processes: int, names: list[str],
                 options: dict | None, visible: tuple, feeder: Any) -> None:
        from verifiers.pool import PoolError, VerifierPool

        self.faults, self.options, self.feeder, self.failed = faults, options, feeder, None
        self.tests: list[tuple[str, int]] = []  # (verifier, probes) of self-tests not yet reported
        self.error = visible_error(visible, False, faults)  # before any verifier starts
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
            return self.pool.self_test(name, self.options), None
        except SelfTestFailed as e:
            return 0, str(e)

    def __call__(self, batch: Any) -> dict:
        import ray

        piece = batch.column("piece")[0].as_py()
        out = {"piece": piece, "error": self.error, "failed": self.failed, "verdicts": {}, "kills": 0,
               "tests": self.tests}
        self.tests = []
        if self.error or self.failed:
            return one_row(out)
        boxed, out["error"] = ray.get(self.feeder.get.remote(piece))
        if out["error"]:
            return one_row(out)
        table = ray.get(boxed[0])
        names = table.column("verifier").to_pylist()
        sids = table.column("sid").to_pylist()
        step = dict(zip(sids, names))
        tasks = [(sid, name, self.options or {}, pickle.loads(problem), text) for sid, name, problem, text in
                 zip(sids, names, table.column("problem").to_pylist(), table.column("text").to_pylist())]
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
                out["failed"] = failed
                return one_row(out)
            out["tests"].append((name, probes))
        out["verdicts"] = verdicts
        return one_row(out)


def label_store(store: Any, verifier: str | None = None, workers: int = 2, relabel: bool = False,
                where: str | None = None, batch_size: int = 500, options: dict | None = None,
                progress: Callable[[int, str], None] | None = None, grace_s: float = 1.0, self_test_every: int = 1,
                address: str | None = None, planned: Callable[[int, str], None] | None = None) -> Any:
    """`curate.label.label_store` on Ray Data (`workers` verifier processes in all, in actors of one node's
    worth each); returns a LabelReport with the same verdicts. Raises CurateError when a verifier fails its
    self-test."""
    from curate import label as L

    L.check_args(store, workers, batch_size, self_test_every)
    t0 = time.monotonic()
    report = L.LabelReport()
    steps, versions, preload = L.prepare(store, verifier, where, options, report)
    counts: dict[str, int] = {}
    work = []  # (verifier, its batches) for the verifiers with something to judge, every one planned up front
    for name, pred in steps:
        def on_plan(n: int, name: str = name) -> None:
            counts[name] = n
            if planned:
                planned(n, name)

        batches = store.unlabeled(name, versions[name], where=pred, relabel=relabel, batch_size=batch_size,
                                  on_plan=on_plan)
        first = next(batches, None)
        if first is not None:
            work.append((name, itertools.chain([first], batches)))
    if not work:  # nothing to judge: no Ray at all
        report.seconds = time.monotonic() - t0
        return report
    faults = read_faults()
    with session(address) as ray, probe_file(store.path.resolve()) as visible:
        quiet_data(ray)
        n, per = _actor_shape(ray, workers)
        total = sum(counts[name] for name, _ in work)
        chunk = max(1, min(self_test_every * batch_size, math.ceil(total / (2 * n))))
        pieces = math.ceil(total / chunk)
        feeder = ray.remote(num_cpus=0)(_Feeder).remote()  # holds refs only: the text stays where the driver put it
        supply = _Supply(ray, feeder, _rows(work), chunk, pieces, AHEAD * n)
        writer = _VerdictWriter(store, relabel, batch_size, report, progress)
        # from_items builds its blocks here (from_arrow starts a Ray task per table to read its metadata)
        ds = ray.data.from_items([{"piece": i} for i in range(pieces)], override_num_blocks=pieces)
        ds = ds.map_batches(_LabelActor, batch_size=1, batch_format="pyarrow", num_cpus=per,
                            compute=ray.data.ActorPoolStrategy(size=n, max_tasks_in_flight_per_actor=2),
                            fn_constructor_args=(preload, grace_s, faults, per, [name for name, _ in work], options,
                                                 visible, feeder))
        supply.start()
        try:
            for res in results(ray, ds):
                writer.take(res)
                supply.done(res["piece"])
            writer.flush()
        except CurateError:
            if supply.error:  # the driver could not read the store: that is the error to report
                raise supply.error from None
            raise
        finally:
            supply.stop()
            ray.kill(feeder)
    report.seconds = time.monotonic() - t0
    return report


def _rows(work: list) -> Iterator[tuple[str, str, bytes, str]]:
    """(verifier, sample id, pickled problem, text) for every planned sample, verifier after verifier."""
    for name, batches in work:
        for batch in batches:
            problems: dict[str, bytes] = {}
            for problem, sid, text in batch:
                if problem.id not in problems:
                    problems[problem.id] = pickle.dumps(problem)
                yield name, sid, problems[problem.id], text


class _Supply(threading.Thread):
    """The driver's reader: cuts the planned rows into pieces of `chunk` and puts them into the object store and
    the feeder, at most `ahead` pieces before their results are in (so memory stays bounded whatever the size)."""

    def __init__(self, ray: Any, feeder: Any, rows: Iterator[tuple], chunk: int, pieces: int, ahead: int) -> None:
        super().__init__(name="curate-ray-supply", daemon=True)
        self.ray, self.feeder, self.rows, self.chunk, self.pieces = ray, feeder, rows, chunk, pieces
        self.slots = threading.Semaphore(ahead)
        self.stopped = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for i in range(self.pieces):  # fewer rows than planned (a damaged shard) leaves the last pieces empty
                while not self.slots.acquire(timeout=0.2):
                    if self.stopped.is_set():
                        return
                if self.stopped.is_set():
                    return
                part = list(itertools.islice(self.rows, self.chunk))
                ref = self.ray.put(_piece_table(part))
                self.ray.get(self.feeder.put.remote(i, [ref]))
        except BaseException as e:  # handed to the driver's thread, which raises it; the actors are told to stop
            self.error = e
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            self.feeder.fail.remote(("CurateError", f"the driver could not read the store: {first}", None))

    def done(self, piece: int) -> None:
        self.feeder.drop.remote(piece)
        self.slots.release()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)


def _piece_table(part: list[tuple]) -> Any:
    import pyarrow as pa

    cols = list(zip(*part)) if part else [[], [], [], []]
    return pa.table({"verifier": pa.array(cols[0], pa.string()), "sid": pa.array(cols[1], pa.string()),
                     "problem": pa.array(cols[2], pa.binary()), "text": pa.array(cols[3], pa.large_string())})


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
