"""Worker processes that run verifiers with a hard wall-clock kill.

Why processes: math-verify's timeout is a signal (main thread only) and cannot interrupt C-level work such as
sympy evaluating `10^{10^{10}}`; model-written code must never run in the labeler's process. Each worker runs
one task at a time; the parent waits on all pipes and SIGKILLs a worker whose task passes
`verifier.deadline_s(problem) + grace_s`, reports that task as `timeout`, and starts a replacement. A worker
that dies mid-task (segfault, OOM kill) yields an `error` verdict; neither is ever `incorrect`.

A verifier with `batch_size` > 1 and a `verify_batch(problems, responses)` method (a reward model on a GPU)
gets up to that many consecutive tasks as one message, and its `deadline_s` covers the whole batch; a killed or
dead worker makes every task of the batch `timeout` or `error`.

Workers come from a `forkserver` that preloads the built-in verifier modules, so a replacement after a kill
costs a fork, not a fresh interpreter and a sympy import. Code-sandbox children set PDEATHSIG, so they die
with a killed worker; each worker watches the process that owns the pool (a pidfd) and kills itself when that
process exits, however it exits, so a SIGTERM, SIGHUP or SIGKILL to `curate verify` stops every worker,
zygote and running program at once (the forkserver then exits as its last client goes).

    with VerifierPool(workers=2) as pool:
        pool.self_test("math")              # raises SelfTestFailed when a probe gets the wrong status
        for key, verdict in pool.run((key, "math", {}, problem, text) for ...):
            ...
"""
from __future__ import annotations

import json

import multiprocessing as mp
import os
import select
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Iterable, Iterator

from verifiers.registry import get_verifier
from verifiers.verdict import Verdict

PRELOAD = ["verifiers.pool", "verifiers.registry", "verifiers.math", "verifiers._warm_math", "verifiers.countdown",
           "verifiers.code", "verifiers.sandbox"]
_READY = "__ready__"
Task = tuple  # (key, verifier_name, options: dict, problem, response)


class _Batch(tuple):
    """The keys of tasks sent to one worker together (the task's problem and response are then lists)."""


def batch_size(verifier: Any) -> int:
    """How many tasks a verifier takes at once: its `batch_size` when it has `verify_batch`, else 1."""
    if not callable(getattr(verifier, "verify_batch", None)):
        return 1
    return max(1, int(getattr(verifier, "batch_size", 1) or 1))


def _verify_batch(v: Any, problems: list, responses: list) -> list[Verdict]:
    """`verify_batch` with one verdict per response, each carrying its share of the batch's time."""
    t0 = time.perf_counter()
    try:
        out = list(v.verify_batch(problems, responses))
        if len(out) != len(responses):
            raise ValueError(f"verify_batch returned {len(out)} verdicts for {len(responses)} responses")
    except Exception as e:  # a verifier bug is infrastructure, never a wrong answer
        out = [v.verdict("error", reason=f"{type(e).__name__}: {e}"[:500]) for _ in responses]
    share = round((time.perf_counter() - t0) / max(1, len(out)), 6)
    return [Verdict(**{**x.to_dict(), "duration_s": share}) for x in out]


class PoolError(RuntimeError):
    """Workers cannot start (for example the verifier module fails to import in a fresh process)."""


class SelfTestFailed(RuntimeError):
    """A verifier gave one of its own probes the wrong status: its environment cannot be trusted to judge."""

    def __init__(self, verifier: str, probe: str, expected: str, verdict: Verdict) -> None:
        self.verifier, self.probe, self.expected, self.verdict = verifier, probe, expected, verdict
        reason = " ".join((verdict.reason or "").split())[:300]
        super().__init__(f"verifier {verifier!r} failed its self-test: probe {probe!r} should be {expected}, "
                         f"got {verdict.status} ({reason})")


def _options_key(options: dict | None) -> str:
    """A hashable key for verifier options, nested ones included (a judge's backend_options is a dict)."""
    return json.dumps(options or {}, sort_keys=True, default=repr)


def _die_with(owner: int) -> None:
    """Kill this worker the moment the process that owns the pool exits, however it exits (SIGTERM, SIGKILL,
    a crash): a worker's parent is the forkserver, which outlives its clients, so PDEATHSIG cannot tell. The
    worker's sandbox zygote has PDEATHSIG set to this worker, and each program dies with the zygote."""
    def watch() -> None:
        try:
            fd = os.pidfd_open(owner)
        except (AttributeError, OSError):  # old kernel, or already gone
            fd = None
        if fd is not None:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            poller.poll()  # readable when the owner exits
        else:
            while True:
                try:
                    os.kill(owner, 0)
                except ProcessLookupError:
                    break
                except PermissionError:
                    pass
                time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGKILL)

    if owner is not None:
        threading.Thread(target=watch, name="curate-pool-owner", daemon=True).start()


def _worker_main(conn: Connection, owner: int | None = None) -> None:
    """Worker loop: receive a task, verify it, send (key, verdict). Runs in a child process; dies with `owner`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    _die_with(owner)
    cache: dict[tuple, Any] = {}
    try:
        conn.send(_READY)
    except OSError:  # the pool is already gone
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        key, name, options, problem, response = msg
        ck = (name, _options_key(options))
        try:
            v = cache.get(ck) or cache.setdefault(ck, get_verifier(name, **(options or {})))
            verdict = _verify_batch(v, problem, response) if isinstance(key, _Batch) else v.verify(problem, response)
        except Exception as e:  # registry trouble inside the worker: still a verdict, never a crash
            one = Verdict("error", name, "?", reason=f"{type(e).__name__}: {e}"[:500])
            verdict = [one] * len(key) if isinstance(key, _Batch) else one
        try:
            conn.send((key, verdict))
        except OSError:  # the pool closed (or its owner died) while this task ran: nobody is listening
            return


@dataclass
class _Worker:
    proc: Any
    conn: Connection
    ready: bool = False
    task: Task | None = None
    started: float = 0.0
    deadline: float = 0.0


class VerifierPool:
    """A fixed number of verifier worker processes with per-task hard deadlines."""

    def __init__(self, workers: int = 2, grace_s: float = 1.0, context: str = "forkserver",
                 preload: list[str] | None = None) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.n = workers
        self.grace_s = grace_s
        self.ctx = mp.get_context(context)
        if context == "forkserver":
            self.ctx.set_forkserver_preload(preload if preload is not None else PRELOAD)
        self._workers: list[_Worker] = []
        self._verifiers: dict[tuple, Any] = {}
        self._start_failures = 0
        self.kills = 0

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> "VerifierPool":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> None:
        while len(self._workers) < self.n:
            self._workers.append(self._spawn())

    def _spawn(self) -> _Worker:
        parent, child = self.ctx.Pipe(duplex=True)
        proc = self.ctx.Process(target=_worker_main, args=(child, os.getpid()), daemon=True)
        proc.start()
        child.close()
        return _Worker(proc=proc, conn=parent)

    def _replace(self, w: _Worker, kill: bool) -> None:
        if kill and w.proc.is_alive():
            try:
                os.kill(w.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        w.proc.join(timeout=5)
        w.conn.close()
        self._workers[self._workers.index(w)] = self._spawn()

    def close(self) -> None:
        """Idle workers are asked to exit; busy ones (an interrupted run) are killed at once, which takes their
        sandbox zygote and running program with them."""
        for w in self._workers:
            try:
                if w.task is None and w.ready:
                    w.conn.send(None)
                elif w.proc.is_alive():
                    w.proc.kill()
            except OSError:
                pass
        for w in self._workers:
            w.proc.join(timeout=1)
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(timeout=5)
            w.conn.close()
        self._workers = []

    # ------------------------------------------------------------ running
    def _verifier(self, name: str, options: dict | None) -> Any:
        key = (name, _options_key(options))
        if key not in self._verifiers:
            self._verifiers[key] = get_verifier(name, **(options or {}))
        return self._verifiers[key]

    def self_test(self, name: str, options: dict | None = None) -> int:
        """Run the verifier's probes in the pool's own workers (the environment the traces are judged in).
        Returns how many ran; raises SelfTestFailed at the first probe with the wrong status. Call it between
        runs, never while a `run` generator is still being consumed."""
        probes = list(self._verifier(name, options).probes())
        tasks = [(("probe", i), name, options or {}, p.problem, p.response) for i, p in enumerate(probes)]
        got = dict(self.run(tasks))
        for i, p in enumerate(probes):
            if got[("probe", i)].status != p.expect:
                raise SelfTestFailed(name, p.name, p.expect, got[("probe", i)])
        return len(probes)

    def _dispatch(self, w: _Worker, task: Task) -> bool:
        key, name, options, problem, _ = task
        v = self._verifier(name, options)
        problems = problem if isinstance(key, _Batch) else [problem]
        deadline = max(float(v.deadline_s(p)) for p in problems) + self.grace_s
        w.task, w.started = task, time.monotonic()
        w.deadline = w.started + deadline
        try:
            w.conn.send(task)
        except (OSError, ValueError):
            return False
        return True

    def _infra(self, task: Task, status: str, reason: str, elapsed: float) -> Iterator[tuple[Any, Verdict]]:
        """(key, verdict) for every task in `task` (one, or a batch's) that the worker could not judge."""
        key, name, options, _, _ = task
        v = self._verifier(name, options).verdict(status, reason=reason, duration_s=round(elapsed, 6))
        for k in (key if isinstance(key, _Batch) else [key]):
            yield k, v

    def _next(self, it: Iterator[Task], ahead: list[Task]) -> Task:
        """The next task to send: a single one, or consecutive tasks of one batching verifier as a batch."""
        task = ahead.pop() if ahead else next(it)
        size = batch_size(self._verifier(task[1], task[2]))  # unknown names fail here, in the parent, loudly
        if size == 1:
            return task
        group = [task]
        same = (task[1], _options_key(task[2]))
        for t in it:
            if (t[1], _options_key(t[2])) != same:
                ahead.append(t)
                break
            group.append(t)
            if len(group) == size:
                break
        return (_Batch(t[0] for t in group), task[1], task[2], [t[3] for t in group], [t[4] for t in group])

    def run(self, tasks: Iterable[Task]) -> Iterator[tuple[Any, Verdict]]:
        """Verify every task; yields (key, verdict) in completion order. Consumes `tasks` lazily."""
        self.start()
        it = iter(tasks)
        ahead: list[Task] = []  # a task read while gathering a batch that belongs to the next one
        exhausted = False
        while True:
            for w in list(self._workers):
                if exhausted:
                    break
                if w.ready and w.task is None:
                    try:
                        task = self._next(it, ahead)
                    except StopIteration:
                        exhausted = True
                        break
                    if not self._dispatch(w, task):
                        yield from self._infra(task, "error", "verifier worker died before the task", 0.0)
                        w.task = None
                        self._replace(w, kill=True)
            busy = [w for w in self._workers if w.task is not None]
            if exhausted and not busy:
                return
            watch = busy + [w for w in self._workers if not w.ready]
            now = time.monotonic()
            timeout = max(0.0, min((w.deadline for w in busy), default=now + 1.0) - now)
            for conn in wait([w.conn for w in watch], timeout=timeout):
                w = next((x for x in self._workers if x.conn is conn), None)
                if w is None:
                    continue
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    code = w.proc.exitcode if not w.proc.is_alive() else None
                    if w.task is not None:
                        elapsed = time.monotonic() - w.started
                        yield from self._infra(w.task, "error", f"verifier worker died (exit code {code})", elapsed)
                    elif not w.ready:
                        self._start_failures += 1
                        if self._start_failures >= 3:
                            raise PoolError(f"verifier workers exit before becoming ready (exit code {code})")
                    self._replace(w, kill=True)
                    continue
                if msg == _READY:
                    w.ready = True
                    self._start_failures = 0
                    continue
                key, verdict = msg
                w.task = None
                if isinstance(key, _Batch):
                    yield from zip(key, verdict)
                else:
                    yield key, verdict
            now = time.monotonic()
            for w in list(self._workers):
                if w.task is not None and now >= w.deadline:
                    task, elapsed = w.task, now - w.started
                    w.task = None
                    self.kills += 1
                    self._replace(w, kill=True)
                    yield from self._infra(task, "timeout", f"killed after {elapsed:.1f}s wall clock", elapsed)


def verify_all(tasks: Iterable[Task], workers: int = 2, grace_s: float = 1.0) -> dict[Any, Verdict]:
    """Convenience: run every task through a fresh pool and return {key: verdict}."""
    with VerifierPool(workers=workers, grace_s=grace_s) as pool:
        return dict(pool.run(tasks))
