"""The Verifier base class: a name, a version, what it handles, and `verify(problem, response) -> Verdict`.

Subclasses implement `check`; `verify` wraps it so a verifier never raises: an exception inside `check` is
an `error` verdict (an infrastructure failure, re-run later, never trained on), a soft timeout
(`soft_timeout_s`, covering answer extraction too) is a `timeout` verdict, and every verdict carries its duration. Verifiers run in worker processes (see
`verifiers.pool`), which add a hard wall-clock kill on top of the soft timeout here.

Self-test: every verifier declares `probes()`, known responses to known problems with the status they must get
(at least one `correct` and one `incorrect`). The labeler's pool runs them when it starts, every N batches and
at the end, in the same worker processes that judge the traces, so a broken environment (a sandbox its user
cannot enter, a missing interpreter, a dead judge) stops labeling instead of mislabeling a store.
"""
from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

from verifiers.verdict import Verdict, make_verdict


class VerifyTimeout(BaseException):
    """Raised by `soft_timeout`. A BaseException on purpose: libraries that `except Exception` (math-verify,
    sympy helpers) cannot swallow it and turn a timeout into a wrong answer."""


@contextmanager
def soft_timeout(seconds: float | None) -> Iterator[None]:
    """Raise VerifyTimeout after `seconds` of wall time, using SIGALRM where that is possible (main thread).

    Outside the main thread this is a no-op: the worker pool's hard kill is then the only limit. It cannot
    interrupt a long C call (a huge integer power); that is also what the hard kill is for.
    """
    if not seconds or seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):  # noqa: ARG001
        raise VerifyTimeout(f"exceeded {seconds:g}s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass(frozen=True)
class ProbeProblem:
    """The problem of a self-test probe (what a verifier may read from a problem)."""

    prompt: str = ""
    reference: Any = None
    metadata: dict = field(default_factory=dict, hash=False)
    source: str = ""
    domain: str = ""


@dataclass(frozen=True)
class Probe:
    """A known response to a known problem and the status the verifier must give it."""

    name: str
    problem: ProbeProblem
    response: str
    expect: str  # "correct" or "incorrect"


class Verifier:
    """Base class for verifiers. Register subclasses under the `curate.verifiers` entry-point group.

    Class attributes:
      name, version  identify the verdicts it writes (a new version re-labels on the next `curate verify`)
      domains, sources  problems it handles when no verifier is named (source beats domain)
      timeout_s      soft per-response budget; `deadline_s` is what the pool's hard kill waits for
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    domains: ClassVar[tuple[str, ...]] = ()
    sources: ClassVar[tuple[str, ...]] = ()
    timeout_s: float = 10.0

    def check(self, problem: Any, response: str) -> Verdict:  # pragma: no cover - abstract
        raise NotImplementedError

    def verify(self, problem: Any, response: str) -> Verdict:
        """Judge `response` to `problem`. Never raises (except KeyboardInterrupt/SystemExit)."""
        t0 = time.perf_counter()
        try:
            if not isinstance(response, str):
                v = self.verdict("error", reason=f"response is {type(response).__name__}, not str")
            else:
                with soft_timeout(self.soft_timeout_s(problem)):  # extraction included: it is part of check
                    v = self.check(problem, response)
        except VerifyTimeout as e:
            v = self.verdict("timeout", reason=f"soft timeout: {e}")
        except RecursionError:
            v = self.verdict("error", reason="RecursionError inside the verifier")
        except MemoryError:
            v = self.verdict("error", reason="MemoryError inside the verifier")
        except Exception as e:  # a verifier bug or bad reference data: infrastructure, not a wrong answer
            v = self.verdict("error", reason=f"{type(e).__name__}: {_safe_str(e)}")
        return Verdict(**{**v.to_dict(), "duration_s": round(time.perf_counter() - t0, 6)})

    __call__ = verify

    def probes(self) -> list[Probe]:
        """The self-test: >= 1 probe expecting `correct` and >= 1 expecting `incorrect`. Plugins should declare
        theirs; one without probes is labeled with a warning (nothing proves its environment works)."""
        return []

    def soft_timeout_s(self, problem: Any) -> float | None:  # noqa: ARG002 - subclasses may size it per problem
        """Seconds after which `verify` interrupts `check` (answer extraction included) with a `timeout` verdict
        (SIGALRM: main thread only, and not inside one long C call; the pool's hard kill covers those). None:
        only the hard kill. Default: `timeout_s`, which is also the default hard deadline."""
        return float(self.timeout_s) if self.timeout_s else None

    def equivalent(self, a: str, b: str) -> bool:
        """Whether two extracted answers to the same problem are the same answer (maj@k votes on these
        classes). Default: equal after trimming whitespace; verifiers with a notion of equivalence override it."""
        return str(a).strip() == str(b).strip()

    def deadline_s(self, problem: Any) -> float:  # noqa: ARG002 - subclasses size it per problem
        """Wall-clock seconds after which a worker running this verifier is killed."""
        return float(self.timeout_s)

    def verdict(self, status: str, **kw: Any) -> Verdict:
        return make_verdict(status, self.name, self.version, **kw)

    def describe(self) -> dict:
        doc = (type(self).__doc__ or "").strip().splitlines()
        return {
            "name": self.name,
            "version": self.version,
            "domains": list(self.domains),
            "sources": list(self.sources),
            "timeout_s": self.timeout_s,
            "description": doc[0] if doc else "",
        }


def _safe_str(e: BaseException) -> str:
    try:
        return str(e)[:300]
    except Exception:  # str() of some sympy objects can itself fail or hang; never let it escape
        return "<unprintable>"


def reference_field(problem: Any, key: str, default: Any = None) -> Any:
    """`problem.reference[key]` when the reference is a dict, else `problem.metadata[key]`, else default."""
    ref = getattr(problem, "reference", None)
    if isinstance(ref, dict) and key in ref:
        return ref[key]
    meta = getattr(problem, "metadata", None) or {}
    if isinstance(meta, dict) and key in meta:
        return meta[key]
    return default
