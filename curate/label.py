"""The labeler behind `curate verify`: run verifiers over stored traces that lack a verdict, in worker processes.

- Which verifier: the one named (`--verifier`), else per problem: the verifier its metadata names (task
  loaders set metadata.verifier), else the one claiming its source, then its domain
  (`verifiers.registry.by_rules`); problems nothing claims are reported, not labeled.
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
from curate.store import queries
from verifiers.pool import PoolError, VerifierPool
from verifiers.registry import RegistryError, by_rules, get_verifier, names, resolve


@dataclass
class LabelReport:
    labeled: int = 0
    written: int = 0
    by_verifier: dict[str, Counter] = field(default_factory=dict)
    unclaimed: list[dict] = field(default_factory=list)  # (source, domain, named verifier) groups nothing labels
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


def plan(store: Any, verifier: str | None, where: str | None) -> tuple[list[tuple[str, str | None]], list[dict]]:
    """[(verifier name, predicate over `traces`)] to run, and the problem groups nothing can label.

    Without a named verifier, each (source, domain, metadata.verifier) group of problems goes to
    `verifiers.registry.by_rules`: the verifier the problem names (task loaders set metadata.verifier), else
    the one claiming its source, else its domain."""
    if verifier:
        return [(resolve(verifier), f"({where})" if where else None)], []
    members: dict[str, list[dict]] = {}
    unclaimed = []
    for g in queries.problem_groups(store):
        name = by_rules(g["source"], g["domain"], g["named"])
        if name is None or name not in names():
            unclaimed.append({"source": g["source"], "domain": g["domain"], "verifier": g["named"]})
            continue
        members.setdefault(name, []).append(g)
    out = [(name, queries.group_predicate(groups, where)) for name, groups in members.items()]
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
    store.check_writable()  # verdicts must be storable before any verifier runs
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
