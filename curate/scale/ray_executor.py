"""The Ray executor behind `--executor ray`: generation and labeling on a Ray cluster, with the local results.

What stays on the driver (the machine that runs the command): planning, the store's one writer, and the
checks. What goes to Ray workers: the backends and the verifiers.
- Generation: `curate.generate.runner.plan` computes every planned sample id exactly as the local runner does
  and drops the stored ones; the requests go in batches to backend actors (one per GPU or tensor-parallel
  group for vLLM and GPU transformers, one per CPU otherwise). An actor turns its batch into `Sample`s with
  the driver's generator identity and writes them as one Parquet shard into `<store>/shards/` through the
  producer protocol (`TraceStore.write_shard`: temp file + rename); the driver commits pending shards
  (`TraceStore.commit_pending`) every `commit_s` seconds and at the end.
- Labeling: `TraceStore.unlabeled` batches stream from the driver to verifier actors, one per node's worth
  of CPUs, each holding a `verifiers.pool.VerifierPool` with a process per CPU (the same hard per-response
  kill as the local executor). Each actor runs every verifier's self-test before labeling and again once
  it has judged `self_test_every` x `batch_size` traces;
  the driver writes an actor's verdicts (`store.add_verdicts`) only once a later self-test on that actor has
  passed, so a failing environment discards its unconfirmed stretch exactly as `curate.label` does.
- Failures: actors are restarted and their in-flight calls retried by Ray (`max_restarts`,
  `max_task_retries`). A retried generation batch may write a second shard with the same ids; the commit
  keeps one row per id. A retried labeling batch returns its verdicts once. No duplicates, no loss.
- The store directory must be the same directory on every node (a shared filesystem). Every actor reads a
  probe file the driver wrote into it (and generation actors also write into `shards/`) before any work;
  otherwise the command stops with one line naming the node.

Ray Core actors rather than Ray Data: labeling streams from the store with bounded memory and keeps each
worker's verifier pool warm across batches, and the driver must see which actor judged which batch to
confirm it by that actor's self-test. Ray's LLM batch API is not used for vLLM: sample ids and the stored
generator fields must come from the same backend code as the local executor's.

A test-only fault injector: CURATE_RAY_TEST_FAULTS="kill_label_once=PATH,kill_generate_once=PATH,hide_store=1"
(read on the driver, passed to the actors; PATH is a marker file so each kill happens once).
Test: `python -m pytest -q tests/test_ray_executor.py`.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import pickle
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from curate.errors import BackendError, ConfigError, CurateError, InputError

__all__ = ["BackendSpec", "session", "generate", "label_store"]

FAULT_ENV = "CURATE_RAY_TEST_FAULTS"
PROBE_PREFIX = ".ray-probe-"
# Ray runs its workers at nice 15 by default; verifier and backend workers are this command's real work, so a
# local instance runs them at the priority the local executor's processes have (docs/scale.md).
LOCAL_SYSTEM_CONFIG = {"worker_niceness": 0}


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray, which is not installed", hint="pip install 'curate[ray]'") from None
    return ray


def _faults() -> dict[str, str]:
    raw = os.environ.get(FAULT_ENV, "")
    return dict(part.split("=", 1) for part in raw.split(",") if "=" in part)


def _kill_once(marker: str | None) -> None:
    """Test-only: end this worker process abruptly, the first time only (the marker file remembers)."""
    if marker and not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os._exit(1)


@contextlib.contextmanager
def session(address: str | None = None) -> Iterator[Any]:
    """Ray for the duration of a command. A session already started in this process is reused and left running.

    `address`: None uses RAY_ADDRESS when it is set and otherwise starts a local instance on this machine's
    CPUs (and GPUs); "auto", "HOST:PORT" or "ray://HOST:10001" name a running cluster."""
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    # Ray hands the driver's sys.path to its workers, so a local instance runs this checkout's code (a per-job
    # runtime_env would cost seconds per actor start).
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if address is None and os.environ.get("RAY_ADDRESS"):
        address = os.environ["RAY_ADDRESS"]
    if address in (None, "local"):
        address = "local"
        kwargs["_system_config"] = LOCAL_SYSTEM_CONFIG
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"cannot start or reach Ray at {address}: {first}",
                          hint="start a cluster with `ray start --head` (docs/scale.md) or leave out --ray-address") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _host() -> str:
    import ray

    return ray.util.get_node_ip_address()


def _can_see(store_dir: str, probe: str, token: str, write: bool, faults: dict) -> tuple[str, str | None]:
    """(this node, None) when the store directory here is the driver's (the probe holds the token), else why not."""
    if faults.get("hide_store"):
        store_dir += "-not-mounted-here"
    path = Path(store_dir)
    try:
        if (path / probe).read_text() != token:
            return _host(), "it is a different directory there (the driver's probe file differs)"
        if write:
            scratch = path / "shards" / f".tmp-{probe}-{os.getpid()}"
            scratch.parent.mkdir(parents=True, exist_ok=True)
            scratch.write_text(token)
            scratch.unlink()
    except OSError as e:
        return _host(), f"{type(e).__name__}: {e.strerror or e}"
    return _host(), None


SHARED_HINT = "every Ray node must mount the store at the same path: put it on a shared filesystem (docs/scale.md)"


def _visible(visible: tuple, write: bool, faults: dict) -> tuple | None:
    """None when this node sees the driver's store directory, else the StoreError to report, as data."""
    host, why = _can_see(*visible, write, faults)
    if not why:
        return None
    what = "write to" if write else "read"
    return "StoreError", f"a Ray worker on {host} cannot {what} the store directory {visible[0]} ({why})", SHARED_HINT


@contextlib.contextmanager
def _probe(store_path: Path) -> Iterator[tuple[str, str, str]]:
    """A probe file in the store directory while the command runs: (directory, probe name, token)."""
    token = uuid.uuid4().hex
    probe = PROBE_PREFIX + token
    (store_path / probe).write_text(token)
    try:
        yield str(store_path), probe, token
    finally:
        (store_path / probe).unlink(missing_ok=True)


def _worker_failed(ray: Any, e: Exception) -> CurateError:
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return CurateError(f"a Ray worker failed: {lines[-1] if lines else type(e).__name__}",
                       hint="what is stored is kept; rerun the same command to resume")


def _error(e: CurateError) -> tuple[str, str, str | None]:
    """A worker's typed error as data: (class name, message, hint)."""
    return type(e).__name__, e.message, e.hint


def _rebuild(error: tuple, suffix: str = "") -> CurateError:
    """The worker's error on the driver, with its type (so the exit code matches the local executor's)."""
    from curate import errors as E

    name, message, hint = error
    cls = getattr(E, name, None)
    if not (isinstance(cls, type) and issubclass(cls, CurateError)):
        cls = BackendError
    return cls(message + suffix, hint=hint)


def _one_row(result: dict) -> dict:
    """A map actor's answer for one batch: one row holding the pickled result (verdicts, counts, errors)."""
    import numpy as np

    return {"result": np.array([pickle.dumps(result)], dtype=object)}


def _quiet_data(ray: Any) -> None:
    """Ray Data prints progress bars and a line per execution; the command reports its own progress."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def _results(ray: Any, ds: Any) -> Iterator[dict]:
    """Run the dataset; yield each batch's result as it arrives (in any order). Leaving the loop early (an
    error) stops the pipeline and its actors."""
    # prefetch_batches=0: with the default of 1 the iterator holds each batch until the next one arrives
    batches = iter(ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0))
    try:
        for batch in batches:
            for result in batch.column("result").to_pylist():
                yield pickle.loads(result)
    except ray.exceptions.RayError as e:
        raise _worker_failed(ray, e) from None
    finally:
        batches.close()


# ------------------------------------------------------------------ generation


@dataclass(frozen=True)
class BackendSpec:
    """What a worker needs to build the backend itself (`curate.generate.make_backend` arguments)."""

    name: str
    model: str | None
    sampling: Any
    options: dict = field(default_factory=dict)
    revision: str | None = None

    def __post_init__(self) -> None:
        """Bad options or a missing model fail here on the driver, in one line, before Ray starts anything."""
        from curate.generate import _config_cls
        from curate.tasks.base import build_config

        build_config(_config_cls(self.name), dict(self.options))
        if self.name != "synthetic" and not self.model:
            raise InputError(f"the {self.name} backend needs --model")

    def build(self) -> Any:
        from curate.generate import make_backend

        return make_backend(self.name, self.model, self.sampling, self.options, self.revision)

    def local_identity(self, cfg: Any) -> Any:
        """The generator identity built here for backends that load no model (synthetic, openai); else None."""
        if self.name not in ("synthetic", "openai"):
            return None
        from curate.generate.runner import generator_identity

        backend = self.build()
        try:
            return _Identity(generator_identity(backend, cfg))
        finally:
            backend.close()

    def resources(self, cluster: dict) -> tuple[dict, int]:
        """(Ray resources of one actor, how many actors the cluster holds)."""
        if self.name == "vllm":
            tp = int(self.options.get("tensor_parallel_size", 1))
            return {"num_gpus": tp, "num_cpus": 1}, max(1, int(cluster.get("GPU", 0) // tp))
        if self.name == "hf" and str(self.options.get("device", "auto")) != "cpu" and cluster.get("GPU", 0) >= 1:
            return {"num_gpus": 1, "num_cpus": 1}, int(cluster["GPU"])
        return {"num_cpus": 1}, max(1, int(cluster.get("CPU", 1)))


class _Identity:
    """A backend as the planner sees it: only the generator identity a worker's real backend reported."""

    def __init__(self, gen: dict) -> None:
        self.name, self.model, self.revision, self._params = gen["backend"], gen["model"], gen["revision"], gen["params"]

    def identity_params(self) -> dict:
        return dict(self._params)


class _GenerateActor:
    """A Ray Data map actor: builds the backend once; each batch of requests becomes one Parquet shard."""

    def __init__(self, spec: BackendSpec, gen: dict, run_id: str, visible: tuple, faults: dict) -> None:
        from curate.store import TraceStore

        self.gen, self.run_id, self.faults, self.backend = gen, run_id, faults, None
        self.error = _visible(visible, True, faults)  # before a model is loaded
        if self.error:
            return
        self.store = TraceStore(visible[0])
        try:
            self.backend = spec.build()
        except CurateError as e:
            self.error = _error(e)

    def __call__(self, batch: Any) -> dict:
        from curate.generate.runner import _to_sample

        out = {"generated": 0, "prompt_tokens": 0, "completion_tokens": 0, "truncated": 0, "missing": 0,
               "error": self.error, "startup": self.error is not None}
        if self.error:
            return _one_row(out)
        requests = [pickle.loads(r) for r in batch.column("request").to_pylist()]
        by_id = {r.id: r for r in requests}
        samples = []
        try:
            for c in self.backend.generate(requests):
                req = by_id.pop(c.request_id, None)
                if req is None:
                    raise BackendError(f"backend {self.backend.name} returned an unknown or duplicate request id {c.request_id!r}")
                samples.append(_to_sample(c, req, self.gen, self.run_id))
                out["prompt_tokens"] += c.prompt_tokens or 0
                out["completion_tokens"] += c.completion_tokens or 0
                out["truncated"] += c.finish_reason == "length"
        except CurateError as e:
            out["error"] = _error(e)
        if samples:
            self.store.write_shard(samples)  # one shard per batch; a retry after a kill may write it twice
            _kill_once(self.faults.get("kill_generate_once"))
        out["generated"] = len(samples)
        out["missing"] = len(by_id) if out["error"] is None else 0
        return _one_row(out)


def _identity_probe(spec: BackendSpec, cfg: Any) -> tuple[dict | None, tuple | None]:
    """(generator identity, None) from a backend built here, or (None, its error as data)."""
    from curate.generate.runner import generator_identity

    try:
        backend = spec.build()
    except CurateError as e:
        return None, _error(e)
    try:
        return generator_identity(backend, cfg), None
    finally:
        backend.close()


def generate(store: Any, spec: BackendSpec, where: str | None = None, cfg: Any = None, *, identity: Any = None,
             params: list | None = None, progress: bool = True, address: str | None = None,
             workers: int | None = None) -> Any:
    """`curate.generate.runner.run` on Ray Data: same plan, same ids, same shards; returns a RunReport.

    `identity` is the backend as the planner should see it (the eval stage's checkpoint identity); by default
    the synthetic and openai backends build it here and a model-backed one reports it from a probe task on
    the cluster. `workers` caps the number of backend actors."""
    from curate.generate.runner import RunConfig, generator_identity, plan

    cfg = cfg or RunConfig()
    t0 = time.perf_counter()
    faults = _faults()
    if store.pending_shards():
        store.commit_pending()  # shards a killed run left behind count as done before we plan
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    ident = identity if identity is not None else spec.local_identity(cfg)

    def planned() -> tuple[list, Any]:
        requests, report = plan(store, where, ident, cfg, params)
        report.run_id = run_id
        report.elapsed_s = time.perf_counter() - t0
        return requests, report

    if ident is not None:
        requests, report = planned()
        if not requests:  # everything is stored: no Ray, no model
            return report
    with session(address) as ray, _probe(store.path.resolve()) as visible:
        _quiet_data(ray)
        per_actor, fits = spec.resources(ray.cluster_resources())
        if ident is None:  # a model-backed backend: its identity (the revision it loads) comes from the cluster
            try:
                gen, error = ray.get(ray.remote(**per_actor)(_identity_probe).remote(spec, cfg))
            except ray.exceptions.RayError as e:
                raise _worker_failed(ray, e) from None
            if error:
                raise _rebuild(error)
            ident = _Identity(gen)
            requests, report = planned()
            if not requests:
                return report
        gen = generator_identity(ident, cfg)
        n = max(1, min(workers or fits, fits))
        size = max(1, min(cfg.flush_every, math.ceil(len(requests) / (2 * n))))
        items = [{"request": pickle.dumps(r)} for r in requests]
        ds = ray.data.from_items(items, override_num_blocks=math.ceil(len(items) / size)).map_batches(
            _GenerateActor, batch_size=size, batch_format="pyarrow", **per_actor,
            compute=ray.data.ActorPoolStrategy(size=min(n, math.ceil(len(items) / size)), max_tasks_in_flight_per_actor=2),
            fn_constructor_args=(spec, gen, run_id, visible, faults))
        try:
            error, missing = _run_batches(ray, ds, len(requests), report, cfg, store, progress)
        finally:
            report.committed += store.commit_pending()  # what the finished batches wrote is kept, even on an error
    if error and error[-1]:  # an actor could not start (a store it cannot see, a model it cannot load)
        raise _rebuild(error[:3])
    if error:
        raise _rebuild(error[:3], f" ({report.generated} samples of this run are stored; rerun the same command to resume)")
    if missing:
        raise BackendError(f"backend {spec.name} returned no result for {missing} requests",
                           hint="rerun the same command to generate the missing samples")
    report.elapsed_s = time.perf_counter() - t0
    return report


def _run_batches(ray: Any, ds: Any, total: int, report: Any, cfg: Any, store: Any, progress: bool
                 ) -> tuple[tuple | None, int]:
    """Consume the pipeline's per-batch results; commit pending shards every `cfg.commit_s` seconds. Stops at
    the first error, like the local runner, and returns it (class, message, hint, whether the actor could not
    start) with the count of requests left unanswered."""
    from curate.generate.runner import _Progress

    bar = _Progress(total, progress)
    missing = 0
    last_commit = time.perf_counter()
    try:
        for res in _results(ray, ds):
            report.generated += res["generated"]
            report.prompt_tokens += res["prompt_tokens"]
            report.completion_tokens += res["completion_tokens"]
            report.truncated += res["truncated"]
            missing += res["missing"]
            if res["error"]:
                return (*res["error"], res["startup"]), missing
            for k in range(res["generated"]):
                bar.advance(res["completion_tokens"] if k == 0 else 0)
            if time.perf_counter() - last_commit >= cfg.commit_s:
                report.committed += store.commit_pending()
                last_commit = time.perf_counter()
    finally:
        bar.close()
    return None, missing


# ------------------------------------------------------------------ labeling

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
        self.error = _visible(visible, False, faults)  # before any verifier starts
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
            return _one_row(out)
        boxed, out["error"] = ray.get(self.feeder.get.remote(piece))
        if out["error"]:
            return _one_row(out)
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
                _kill_once(self.faults.get("kill_label_once"))
        out["kills"] = self.pool.kills - kills
        for name in verdicts:  # a self-test after them, on this actor, confirms this piece's verdicts
            probes, failed = self._self_test(name)
            if failed:
                out["failed"] = failed
                return _one_row(out)
            out["tests"].append((name, probes))
        out["verdicts"] = verdicts
        return _one_row(out)


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
    faults = _faults()
    with session(address) as ray, _probe(store.path.resolve()) as visible:
        _quiet_data(ray)
        n, per = _actor_shape(ray, workers)
        total = sum(counts[name] for name, _ in work)
        chunk = max(1, min(self_test_every * batch_size, math.ceil(total / (2 * n))))
        pieces = math.ceil(total / chunk)
        feeder = ray.remote(num_cpus=0)(_Feeder).options(scheduling_strategy=_here(ray)).remote()
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
            for res in _results(ray, ds):
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


def _here(ray: Any) -> Any:
    """Schedule on the driver's node (the feeder hands on refs to objects the driver put there)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)


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
            raise _rebuild(res["error"]) if res["error"] else CurateError(res["failed"], hint=SELF_TEST_HINT)
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
