"""The labeler behind `curate verify`: run verifiers over stored traces that lack a verdict, in worker processes.

- Which verifier: the one named (`--verifier`), else per problem from its source, then its domain
  (`verifiers.registry.verifier_for_source`); problems nothing claims are counted as skipped.
- What: `store.unlabeled(name, version, where, relabel)`: samples without a verdict from that verifier
  *version* (a new version re-labels), filtered by an optional SQL predicate over the `traces` view.
- How: a `verifiers.pool.VerifierPool` (hard wall-clock kill per response), verdicts flushed to the store
  every `batch_size` completions, so a killed run loses at most one batch and a re-run labels only the rest.

    from curate.label import label_store
    report = label_store(TraceStore("store"), workers=4)
Test: `python -m pytest -q tests/test_label.py`.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from curate.errors import CurateError, InputError, StoreError
from curate.records import Verdict
from verifiers.pool import PoolError, VerifierPool
from verifiers.registry import RegistryError, get_verifier, verifier_for_source


@dataclass
class LabelReport:
    labeled: int = 0
    written: int = 0
    by_verifier: dict[str, Counter] = field(default_factory=dict)
    unclaimed: list[dict] = field(default_factory=list)  # (source, domain) pairs no verifier handles
    killed: int = 0
    seconds: float = 0.0

    def count(self, v: Verdict) -> None:
        self.labeled += 1
        self.by_verifier.setdefault(f"{v.verifier}@{v.version}", Counter())[v.status] += 1

    def to_dict(self) -> dict:
        return {
            "labeled": self.labeled,
            "written": self.written,
            "by_verifier": {k: dict(c) for k, c in self.by_verifier.items()},
            "unclaimed": self.unclaimed,
            "killed_workers": self.killed,
            "seconds": round(self.seconds, 3),
            "per_second": round(self.labeled / self.seconds, 2) if self.seconds > 0 else None,
        }


def _lit(s: str) -> str:
    return "'" + str(s).replace("'", "''") + "'"


def plan(store: Any, verifier: str | None, where: str | None) -> tuple[list[tuple[str, str | None]], list[dict]]:
    """[(verifier name, predicate over `traces`)] to run, and the unclaimed (source, domain) pairs."""
    user = f"({where})" if where else None
    if verifier:
        return [(verifier, user)], []
    pairs = {(r["source"], r["domain"]) for r in store.stats().get("problems", [])}
    groups: dict[str, list[tuple[str, str]]] = {}
    unclaimed = []
    for source, domain in sorted(pairs):
        name = verifier_for_source(source, domain)
        if name is None:
            unclaimed.append({"source": source, "domain": domain})
        else:
            groups.setdefault(name, []).append((source, domain))
    out = []
    for name, members in groups.items():
        pred = " OR ".join(f"(source = {_lit(s)} AND domain = {_lit(d)})" for s, d in members)
        out.append((name, f"({pred})" + (f" AND {user}" if user else "")))
    return out, unclaimed


def label_store(
    store: Any,
    verifier: str | None = None,
    workers: int = 2,
    relabel: bool = False,
    where: str | None = None,
    batch_size: int = 500,
    options: dict | None = None,
    progress: Callable[[int, str], None] | None = None,
    grace_s: float = 1.0,
) -> LabelReport:
    """Label every sample missing a verdict; returns counts. `progress(n_done_in_step, verifier)` is called
    as verdicts complete. Raises InputError for an unknown verifier or a bad predicate."""
    if workers < 1:
        raise InputError("--workers must be at least 1")
    if batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    if not store.exists:
        raise StoreError(f"no store at {store.path}", hint="create one with `curate import` or `curate tasks add`")
    t0 = time.monotonic()
    report = LabelReport()
    try:
        steps, report.unclaimed = plan(store, verifier, where)
        instances = {name: get_verifier(name, **(options or {})) for name, _ in steps}
        versions = {name: v.version for name, v in instances.items()}
    except RegistryError as e:
        raise InputError(str(e), hint="`curate verifiers list` shows the registered verifiers") from None
    try:
        # preload only what this run needs into the forkserver (a countdown run should not import sympy)
        preload = ["verifiers.pool"] + sorted({type(v).__module__ for v in instances.values()})
        if "verifiers.math" in preload:
            preload.append("verifiers._warm_math")
        with VerifierPool(workers=workers, grace_s=grace_s, preload=preload) as pool:
            for name, pred in steps:
                tasks = _tasks(store, name, versions[name], pred, relabel, batch_size, options)
                pending: list[Verdict] = []
                for sid, verdict in pool.run(tasks):
                    v = verdict.with_sample(sid)
                    pending.append(v)
                    report.count(v)
                    if progress:
                        progress(1, name)
                    if len(pending) >= batch_size:
                        report.written += store.add_verdicts(pending, replace=relabel)
                        pending = []
                if pending:
                    report.written += store.add_verdicts(pending, replace=relabel)
            report.killed = pool.kills
    except PoolError as e:
        raise CurateError(f"verifier workers cannot start: {e}") from None
    report.seconds = time.monotonic() - t0
    return report


def _tasks(store: Any, name: str, version: str, pred: str | None, relabel: bool, batch_size: int,
           options: dict | None) -> Iterator[tuple]:
    for batch in store.unlabeled(name, version, where=pred, relabel=relabel, batch_size=batch_size):
        for problem, sid, text in batch:
            yield (sid, name, options or {}, problem, text)


def verify_pairs(pairs: Iterable[tuple[Any, Any, str]], verifier: str, workers: int = 2,
                 options: dict | None = None) -> dict[Any, Verdict]:
    """Verify (key, problem, text) triples outside any store (benchmarks, notebooks)."""
    with VerifierPool(workers=workers) as pool:
        return dict(pool.run((k, verifier, options or {}, p, t) for k, p, t in pairs))
