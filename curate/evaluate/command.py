"""What `curate eval` does with its options: load the suite with overrides, resolve the targets, then evaluate
them here, or fan them out to one `curate eval` process per checkpoint (`--jobs`, each pinned to a GPU from
`--gpus`), and optionally run lm-evaluation-harness tasks on the same checkpoints.

A fanned-out child is the same command narrowed to one step (`curate eval RUN_DIR --steps S`), so its rows,
run name and lineage are exactly those of a sequential run, and any child can be rerun by hand.
"""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Callable

from curate.child import Pool, curate_argv, error_line
from curate.errors import CurateError, InputError
from curate.generate import BACKENDS
from curate.evaluate.runner import EvalOptions, EvalReport, evaluate
from curate.evaluate.suite import load_suite
from curate.evaluate.targets import Target, resolve_targets


def parse_steps(text: str | None) -> list[int] | None:
    if text is None or not text.strip():
        return None
    try:
        steps = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise InputError(f"--steps expects comma-separated integers, got {text!r}") from None
    if any(s < 0 for s in steps):
        raise InputError("--steps: steps are >= 0")
    return steps


def default_backend(requested: str) -> str:
    if requested != "auto":
        if requested not in BACKENDS:
            raise InputError(f"unknown backend {requested!r}", hint=f"choose one of: {', '.join(BACKENDS)}")
        return requested
    return "vllm" if importlib.util.find_spec("vllm") is not None else "hf"


def _child_command(store, target: str, suite: str, t: Target, args: dict) -> list[str]:
    cmd = curate_argv("eval", target, "--suite", suite, "--store", str(store.path),
                      "--run", t.run, "--steps", str(t.step or 0), "--backend", args["backend"], "--no-progress",
                      "--workers", str(args["workers"]))
    if t.step == 0 and args.get("base"):
        cmd += ["--base", args["base"]]
    for b in args.get("benchmarks") or []:
        cmd += ["--benchmark", b]
    for k, v in (args.get("backend_options") or {}).items():
        cmd += ["--option", f"{k}={v}"]
    for k, v in (args.get("overrides") or {}).items():
        cmd += ["--set", f"{k}={v}"]
    if args.get("judge"):
        cmd += ["--judge", args["judge"], "--judge-model", args.get("judge_model") or ""]
    return cmd


def _fan_out(store, target: str, suite: str, targets: list[Target], jobs: int, gpus: list[str], args: dict,
             say: Callable[[str], None]) -> list[str]:
    """Run one child per checkpoint, at most `jobs` at a time, each with its own GPU when given (else each with
    its share of the CPU threads). A child's output goes to a log file and the child dies with this process."""
    import tempfile

    queue = list(targets)
    by_key = {f"step-{t.step}": t for t in targets}
    pool = Pool(gpus, cpu_slots=jobs, max_running=jobs)
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="curate-eval-logs-") as logs:
        while queue or len(pool):
            while queue and pool.can_start(wants_gpu=True):
                t = queue.pop(0)
                gpu = pool.start(f"step-{t.step}", _child_command(store, target, suite, t, args),
                                 Path(logs) / f"step-{t.step}.log", wants_gpu=True)
                say(f"step {t.step}: started" + (f" on GPU {gpu}" if gpu is not None else ""))
            for f in pool.wait():
                t = by_key[f.key]
                if f.returncode != 0:
                    failed.append(f"step {t.step}: {error_line(f.log)} (exit {f.returncode})")
                say(f"step {t.step}: " + ("done" if f.returncode == 0 else "failed"))
    return failed


HUB_BACKENDS = ("hf", "vllm")  # backends that load a non-folder model reference from the Hugging Face Hub


def check_hub_models(targets: list[Target], backend: str, revision: str | None = None) -> None:
    """Every hub-id model among the targets (and --base) is in the local HF cache or on the Hub, checked once
    (no retries) before anything is written: a mistyped name is one line, not a minute of retries and a store
    full of planned samples for a model that does not exist."""
    if backend not in HUB_BACKENDS:
        return
    for ref in sorted({t.model_ref for t in targets if t.endpoint is None and not Path(t.model_ref).expanduser().exists()}):
        _check_hub_model(ref, revision)


def _check_hub_model(ref: str, revision: str | None) -> None:
    try:
        from huggingface_hub import HfApi, constants, try_to_load_from_cache
        from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError, RevisionNotFoundError
    except ImportError:  # the backend itself will say what is missing
        return
    try:
        if isinstance(try_to_load_from_cache(ref, "config.json", revision=revision), str):
            return
    except HFValidationError:
        raise InputError(f"{ref}: no such folder here, and not a valid hub id") from None
    if constants.HF_HUB_OFFLINE:
        at = f" at revision {revision}" if revision else ""
        raise InputError(f"{ref}: no such folder here, and not in the Hugging Face cache{at} (HF_HUB_OFFLINE is set)",
                         hint="check the path" + (" and the revision" if revision else "") + ", or download the model while online")
    try:
        HfApi().model_info(ref, revision=revision, timeout=10)
    except GatedRepoError:
        return  # it exists; loading it says whether this token may read it
    except (RepositoryNotFoundError, RevisionNotFoundError) as e:
        raise InputError(f"{ref}: no such folder here, and no such model{' revision' if isinstance(e, RevisionNotFoundError) else ''} "
                         "on the Hugging Face Hub", hint="check the path or the hub id") from None
    except Exception as e:  # noqa: BLE001 - any network failure: one line instead of the loader's retries
        raise InputError(f"{ref}: no such folder here, not in the Hugging Face cache, and the Hub cannot be reached "
                         f"({type(e).__name__})", hint="check the path, or set HF_HUB_OFFLINE=1 and use a cached model") from None


def evaluate_command(store, target: str, suite_name: str, *, base: str | None = None, run: str | None = None,
                     steps: str | None = None, benchmarks: list[str] | None = None, backend: str = "auto",
                     model: str | None = None, backend_options: dict | None = None, overrides: dict | None = None,
                     judge: str | None = None, judge_model: str | None = None, workers: int = 2, jobs: int = 1,
                     gpus: str | None = None, lm_eval: str | None = None, lm_eval_include: Path | None = None,
                     progress: bool = True, flush_every: int = 64, say: Callable[[str], None] = lambda s: None,
                     executor: str = "local", ray_address: str | None = None, revision: str | None = None) -> EvalReport:
    from curate.scale import resolve_executor

    if workers < 1 or jobs < 1:
        raise InputError("--workers and --jobs must be at least 1")
    ex = resolve_executor(executor, ray_address)
    if ex.is_cluster and jobs > 1:
        raise InputError("--jobs starts local processes; with --executor ray the cluster schedules the work: use --jobs 1")
    suite = load_suite(suite_name, overrides or {}).select(benchmarks)
    targets, notes = resolve_targets(target, base=base, run=run, model=model, steps=parse_steps(steps), revision=revision)
    opts = EvalOptions(backend=default_backend(backend), backend_options=dict(backend_options or {}), revision=revision,
                       workers=workers, judge=judge, judge_model=judge_model, progress=progress, flush_every=flush_every,
                       executor=ex)
    check_hub_models(targets, opts.backend, opts.revision)
    gpu_list = [g.strip() for g in gpus.split(",") if g.strip()] if gpus else []
    if jobs > 1 and len(targets) > 1:
        if any(t.step is None for t in targets):
            raise InputError("--jobs needs a training run directory as TARGET (one child per checkpoint step)")
        t0 = time.perf_counter()
        args = {"backend": opts.backend, "workers": workers, "base": base, "benchmarks": benchmarks,
                "backend_options": backend_options, "overrides": overrides, "judge": judge, "judge_model": judge_model}
        failed = _fan_out(store, target, suite_name, targets, jobs, gpu_list, args, say)
        if failed:
            raise CurateError(f"{len(failed)} of {len(targets)} checkpoint evaluations failed: " + "; ".join(failed),
                              hint="rerun the same command: finished checkpoints are not evaluated again")
        report = EvalReport(targets=len(targets), notes=notes, seconds=time.perf_counter() - t0)
    else:
        report = evaluate(store, targets, suite, opts, say)
        report.notes = notes + report.notes
        if suite.lm_eval:  # a fanned-out child runs its own step's; here every target's
            from curate.evaluate.lmeval import run_suite_tasks

            for t in targets:
                if t.endpoint:
                    report.notes.append(f"{t.run}: lm-eval entries ({', '.join(e.name for e in suite.lm_eval)}) need "
                                        "model weights; left out for an endpoint")
                    continue
                report.rows += run_suite_tasks(store, t, suite.lm_eval, device=opts.backend_options.get("device", "cpu"))
    if lm_eval:
        from curate.evaluate.lmeval import run_lm_eval

        tasks = [t.strip() for t in lm_eval.split(",") if t.strip()]
        for t in targets:
            report.rows += run_lm_eval(store, t, tasks, include_path=lm_eval_include, overrides=overrides or {},
                                       device=opts.backend_options.get("device", "cpu"))
    return report
