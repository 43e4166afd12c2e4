"""`curate eval`: each checkpoint on each benchmark of a suite, through the existing stages.

For one checkpoint and one benchmark:
1. plan: the benchmark's problems (stored eval-split problems, or the exact set `auto_add` builds) and the
   ids of its n samples per problem (`Sample.identity`, the same ids generation will give them), recorded in
   `eval_samples` before anything is generated;
2. generate: `curate.generate.runner.run` over exactly those problems; it skips stored samples, flushes
   small shards and commits as it goes, so a killed eval loses at most one flushed batch;
3. label: `curate.label.label_store` with the benchmark's verifier, over exactly those samples; labeled ones
   are skipped;
4. score: `evals` rows per metric with a bootstrap CI over problems, and behaviour rows (response tokens,
   truncation, repetition, backtracking and verification markers) next to them.
A rerun plans the same ids, finds them stored and judged, and only rewrites the (identical) score rows; the
model is never loaded when nothing is missing. A benchmark with samples missing or verdicts that are
`error` is written as incomplete: no value, never a lower number. Prompts the server refuses (a client error
such as HTTP 400 for a prompt over the context length) leave their samples missing: the benchmark is stored
as incomplete with the reasons in `details.refused`, and the next benchmark is evaluated.
Test: tests/test_evaluate.py.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from curate.errors import BackendError, InputError
from curate.evaluate import metrics as M
from curate.evaluate.suite import Benchmark, Suite, SUITE_DIR
from curate.evaluate.targets import Target
from curate.generate.runner import RunConfig, generator_identity
from curate.records import Sample
from curate.scale import Executor
from curate.store import evals as E

JUDGED = ("correct", "incorrect", "no_answer", "timeout")  # `error`: the verifier could not judge
BEHAVIOUR = ("mean_tokens", "p90_tokens", "truncation_rate", "repetition", "backtracks", "verifications")


@dataclass
class EvalOptions:
    backend: str = "hf"
    backend_options: dict = field(default_factory=dict)
    revision: str | None = None
    workers: int = 2  # verifier processes
    judge: str | None = None  # OpenAI-compatible URL of a harm judge for safety benchmarks
    judge_model: str | None = None
    progress: bool = True
    flush_every: int = 64  # samples per shard while evaluating: a kill loses at most this many
    executor: Executor = field(default_factory=Executor)  # where generation and labeling run


@dataclass
class EvalReport:
    targets: int = 0
    generated: int = 0
    labeled: int = 0
    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # "run step N benchmark: why", for a non-zero exit
    refused: int = 0  # of those, benchmarks where the server refused prompts (a rerun is refused again)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class LazyBackend:
    """A BackendSpec built on the first request that needs generating, and its identity known without loading it.

    The identity comes from the backend class and its validated config (`BackendSpec.declared_identity`), so
    sample ids match what the real backend would give; its model is the checkpoint's stable identity, not its
    current path. `sampling` is set per benchmark before generating."""

    def __init__(self, kind: str, target: Target, options: EvalOptions) -> None:
        from curate.generate.spec import BackendSpec

        opts = dict(options.backend_options)
        if target.endpoint:
            opts["base_url"] = target.endpoint
        self.spec = BackendSpec("openai" if target.endpoint else kind, target.model_ref, None, opts, options.revision)
        self.identity = self.spec.declared_identity(model=target.identity)
        self.name = self.spec.name
        self.sampling = None
        self._real: Any = None
        self.skipped: list[tuple[str, str]] = []  # refusals from Ray workers' backends (the executor fills it)

    def generate(self, requests):
        if self._real is None:
            self._real = dataclasses.replace(self.spec, sampling=self.sampling).build()
        self._real.sampling = self.sampling
        return self._real.generate(requests)

    def take_refusals(self) -> list[str]:
        """Why the server refused requests since the last call (a backend that skips per-prompt client errors,
        e.g. HTTP 400 for a prompt over the context length, lists them in `skipped`; on Ray the executor hands
        the workers' lists back in this one's `skipped`); emptied as it is read."""
        out = []
        for skipped in (self.skipped, getattr(self._real, "skipped", None)):
            if skipped:
                out += [why for _, why in skipped]
                skipped.clear()
        return out

    def close(self) -> None:
        if self._real is not None:
            self._real.close()
            self._real = None


# ------------------------------------------------------------------ planning


def _resolve_path_options(options: dict) -> dict:
    """A relative `path` in a shipped suite's auto_add options names a file shipped beside the suites."""
    out = dict(options)
    p = out.get("path")
    if isinstance(p, str) and p and not Path(p).is_absolute() and not Path(p).exists() and (SUITE_DIR / p).exists():
        out["path"] = str(SUITE_DIR / p)
    return out


def benchmark_problems(store, bench: Benchmark, notes: list[str]) -> list:
    """The benchmark's problems, in id order; auto-added ones are stored first. Raises InputError when none."""
    from curate.tasks import iter_problems

    if bench.auto_add is not None:
        a = bench.auto_add
        opts = _resolve_path_options(a.options)
        problems = sorted({p.id: p for p in iter_problems(bench.task, opts, a.size, a.seed, "eval")}.values(),
                          key=lambda p: p.id)
        if not problems:
            raise InputError(f"benchmark {bench.name}: task {bench.task} gave no problems")
        store.add_problems(problems)  # idempotent by id
        clash = E.train_split_ids(store, [p.id for p in problems])
        if clash:  # the same problem is already training data: scoring it would measure memorisation
            notes.append(f"benchmark {bench.name}: {len(clash)} of its problems are stored as train problems; left out")
            problems = [p for p in problems if p.id not in clash]
    else:
        problems = store.problems(E.benchmark_predicate(bench.problem_source, bench.where)) if store.exists else []
    if bench.limit is not None:
        problems = problems[: bench.limit]
    if not problems:
        from curate.evaluate.hints import add_hint

        raise InputError(f"benchmark {bench.name}: no eval-split problems with source '{bench.problem_source}' in {store.path}",
                         hint=add_hint(bench.task))
    return problems


def _key(t: Target, suite: Suite, bench: Benchmark, settings: str) -> dict:
    return {"run": t.run, "checkpoint": t.checkpoint, "step": t.step, "suite": suite.name, "benchmark": bench.name,
            "settings_hash": settings}


def _plan(store, key: dict, problems: list, backend: LazyBackend, cfg: RunConfig) -> int:
    gen = generator_identity(backend.identity, cfg)
    rows = [{**key, "sample_id": Sample.identity(p.id, gen, i, cfg.seed), "problem_id": p.id, "sample_index": i}
            for p in problems for i in range(cfg.n)]
    E.plan_samples(store, rows)
    return len(rows)


# ------------------------------------------------------------------ scoring


def score_rows(outcomes: list[dict], bench: Benchmark, key: dict, base: dict) -> list[dict]:
    """Score and behaviour rows for one benchmark from its planned samples' outcomes."""
    planned = len(outcomes)
    missing = sum(not o["generated"] for o in outcomes)
    unjudged = sum(o["generated"] and o["status"] is None for o in outcomes)
    errors = sum(o["status"] == "error" for o in outcomes)
    counts: dict[str, int] = {}
    for o in outcomes:
        s = o["status"] or ("missing" if not o["generated"] else "unjudged")
        counts[s] = counts.get(s, 0) + 1
    complete = planned > 0 and missing == 0 and unjudged == 0 and errors == 0
    by_problem: dict[str, list[dict]] = {}
    for o in outcomes:
        by_problem.setdefault(o["problem_id"], []).append(o)
    details = {"status_counts": counts, "missing_samples": missing, "unjudged": unjudged, "errors": errors,
               "settings": bench.model_dump(mode="json")}
    rows = []
    for metric in bench.metric_names():
        kind = M.parse_metric(metric)[0]
        flag = (lambda o: o["status"] == "incorrect") if kind == "asr" else (lambda o: o["status"] == "correct")
        ordered = [sorted(v, key=lambda o: o["sample_index"]) for v in by_problem.values()]
        per_problem = ([[o["score"] for o in v] for v in ordered] if kind in M.UNSCALED
                       else [[(flag(o), o["answer"]) for o in v] for v in ordered])
        value = lo = hi = None
        extra: dict[str, Any] = {}
        if kind in M.UNSCALED:
            extra["scale"] = "the scorer's own units (a reward model's reward), not percent"
        if complete:
            fn = M.metric_fn(metric, _equivalence(bench) if kind == "maj" else None)
            value = fn(per_problem)
            lo, hi = M.bootstrap_ci(per_problem, fn)
            # every metric is a mean over problems: each problem's own value (0-1; a reward as it is) lets
            # `evals compare` pair them
            div = 1.0 if kind in M.UNSCALED else 100.0
            extra["per_problem"] = {pid: round(fn([pp]) / div, 6) for pid, pp in zip(by_problem, per_problem)}
        rows.append({**key, **base, "metric": metric, "kind": "score", "value": value, "ci_low": lo, "ci_high": hi,
                     "n_problems": len(by_problem), "n_samples": planned - missing - unjudged - errors,
                     "complete": complete, "details": {**details, **extra}})
    gen = [o for o in outcomes if o["generated"]]
    tokens = [o["completion_tokens"] if o["completion_tokens"] is not None else (o["text_chars"] or 0) / 4 for o in gen]

    def mean(xs):
        xs = [x for x in xs if x is not None]
        return sum(xs) / len(xs) if xs else None

    behaviour = {
        "mean_tokens": mean(tokens), "p90_tokens": M.percentile(tokens, 0.9) if tokens else None,
        "truncation_rate": 100.0 * mean([float(bool(o["truncated"] or o["finish_reason"] == "length")) for o in gen]) if gen else None,
        "repetition": mean([o["repetition_score"] for o in gen]),
        "backtracks": mean([o["backtrack_count"] for o in gen]),
        "verifications": mean([o["verify_count"] for o in gen]),
    }
    for m in BEHAVIOUR:
        rows.append({**key, **base, "metric": m, "kind": "behaviour", "value": behaviour[m], "ci_low": None,
                     "ci_high": None, "n_problems": len(by_problem), "n_samples": len(gen), "complete": complete,
                     "details": {"tokens_estimated": any(o["completion_tokens"] is None for o in gen)}})
    return rows


def _equivalence(bench: Benchmark) -> Callable[[str, str], bool]:
    """The benchmark verifier's own answer equivalence, so maj@k votes on answers, not spellings."""
    from verifiers.registry import get_verifier

    return get_verifier(bench.verifier, **dict(bench.verifier_options)).equivalent


# ------------------------------------------------------------------ the stage


def _judge(bench: Benchmark, opts: EvalOptions) -> tuple[str, dict]:
    if opts.judge and M.parse_metric(bench.metric_names()[0])[0] == "asr":
        if not opts.judge_model:
            raise InputError("--judge needs --judge-model (the served judge model's name)")
        return "harm_judge", {"backend": "curate.evaluate.judge:openai_judge",
                              "backend_options": {"base_url": opts.judge, "model": opts.judge_model}}
    return bench.verifier, dict(bench.verifier_options)


def _generate(store, backend: LazyBackend, target: Target, key: dict, cfg: RunConfig, opts: EvalOptions):
    """The planned problems' missing samples, here or on Ray; a backend failure names the checkpoint."""
    where = E.planned_problem_predicate(key)
    try:
        spec = dataclasses.replace(backend.spec, sampling=cfg.sampling)
        return opts.executor.generate(store, spec, where, cfg, identity=backend.identity, backend=backend,
                                      progress=opts.progress)
    except BackendError as e:
        raise BackendError(f"{target.checkpoint}: {e.message}", hint=e.hint) from None


def _label(store, key: dict, verifier: str, vopts: dict, opts: EvalOptions) -> int:
    """Judge the planned samples that have no verdict from this verifier yet; returns how many were judged."""
    return opts.executor.label_store(store, verifier=verifier, where=E.planned_sample_predicate(key), options=vopts,
                                     workers=opts.workers).labeled


def verifier_version(bench: Benchmark, opts: EvalOptions) -> tuple[str, dict, str]:
    """The benchmark's verifier (or judge), its options and version; InputError when it cannot be built (an
    unknown name, or options it cannot use, such as a reward model without its path)."""
    from verifiers.registry import RegistryError, get_verifier

    verifier, vopts = _judge(bench, opts)
    try:
        return verifier, vopts, get_verifier(verifier, **vopts).version
    except RegistryError as e:
        hint = "`curate verifiers list` shows the registered verifiers" if "unknown verifier" in str(e) else None
        if getattr(e, "missing", None):
            hint = f"set it with `--set {bench.name}.verifier_options.{e.missing}=VALUE` or in the suite file"
        raise InputError(f"benchmark {bench.name}: {e}", hint=hint) from None


def evaluate_target(store, target: Target, suite: Suite, opts: EvalOptions, report: EvalReport,
                    say: Callable[[str], None] = lambda s: None) -> None:
    from verifiers.registry import verifier_class

    backend = LazyBackend(opts.backend, target, opts)
    backend_id = {"backend": backend.name, "options": backend.identity.params}
    lineage = {k: target.lineage.get(k) for k in E.LINEAGE_COLUMNS}
    try:
        for bench in suite.benchmarks:
            verifier, vopts, version = verifier_version(bench, opts)
            settings = bench.settings_hash({**backend_id, "judge": [verifier, vopts.get("backend_options")]})
            key = _key(target, suite, bench, settings)
            problems = benchmark_problems(store, bench, report.notes)
            cfg = RunConfig(n=bench.n, seed=bench.seed, sampling=bench.sampling.params(), template=bench.template,
                            system=bench.system, flush_every=opts.flush_every, flush_s=15.0, commit_s=60.0)
            backend.sampling = cfg.sampling
            _plan(store, key, problems, backend, cfg)
            refused: list[str] = []
            try:
                report.generated += _generate(store, backend, target, key, cfg, opts).generated
            except BackendError:
                # a refused prompt is refused again on every rerun: keep what was generated, store the
                # benchmark as incomplete with the reason and go on with the next one
                refused = backend.take_refusals()
                if not refused:
                    raise
            outcomes = E.planned_outcomes(store, key, verifier, version)
            labeled = 0
            if any(o["generated"] and o["status"] is None for o in outcomes):  # no verifier pool when all are judged
                if getattr(verifier_class(verifier), "loads_model", False):
                    backend.close()  # the scorer loads its own model: free the policy's memory first (reloaded on demand)
                labeled = _label(store, key, verifier, vopts, opts)
                outcomes = E.planned_outcomes(store, key, verifier, version)
            report.labeled += labeled
            base = {"model": target.identity, "provenance": "curate", **lineage}
            rows = score_rows(outcomes, bench, key, base)
            if refused:
                for r in rows:
                    r["details"]["refused"] = {"samples": len(refused), "reasons": sorted(set(refused))[:5]}
            E.write_evals(store, rows)
            report.rows += [r for r in rows if r["kind"] == "score"]
            head = rows[0]
            if not head["complete"]:
                d = head["details"]
                why = (f"the server refused {len(refused)} samples ({sorted(set(refused))[0]})" if refused else
                       f"{d['missing_samples']} samples missing, {d['unjudged']} unjudged, {d['errors']} verdicts are errors")
                report.incomplete.append(f"{target.run} step {target.step} {bench.name}: {why}")
                report.refused += bool(refused)
            shown = "incomplete" if head["value"] is None else f"{head['value']:.1f}"
            say(f"{target.run} step {target.step if target.step is not None else '-'} {bench.name}: "
                f"{head['metric']} {shown} ({sum(o['generated'] for o in outcomes)} of {len(outcomes)} samples stored, "
                f"{labeled} labeled)")
    finally:
        backend.close()


def evaluate(store, targets: list[Target], suite: Suite, opts: EvalOptions,
             say: Callable[[str], None] = lambda s: None) -> EvalReport:
    """Evaluate every target on every benchmark of the suite, one after another; see the module docstring."""
    for bench in suite.benchmarks:  # every verifier can be built before anything is written
        verifier_version(bench, opts)
    if not store.exists:
        store.init()
    t0 = time.perf_counter()
    report = EvalReport(targets=len(targets))
    with opts.executor.session():
        for t in targets:
            evaluate_target(store, t, suite, opts, report, say)
    report.seconds = time.perf_counter() - t0
    return report
