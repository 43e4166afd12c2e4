"""The Ray executor behind `--executor ray`: generation and labeling as Ray Data pipelines, with the local results.

What stays on the driver (the machine that runs the command): planning, the store's one writer, and the
checks. What goes to Ray workers: the backends and the verifiers, as Ray Data map actors.
- Generation (here): `curate.generate.runner.plan` computes every planned sample id exactly as the local runner
  does and drops the stored ones. The requests become a dataset (`from_items`, blocks of up to `flush_every`),
  and `map_batches` runs `_GenerateActor`: one actor per GPU or tensor-parallel group for vLLM and GPU
  transformers (`num_gpus`), one per CPU otherwise. An actor builds the backend once, turns each batch into
  `Sample`s with the driver's generator identity and writes them as one Parquet shard into `<store>/shards/`
  through the producer protocol (`TraceStore.write_shard`: temp file + rename), and returns counts only. The
  driver commits pending shards (`TraceStore.commit_pending`) every `commit_s` seconds and at the end. A
  model-backed backend's identity (the revision it loads) comes from a probe task on the cluster first.
- Labeling: `curate.scale.ray_label` (map_batches over pieces of stored traces, verifier-pool actors).
- Failures: Ray Data restarts a dead map actor and runs its batch again. A generation batch that had already
  written its shard writes a second one with the same ids; the commit keeps one row per id. A labeling piece
  returns its verdicts once. No duplicates, no loss. Ray Data rebuilds an actor without limit (Ray 2.60 takes
  a bound only through the deprecated `**ray_remote_args` of `map_batches`), so each actor counts its own
  rebuilds (`ray_common.rebuilt_too_often`, a counter file in the store directory) and past
  $CURATE_RAY_MAX_REBUILDS (3) answers every batch with an error that stops the command with one line.
- Prompts the server refuses (the openai backend's `skipped`) travel back with each batch's counts; the
  driver hands them to the caller (`refused`), as the local backend keeps them, so `curate eval` stores the
  benchmark incomplete with the same `details.refused`.
- The store directory must be the same directory on every node (a shared filesystem). Every actor reads a
  probe file the driver wrote into it (generation actors also write into `shards/`) before any work;
  otherwise the command stops with one line naming the node.

Ray's LLM batch API (`ray.data.llm`) is not used: it renders prompts, maps sampling parameters and reports
completions with its own code, so texts, token counts and the stored generator fields could differ from a
local run's; here every actor runs the same backend code (`curate.generate.make_backend`) as the local runner.

Test: `python -m pytest -q tests/test_ray_executor.py` (fault injection: curate.scale.ray_common).
"""
from __future__ import annotations

import math
import pickle
import time
import uuid
from typing import Any

from curate.errors import BackendError, ConfigError, CurateError
from curate.scale.ray_common import (FAULT_ENV, LOCAL_SYSTEM_CONFIG, PROBE_PREFIX, REBUILDS_ENV, die, error_data,
                                     kill_once, max_rebuilds, one_row, probe_file, quiet_data, read_faults,
                                     rebuild_error, rebuilt_too_often, results, session, visible_error,
                                     worker_failed)
from curate.generate.spec import BackendIdentity, BackendSpec
from curate.scale.ray_label import label_store

__all__ = ["BackendSpec", "session", "generate", "label_store", "FAULT_ENV", "LOCAL_SYSTEM_CONFIG", "PROBE_PREFIX",
           "REBUILDS_ENV"]


class _GenerateActor:
    """A Ray Data map actor: builds the backend once; each batch of requests becomes one Parquet shard."""

    def __init__(self, spec: BackendSpec, gen: dict, run_id: str, visible: tuple, faults: dict, rebuilds: int) -> None:
        from curate.store import TraceStore

        self.gen, self.run_id, self.faults, self.backend = gen, run_id, faults, None
        # before a model is loaded (again: a vLLM actor that runs out of memory loading would die once more)
        self.error = visible_error(visible, True, faults) or rebuilt_too_often(visible, rebuilds, "generation")
        if self.error:
            return
        self.store = TraceStore(visible[0])
        try:
            self.backend = spec.build()
        except CurateError as e:
            self.error = error_data(e)

    def __call__(self, batch: Any) -> dict:
        from curate.generate.runner import to_sample

        out = {"generated": 0, "prompt_tokens": 0, "completion_tokens": 0, "truncated": 0, "missing": 0,
               "refused": [], "error": self.error, "startup": self.error is not None}
        if self.error:
            return one_row(out)
        die(self.faults.get("die_generate"))
        requests = [pickle.loads(r) for r in batch.column("request").to_pylist()]
        by_id = {r.id: r for r in requests}
        samples = []
        try:
            for c in self.backend.generate(requests):
                req = by_id.pop(c.request_id, None)
                if req is None:
                    raise BackendError(f"backend {self.backend.name} returned an unknown or duplicate request id {c.request_id!r}")
                samples.append(to_sample(c, req, self.gen, self.run_id))
                out["prompt_tokens"] += c.prompt_tokens or 0
                out["completion_tokens"] += c.completion_tokens or 0
                out["truncated"] += c.finish_reason == "length"
        except CurateError as e:
            out["error"] = error_data(e)
        skipped = getattr(self.backend, "skipped", None)  # prompts the server refused (openai: HTTP 400 and kin)
        if skipped:
            out["refused"] = list(skipped)
            skipped.clear()  # the actor's backend serves the next batch too
        if samples:
            self.store.write_shard(samples)  # one shard per batch; a retry after a kill may write it twice
            kill_once(self.faults.get("kill_generate_once"))
        out["generated"] = len(samples)
        out["missing"] = len(by_id) if out["error"] is None else 0
        return one_row(out)


def _identity_probe(spec: BackendSpec) -> tuple[BackendIdentity | None, tuple | None]:
    """(the identity a backend built here reports, None), or (None, its error as data)."""
    try:
        backend = spec.build()
    except CurateError as e:
        return None, error_data(e)
    try:
        return BackendIdentity.of(backend), None
    finally:
        backend.close()


def generate(store: Any, spec: BackendSpec, where: str | None = None, cfg: Any = None, *,
             identity: BackendIdentity | None = None,
             params: list | None = None, progress: bool = True, address: str | None = None,
             workers: int | None = None, refused: list | None = None) -> Any:
    """`curate.generate.runner.run` on Ray Data: same plan, same ids, same shards; returns a RunReport.

    `identity` is the backend as the planner should see it (the eval stage's checkpoint identity); by default
    the synthetic and openai backends build it here and a model-backed one reports it from a probe task on
    the cluster. `workers` caps the number of backend actors. `refused`, when given, receives (request id,
    reason) for every prompt a worker's backend skipped because the server refused it (what an OpenAIBackend
    lists in `skipped` locally); those requests also count as missing, as they do locally."""
    from curate.generate.runner import RunConfig, generator_identity, missing_error, plan

    cfg = cfg or RunConfig()
    t0 = time.perf_counter()
    faults, rebuilds = read_faults(), max_rebuilds()
    if store.pending_shards():
        store.commit_pending()  # shards a killed run left behind count as done before we plan
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    ident = identity if identity is not None else spec.local_identity()

    def planned() -> tuple[list, Any]:
        requests, report = plan(store, where, ident, cfg, params)
        report.run_id = run_id
        report.elapsed_s = time.perf_counter() - t0
        return requests, report

    if ident is not None:
        requests, report = planned()
        if not requests:  # everything is stored: no Ray, no model
            return report
    with session(address) as ray, probe_file(store.path.resolve()) as visible:
        quiet_data(ray)
        cluster = ray.cluster_resources()
        per_actor, fits = spec.resources(cluster)
        if per_actor.get("num_gpus", 0) > cluster.get("GPU", 0):  # Ray Data would wait for them forever
            raise ConfigError(f"the {spec.name} backend needs {per_actor['num_gpus']} GPU(s) per engine and the Ray "
                              f"cluster has {int(cluster.get('GPU', 0))}",
                              hint="start Ray on GPU nodes, or lower -o tensor_parallel_size")
        if ident is None:  # a model-backed backend: its identity (the revision it loads) comes from the cluster
            try:
                ident, error = ray.get(ray.remote(**per_actor)(_identity_probe).remote(spec))
            except ray.exceptions.RayError as e:
                raise worker_failed(e) from None
            if error:
                raise rebuild_error(error)
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
            fn_constructor_args=(spec, gen, run_id, visible, faults, rebuilds))
        skipped: list = []  # this run's refusals (the caller's list may hold earlier ones)
        try:
            error, missing = _run_batches(ray, ds, len(requests), report, cfg, store, progress, skipped)
        finally:
            report.committed += store.commit_pending()  # what the finished batches wrote is kept, even on an error
            if refused is not None:
                refused.extend(skipped)
    if error and error[-1]:  # an actor could not start (a store it cannot see, a model it cannot load, too many rebuilds)
        raise rebuild_error(error[:3])
    if error:
        raise rebuild_error(error[:3], f" ({report.generated} samples of this run are stored; rerun the same command to resume)")
    if missing:
        raise missing_error(spec.name, missing, skipped)
    report.elapsed_s = time.perf_counter() - t0
    return report


def _run_batches(ray: Any, ds: Any, total: int, report: Any, cfg: Any, store: Any, progress: bool, refused: list
                 ) -> tuple[tuple | None, int]:
    """Consume the pipeline's per-batch results; commit pending shards every `cfg.commit_s` seconds. Stops at
    the first error, like the local runner, and returns it (class, message, hint, whether the actor could not
    start) with the count of requests left unanswered; the server's refusals are appended to `refused`."""
    from curate.generate.runner import Progress

    bar = Progress(total, progress)
    missing = 0
    last_commit = time.perf_counter()
    try:
        for res in results(ray, ds):
            report.generated += res["generated"]
            report.prompt_tokens += res["prompt_tokens"]
            report.completion_tokens += res["completion_tokens"]
            report.truncated += res["truncated"]
            missing += res["missing"]
            refused.extend(res["refused"])
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
