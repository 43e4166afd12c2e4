"""The labeler behind `curate verify`: run verifiers over stored traces that lack a verdict, in worker processes.

- Which verifier: the one named (`--verifier`), else per problem: the verifier its metadata names (task
  loaders set metadata.verifier), else the one claiming its source, then its domain
  (`verifiers.registry.by_rules`); problems nothing claims are reported, not labeled.
- What: `store.unlabeled(name, version, where, relabel)`: samples without a verdict from that verifier
  *version* (a new version re-labels), filtered by an optional SQL predicate over the `traces` view.
- How: a `verifiers.pool.VerifierPool` (hard wall-clock kill per response), one batch of `batch_size` at a time;
  a verifier whose class sets `max_workers` (a reward model: 1) gets its own pool of that size.
- Self-tests: every verifier's probes (`Verifier.probes`) run in its pool before anything is labeled and again
  after every `self_test_every` batches (so also at the end). A batch's verdicts are written only once the
  self-test after it has passed; when one fails, labeling stops with a CurateError naming the verifier, the
  probe and the reason, and the failed stretch is discarded (still unlabeled: a re-run judges it again).
  A killed run loses at most `self_test_every` batches.
- The report counts statuses per verifier; `error_shares()` and `over_error_share(limit)` back
  `curate verify --max-error-share`.

    from curate.label import label_store
    report = label_store(TraceStore("store"), workers=4)
Test: `python -m pytest -q tests/test_label.py`.
"""
from __future__ import annotations

import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from curate.errors import CurateError, InputError, StoreError
from curate.records import Verdict
from curate.store import queries
from curate.store.sqlcheck import check_predicate
from verifiers.pool import PoolError, SelfTestFailed, VerifierPool
from verifiers.registry import (OptionsError, RegistryError, by_rules, canonical, get_verifier, names, option_names,
                                resolve, verifier_class)


@dataclass
class LabelReport:
    labeled: int = 0
    written: int = 0
    by_verifier: dict[str, Counter] = field(default_factory=dict)
    unclaimed: list[dict] = field(default_factory=list)  # (source, domain, named verifier) groups nothing labels
    killed: int = 0
    seconds: float = 0.0
    self_tests: int = 0  # probe rounds passed
    warnings: list[str] = field(default_factory=list)
    verifiers: list[str] = field(default_factory=list)  # the verifiers this run planned, in plan order

    def count(self, v: Verdict) -> None:
        self.labeled += 1
        self.by_verifier.setdefault(f"{v.verifier}@{v.version}", Counter())[v.status] += 1

    def error_shares(self) -> dict[str, float]:
        """verifier@version -> share of its verdicts in this run that are `error` (could not judge)."""
        return {k: c.get("error", 0) / total for k, c in self.by_verifier.items() if (total := sum(c.values()))}

    def over_error_share(self, limit: float) -> list[str]:
        """One line per verifier whose error share is above `limit`, e.g. "code@1: 12.0% errors (12 of 100)"."""
        out = []
        for k, share in sorted(self.error_shares().items()):
            if share > limit:
                c = self.by_verifier[k]
                out.append(f"{k}: {share:.1%} errors ({c.get('error', 0)} of {sum(c.values())})")
        return out

    def to_dict(self) -> dict:
        return {
            "labeled": self.labeled,
            "written": self.written,
            "by_verifier": {k: dict(c) for k, c in self.by_verifier.items()},
            "unclaimed": self.unclaimed,
            "killed_workers": self.killed,
            "seconds": round(self.seconds, 3),
            "per_second": round(self.labeled / self.seconds, 2) if self.seconds > 0 else None,
            "error_share": {k: round(v, 6) for k, v in self.error_shares().items()},
            "self_tests": self.self_tests,
            "warnings": self.warnings,
            "verifiers": self.verifiers,
        }


def plan(store: Any, verifier: str | None, where: str | None) -> tuple[list[tuple[str, str | None]], list[dict]]:
    """[(verifier name, predicate over `traces`)] to run, and the problem groups nothing can label.

    Without a named verifier, each (source, domain, metadata.verifier) group of problems goes to
    `verifiers.registry.by_rules`: the verifier the problem names (task loaders set metadata.verifier), else
    the one claiming its source, else its domain."""
    if where:  # the user's predicate alone, before it is combined with the group filters
        check_predicate(where, "traces", "predicate over `traces`")
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
    self_test_every: int = 1,
    planned: Callable[[int, str], None] | None = None,
    verifier_options: dict[str, dict] | None = None,
) -> LabelReport:
    """Label every sample missing a verdict; returns counts. `progress(n_done_in_step, verifier)` is called
    as verdicts complete, `planned(n, verifier)` once per verifier with how many samples it will judge.
    Raises InputError for an unknown verifier or a bad predicate, CurateError when a verifier fails its
    self-test (nothing judged since its last passing self-test is written). `options` go to every verifier,
    `verifier_options[name]` only to that one, over `options` (the operator's sandbox caps:
    `{"code": {"max_timeout_s": 20, "max_memory_mb": 2048}}`, see `code_caps`)."""
    check_args(store, workers, batch_size, self_test_every)
    t0 = time.monotonic()
    report = LabelReport()
    steps, versions, preload = prepare(store, verifier, where, options, report, verifier_options)
    per_name = {name: options_for(name, options, verifier_options) for name, _ in steps}
    try:
        with contextlib.ExitStack() as pools:
            # every pool starts first and every verifier proves itself before anything is labeled; a capped pool
            # (one reward-model worker) then waits, holding its one copy of the model, while the others label
            groups = [(pools.enter_context(VerifierPool(workers=processes, grace_s=grace_s, preload=preload)), group)
                      for processes, group in by_workers(steps, workers)]
            for pool, group in groups:
                for name, _ in group:
                    _self_test(pool, name, per_name[name], report)
            for pool, group in groups:
                for name, pred in group:
                    _label_step(store, pool, name, pred, versions[name], per_name[name], report, relabel=relabel,
                                batch_size=batch_size, self_test_every=self_test_every, progress=progress,
                                planned=planned)
            report.killed += sum(pool.kills for pool, _ in groups)
    except PoolError as e:
        raise CurateError(f"verifier workers cannot start: {e}") from None
    except SelfTestFailed as e:
        raise CurateError(str(e), hint=SELF_TEST_HINT) from None
    report.seconds = time.monotonic() - t0
    return report


def by_workers(steps: list, workers: int) -> list[tuple[int, list]]:
    """Steps (verifier name first) grouped by how many verifier processes may judge them, in plan order: `workers`,
    or fewer for a verifier whose class sets `max_workers` (a reward model asks for one: one copy of its model
    per labeling run), so the other verifiers of the same run keep every worker."""
    groups: dict[int, list] = {}
    for step in steps:
        cap = getattr(verifier_class(step[0]), "max_workers", None)
        groups.setdefault(min(workers, cap or workers), []).append(step)
    return list(groups.items())


def _label_step(store: Any, pool: VerifierPool, name: str, pred: str | None, version: str, opts: dict,
                report: LabelReport, *, relabel: bool, batch_size: int, self_test_every: int,
                progress: Callable[[int, str], None] | None, planned: Callable[[int, str], None] | None) -> None:
    """Judge one verifier's unlabeled samples, writing each stretch of batches after a passing self-test."""
    stretch: list[Verdict] = []
    on_plan = (lambda n: planned(n, name)) if planned else None
    batches = store.unlabeled(name, version, where=pred, relabel=relabel, batch_size=batch_size, on_plan=on_plan)
    for n, batch in enumerate(batches, 1):
        tasks = [(sid, name, opts, problem, text) for problem, sid, text in batch]
        for sid, verdict in pool.run(tasks):
            v = verdict.with_sample(sid)
            stretch.append(v)
            report.count(v)
            if progress:
                progress(1, name)
        if n % self_test_every == 0:
            report.written += _confirm_and_write(pool, store, name, opts, stretch, relabel, report)
            stretch = []
    if stretch:
        report.written += _confirm_and_write(pool, store, name, opts, stretch, relabel, report)


SELF_TEST_HINT = ("nothing judged since its last passing self-test was written; fix the environment "
                  "(docs/verifiers.md) and re-run: only unlabeled samples are judged")


def check_args(store: Any, workers: int, batch_size: int, self_test_every: int) -> None:
    """The checks every executor makes before labeling (InputError / StoreError)."""
    if workers < 1:
        raise InputError("--workers must be at least 1")
    if batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    if self_test_every < 1:
        raise InputError("--self-test-every must be at least 1")
    if not store.exists:
        raise StoreError(f"no store at {store.path}", hint="create one with `curate import` or `curate tasks add`")
    store.check_writable()  # verdicts must be storable before any verifier runs


def options_for(name: str, options: dict | None, verifier_options: dict[str, dict] | None) -> dict:
    """The options verifier `name` is built with: `options` (every verifier), then `verifier_options[name]`
    (names compare as the registry compares them: `Reward-Model` is `reward_model`)."""
    out = dict(options or {})
    for key, opts in (verifier_options or {}).items():
        if canonical(key) == canonical(name):
            out.update(opts or {})
    return out


def code_caps(max_timeout_s: float | None = None, max_memory_mb: int | None = None) -> dict[str, dict]:
    """`verifier_options` for the operator's caps on the code sandbox (`curate verify --code-max-timeout-s
    --code-max-memory-mb`): problem data may lower the per-test limits, never raise them above these. The
    per-test defaults (6 s, 1024 MB) stay as they are unless a cap is below them."""
    opts: dict[str, Any] = {}
    if max_timeout_s is not None:
        if not max_timeout_s > 0:
            raise InputError(f"the code sandbox's time cap must be positive, got {max_timeout_s:g}")
        opts["max_timeout_s"] = float(max_timeout_s)
        opts["timeout_s"] = min(6.0, float(max_timeout_s))
    if max_memory_mb is not None:
        if not max_memory_mb > 0:
            raise InputError(f"the code sandbox's memory cap must be positive, got {max_memory_mb}")
        opts["max_memory_mb"] = int(max_memory_mb)
        opts["memory_mb"] = min(1024, int(max_memory_mb))
    return {"code": opts} if opts else {}


OPTIONS_HINT = "`curate verify --option NAME.KEY=VALUE` sets a verifier's options (docs/verifiers.md)"


def check_options(verifier_options: dict[str, dict] | None) -> None:
    """InputError naming `NAME.KEY` for options given to a verifier that is not registered, or with a key its
    constructor does not take; checked for every named verifier, run or not, so a typo never passes silently."""
    for key, opts in (verifier_options or {}).items():
        first = next(iter(opts or {}), "")
        try:
            name = resolve(key)
            takes = option_names(verifier_class(name))
        except RegistryError as e:
            raise InputError(f"verifier option {key}.{first}: {e}",
                             hint="`curate verifiers list` shows the registered verifiers") from None
        for k in opts or {}:
            if takes is not None and k not in takes:
                raise InputError(f"verifier option {key}.{k}: verifier {name!r} takes no option {k!r} "
                                 f"(its options: {', '.join(sorted(takes)) or 'none'})", hint=OPTIONS_HINT)


def _build(name: str, opts: dict) -> Any:
    """The verifier `name` built with `opts`; options it refuses are an InputError that names the options given,
    and one it needs but lacks is named in a hint that says how `curate verify` sets it."""
    verifier_class(name)  # a verifier that cannot load is a registry error, not a bad option
    given = f" ({', '.join(f'{k}={v!r}' for k, v in opts.items())})" if opts else ""
    try:
        return get_verifier(name, **opts)
    except OptionsError as e:
        hint = f"set it with `curate verify --option {name}.{e.missing}=VALUE`" if e.missing else OPTIONS_HINT
        raise InputError(f"verifier {name}{given}: {e.detail}", hint=hint) from None
    except RegistryError as e:
        if not (opts and isinstance(e.__cause__, TypeError)):  # a verifier broken without options: not an option's fault
            raise
        raise InputError(f"verifier {name}{given}: {e.__cause__}", hint=OPTIONS_HINT) from None


def prepare(store: Any, verifier: str | None, where: str | None, options: dict | None,
            report: LabelReport, verifier_options: dict[str, dict] | None = None,
            ) -> tuple[list[tuple[str, str | None]], dict[str, str], list[str]]:
    """(steps, version per verifier, modules to preload into verifier workers); records unclaimed groups."""
    try:
        steps, report.unclaimed = plan(store, verifier, where)
        report.verifiers = [name for name, _ in steps]
        check_options(verifier_options)
        instances = {name: _build(name, options_for(name, options, verifier_options)) for name, _ in steps}
    except RegistryError as e:
        raise InputError(str(e), hint="`curate verifiers list` shows the registered verifiers") from None
    except (TypeError, ValueError) as e:  # an option the verifier does not take, or a bad value
        raise InputError(f"verifier options: {e}") from None
    # preload only what this run needs into the forkserver (a countdown run should not import sympy)
    preload = ["verifiers.pool"] + sorted({type(v).__module__ for v in instances.values()})
    if "verifiers.math" in preload:
        preload.append("verifiers._warm_math")
    return steps, {name: v.version for name, v in instances.items()}, preload


def count_self_test(report: LabelReport, name: str, probes: int) -> None:
    """Record one passed self-test of `name` that ran `probes` probes (warning once when it declares none)."""
    if probes == 0:
        warning = f"verifier {name!r} declares no self-test (probes()): nothing checks that it can judge here"
        if warning not in report.warnings:
            report.warnings.append(warning)
    report.self_tests += 1


def _self_test(pool: VerifierPool, name: str, options: dict | None, report: LabelReport) -> None:
    count_self_test(report, name, pool.self_test(name, options))


def _confirm_and_write(pool: VerifierPool, store: Any, name: str, options: dict | None, stretch: list[Verdict],
                       relabel: bool, report: LabelReport) -> int:
    """Write a stretch of verdicts only after the verifier passes its self-test again (raises if it does not)."""
    _self_test(pool, name, options, report)
    return store.add_verdicts(stretch, replace=relabel)


def verify_pairs(pairs: Iterable[tuple[Any, Any, str]], verifier: str, workers: int = 2,
                 options: dict | None = None) -> dict[Any, Verdict]:
    """Verify (key, problem, text) triples outside any store (benchmarks, notebooks). The verifier's self-test
    runs before and after; CurateError when it fails (the verdicts are then not returned)."""
    try:
        with VerifierPool(workers=workers) as pool:
            pool.self_test(verifier, options)
            out = dict(pool.run((k, verifier, options or {}, p, t) for k, p, t in pairs))
            pool.self_test(verifier, options)
            return out
    except SelfTestFailed as e:
        raise CurateError(str(e)) from None
