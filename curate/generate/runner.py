"""The resumable generation runner behind `curate generate`.

A sample's identity is (problem, generator config, sample index, seed) (`Sample.identity`), known before
anything is generated, so a run first asks the store which of its planned ids already exist and only
generates the rest. Completed samples go to Parquet shards (`store.write_shard`, atomic) every
`flush_every` samples or `flush_s` seconds and are committed (`store.commit_pending`) every `commit_s`
seconds and at the end. A run killed at any point loses at most the unflushed buffer; the next run commits
the leftover shards first, then resumes: no duplicates (ids) and no gaps (the plan is recomputed).

`--shard i/n` assigns each problem to one of n workers by its id, so a job array can split a run and
every worker commits into the same store. Test: tests/test_generate_runner.py.
"""
from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from curate.errors import BackendError, CurateError, InputError, Interrupted, StoreError
from curate.generate.base import Backend, Completion, Request, SamplingParams
from curate.generate.prompting import DEFAULT_TEMPLATE, build_messages
from curate.generate.spec import BackendIdentity
from curate.records import Problem, Sample, sample_ids_of

__all__ = ["RunConfig", "RunReport", "parse_shard", "plan", "run", "generator_identity", "missing_error"]


def parse_shard(text: str | None) -> tuple[int, int]:
    """'i/n' with 0 <= i < n (0-based, as SLURM_ARRAY_TASK_ID usually is)."""
    if not text:
        return (0, 1)
    try:
        i_s, n_s = text.split("/")
        i, n = int(i_s), int(n_s)
    except ValueError:
        raise InputError(f"--shard must look like i/n (e.g. 0/8), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise InputError(f"--shard {text}: need 0 <= i < n")
    return (i, n)


MAX_N = 65_536  # samples per problem (sample_index is a 32-bit column; the study draws 32)
SHARED_PLAN = 100_000  # samples whose plan reads share one catalog open (their ids take well under a second)
MAX_PLANNED = 10_000_000  # samples one run plans in memory (ids and requests: ~2 GB); --shard splits a larger run


@dataclass(frozen=True)
class RunConfig:
    n: int = 1  # samples per problem
    seed: int | None = 0  # run seed, stored per row and part of the sample id
    sampling: SamplingParams = field(default_factory=SamplingParams)
    template: str = DEFAULT_TEMPLATE
    system: str | None = None
    shard: tuple[int, int] = (0, 1)
    limit: int | None = None  # at most this many problems (after sharding), for trial runs
    flush_every: int = 2000  # samples per shard file
    flush_s: float = 30.0
    commit_s: float = 120.0

    def __post_init__(self) -> None:
        if not 1 <= self.n <= MAX_N:
            raise InputError(f"--n must be between 1 and {MAX_N:,}, got {self.n}")
        if self.flush_every < 1:
            raise InputError("flush_every must be >= 1")
        if self.limit is not None and self.limit < 1:  # problems[:-1] would silently drop the last problem
            raise InputError(f"--limit must be >= 1, got {self.limit}")


@dataclass
class RunReport:
    run_id: str
    backend: str
    model: str
    problems: int = 0
    planned: int = 0
    existing: int = 0
    generated: int = 0
    committed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: int = 0
    elapsed_s: float = 0.0
    dry_run: bool = False
    params: dict = field(default_factory=dict)
    example_prompt: list | None = None

    @property
    def samples_per_s(self) -> float:
        return self.generated / self.elapsed_s if self.elapsed_s else 0.0

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items()}
        d["samples_per_s"] = round(self.samples_per_s, 2)
        return d


def generator_identity(identity: BackendIdentity, cfg: RunConfig) -> dict:
    """What `Sample.generator` will be: backend, model, revision and every setting that shapes the output."""
    params = {**cfg.sampling.to_dict(), "template": cfg.template, "system": cfg.system, **identity.params}
    return {"backend": identity.name, "model": identity.model, "revision": identity.revision, "params": params}


def _in_shard(problem_id: str, shard: tuple[int, int]) -> bool:
    i, n = shard
    return n == 1 or int(problem_id[:8], 16) % n == i


def plan(store, where: str | None, identity: BackendIdentity, cfg: RunConfig, params: list | None = None
         ) -> tuple[list[Request], RunReport]:
    """Select problems, compute every planned sample id, drop the stored ones; return what is left to do."""
    gen = generator_identity(identity, cfg)
    report = RunReport(run_id="", backend=identity.name, model=identity.model, params=gen["params"])
    with contextlib.ExitStack() as reads:
        reads.enter_context(store.reading())  # one catalog open for both reads of a small plan
        problems: list[Problem] = [p for p in store.problems(where, params) if _in_shard(p.id, cfg.shard)]
        problems.sort(key=lambda p: p.id)
        if cfg.limit is not None:
            problems = problems[: cfg.limit]
        report.problems = len(problems)
        if len(problems) * cfg.n > MAX_PLANNED:
            raise InputError(f"{len(problems):,} problems x --n {cfg.n:,} is {len(problems) * cfg.n:,} samples, more than "
                             f"one run plans ({MAX_PLANNED:,})",
                             hint="split the run with --shard i/n (one job each), or use --limit")
        if len(problems) * cfg.n > SHARED_PLAN:
            reads.close()  # hashing this many ids takes seconds: writers (other shards' commits) get the store meanwhile
        sample_id = sample_ids_of(gen)
        planned = [(sample_id(p.id, i, cfg.seed), p, i) for p in problems for i in range(cfg.n)]
        report.planned = len(planned)
        existing: set[str] = set()
        for start in range(0, len(planned), 50_000):
            existing |= store.sample_ids([sid for sid, _, _ in planned[start:start + 50_000]])
    report.existing = len(existing)
    messages: dict[str, tuple] = {}
    requests = []
    for sid, p, i in planned:
        if sid in existing:
            continue
        if p.id not in messages:
            messages[p.id] = build_messages(p, cfg.template, cfg.system)
        requests.append(Request(id=sid, problem=p, messages=messages[p.id], sample_index=i, seed=cfg.seed))
    if requests:
        report.example_prompt = list(requests[0].messages)
    return requests, report


class Progress:
    """A rich progress bar with samples/s and tokens/s, updated at most 5 times a second."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.enabled = enabled and total > 0
        self.done = self.tokens = 0
        self.t0 = time.perf_counter()
        self._last = 0.0
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("generate"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), transient=False)
            self.task = self.bar.add_task("generate", total=total, rate="")
            self.bar.start()

    def advance(self, tokens: int) -> None:
        self.done += 1
        self.tokens += tokens
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last > 0.2:
            self._last = now
            dt = max(now - self.t0, 1e-9)
            self.bar.update(self.task, completed=self.done,
                            rate=f"{self.done / dt:,.1f} samples/s  {self.tokens / dt:,.0f} tok/s")

    def close(self) -> None:
        if self.enabled:
            dt = max(time.perf_counter() - self.t0, 1e-9)
            self.bar.update(self.task, completed=self.done,
                            rate=f"{self.done / dt:,.1f} samples/s  {self.tokens / dt:,.0f} tok/s")
            self.bar.stop()


def to_sample(c: Completion, req: Request, gen: dict, run_id: str) -> Sample:
    s = Sample(
        problem_id=req.problem.id, text=c.text, backend=gen["backend"], model=gen["model"], params=gen["params"],
        sample_index=req.sample_index, seed=req.seed, revision=gen["revision"], finish_reason=c.finish_reason,
        prompt_tokens=c.prompt_tokens, completion_tokens=c.completion_tokens, teacher_logprob=c.teacher_logprob,
        teacher_entropy=c.teacher_entropy, latency_s=c.latency_s, run_id=run_id,
    )
    if s.id != req.id:  # the planned id and the stored id must agree or resume would duplicate
        raise AssertionError(f"sample id drifted for problem {req.problem.id} #{req.sample_index}")
    return s


REFUSED_HINT = ("a prompt the server refused is refused again on a rerun: serve a longer context, lower --max-tokens, "
                "or leave those problems out with --where")


def missing_error(backend: str, missing: int, refused: list[tuple[str, str]]) -> BackendError:
    """The error for `missing` requests a backend returned no result for. `refused` holds (request id, why) for
    those the server refused (the openai backend's `skipped`, what `curate eval` stores as `details.refused`):
    a rerun sends them again and they are refused again, so the hint says so instead of "rerun"."""
    if not refused:
        return BackendError(f"backend {backend} returned no result for {missing} requests",
                            hint="rerun the same command to generate the missing samples")
    reasons = list(dict.fromkeys(" ".join(why.split())[:160] for _, why in refused))  # first seen first, one line
    shown = "; ".join(reasons[:2]) + (f"; {len(reasons) - 2} other reasons" if len(reasons) > 2 else "")
    whom = "them" if len(refused) >= missing else f"{len(refused)} of them"
    hint = REFUSED_HINT
    if len(refused) < missing:
        hint = f"rerun the same command to generate the other {missing - len(refused)}; {hint}"
    return BackendError(f"backend {backend} returned no result for {missing} requests: the server refused {whom} "
                        f"({shown})", hint=hint)


def _kept(store, report: RunReport) -> str:
    """What an interrupted run leaves: its samples are committed now (readers see them), or said to be pending
    when that commit is itself interrupted or the store is busy."""
    try:
        report.committed += store.commit_pending()
    except (KeyboardInterrupt, CurateError):
        return (f"interrupted: {report.generated} samples of this run are on disk, {report.committed} of them "
                "committed; the rest are in pending shards that the next command writing to this store commits")
    return f"interrupted: the {report.generated} samples this run generated are stored"


def run(store, backend: Backend, where: str | None = None, cfg: RunConfig | None = None, *, params: list | None = None,
        dry_run: bool = False, progress: bool = True, on_sample: Callable[[Sample], None] | None = None,
        identity: BackendIdentity | None = None) -> RunReport:
    """Generate every missing sample for the selected problems into the store; see the module docstring.

    `identity` is the backend as the planner sees it when it is not what `backend` reports (a backend built
    only when something is missing); by default the backend's own."""
    cfg = cfg or RunConfig()
    identity = identity or BackendIdentity.of(backend)
    t0 = time.perf_counter()
    if not dry_run:
        store.check_writable()  # a full disk or read-only store fails now, not after hours of generating
    if not dry_run and store.pending_shards():
        store.commit_pending()  # shards a killed run left behind count as done before we plan
    requests, report = plan(store, where, identity, cfg, params)
    report.dry_run = dry_run
    report.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    if dry_run or not requests:
        report.elapsed_s = time.perf_counter() - t0
        return report
    gen = generator_identity(identity, cfg)
    by_id = {r.id: r for r in requests}
    buffer: list[Sample] = []
    bar = Progress(len(requests), progress)
    last_flush = last_commit = time.perf_counter()

    def flush() -> None:
        nonlocal buffer, last_flush
        if buffer:
            store.write_shard(buffer)
            buffer = []
        last_flush = time.perf_counter()

    try:
        for c in backend.generate(requests):
            req = by_id.pop(c.request_id, None)
            if req is None:
                raise BackendError(f"backend {backend.name} returned an unknown or duplicate request id {c.request_id!r}")
            sample = to_sample(c, req, gen, report.run_id)
            buffer.append(sample)
            report.generated += 1
            report.prompt_tokens += c.prompt_tokens or 0
            report.completion_tokens += c.completion_tokens or 0
            report.truncated += c.finish_reason == "length"
            bar.advance(c.completion_tokens or 0)
            if on_sample is not None:
                on_sample(sample)
            now = time.perf_counter()
            if len(buffer) >= cfg.flush_every or now - last_flush >= cfg.flush_s:
                flush()
            if now - last_commit >= cfg.commit_s:
                report.committed += store.commit_pending()
                last_commit = time.perf_counter()
    except StoreError:
        raise  # the store cannot take writes: flushing or committing again would only fail again
    except CurateError as e:
        flush()
        report.committed += store.commit_pending()
        e.message = f"{e.message} ({report.generated} samples of this run are stored; rerun the same command to resume)"
        raise
    except KeyboardInterrupt:
        flush()  # keep what was generated, and make it visible to readers now if the store lets us
        raise Interrupted(_kept(store, report), hint="rerun the same command to resume") from None
    except BaseException:
        flush()  # anything else: keep what was generated, leave committing to the next run
        raise
    finally:
        bar.close()
    flush()
    report.committed += store.commit_pending()
    if by_id:
        raise missing_error(backend.name, len(by_id),
                            [(rid, why) for rid, why in getattr(backend, "skipped", None) or () if rid in by_id])
    report.elapsed_s = time.perf_counter() - t0
    return report

