"""Evaluation commands: `eval`, `evals` (table, `import`, `compare`) and `report`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from curate.cli.common import (DEFAULT_STORE, BackendOpt, ExecutorOpt, JsonOpt, RayAddressOpt, StoreOpt, emit_json,
                               err_console, invocation, open_store, out_console, parse_pairs, print_result, print_table)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_)
    evals_app = typer.Typer(help="Evaluation results in the store: the per-checkpoint table, imports of published results.")
    evals_app.callback(invoke_without_command=True)(evals_cmd)
    evals_app.command("import")(evals_import)
    evals_app.command("compare")(evals_compare)
    app.add_typer(evals_app, name="evals")
    app.command("report")(report_cmd)


def eval_(
    target: Annotated[str, typer.Argument(help="A training run dir (every checkpoint), a checkpoint folder, a hub id, or an http(s) endpoint.")],
    suite: Annotated[str, typer.Option("--suite", help="Suite name (paper, math, countdown, smoke) or a suite YAML file.")] = "smoke",
    store: StoreOpt = DEFAULT_STORE,
    base: Annotated[Optional[str], typer.Option(help="Base model evaluated as step 0 of the run (path or hub id).")] = None,
    run: Annotated[Optional[str], typer.Option(help="Run name in the evals table (default: the run folder's name).")] = None,
    steps: Annotated[Optional[str], typer.Option(help="Only these checkpoint steps, e.g. 10,20,40.")] = None,
    benchmark: Annotated[Optional[list[str]], typer.Option("--benchmark", "-b", help="Only this benchmark of the suite (repeatable).")] = None,
    backend: Annotated[str, typer.Option(help="hf | vllm | openai (an endpoint target always uses openai).")] = "auto",
    model: Annotated[Optional[str], typer.Option(help="Served model name for an endpoint target.")] = None,
    revision: Annotated[Optional[str], typer.Option(help="Hub revision (branch, tag or commit) a hub-id target is loaded at; recorded as ID@REVISION. Refused for a local folder.")] = None,
    option: BackendOpt = None,
    n: Annotated[Optional[int], typer.Option("--n", help="Override samples per problem for every benchmark.")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(help="Override the most new tokens for every benchmark.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Override: at most this many problems per benchmark.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a benchmark field: key=value or BENCH.key=value (repeatable).")] = None,
    judge: Annotated[Optional[str], typer.Option(help="OpenAI-compatible URL of a harm judge for safety benchmarks (1-5 rating; ASR = share rated 5).")] = None,
    judge_model: Annotated[Optional[str], typer.Option(help="The judge's served model name.")] = None,
    workers: Annotated[int, typer.Option(help="Verifier worker processes.")] = 2,
    jobs: Annotated[int, typer.Option(help="Checkpoints evaluated side by side (one process each).")] = 1,
    gpus: Annotated[Optional[str], typer.Option(help="GPU ids shared out to the --jobs processes, e.g. 0,1,2,3.")] = None,
    lm_eval: Annotated[Optional[str], typer.Option("--lm-eval", help="Also run these lm-evaluation-harness tasks (comma-separated).")] = None,
    lm_eval_include: Annotated[Optional[Path], typer.Option(help="A folder of extra lm-eval task YAMLs.")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress.")] = True,
    flush_every: Annotated[int, typer.Option(hidden=True)] = 64,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Evaluate checkpoints on a suite: generate, verify and score into the store's `evals` table (resumable)."""
    from curate.evaluate import evaluate_command

    overrides = parse_pairs(set_, "--set")
    for k, v in (("n", n), ("sampling.max_tokens", max_tokens), ("limit", limit)):
        if v is not None:
            overrides[k] = str(v)
    say = (lambda s: None) if json_ else (lambda s: out_console.print(s, markup=False))
    rep = evaluate_command(open_store(store), target, suite, base=base, run=run, steps=steps, benchmarks=benchmark or None,
                           backend=backend, model=model, backend_options=parse_pairs(option, "--option"), overrides=overrides,
                           judge=judge, judge_model=judge_model, workers=workers, jobs=jobs, gpus=gpus, lm_eval=lm_eval,
                           lm_eval_include=lm_eval_include, progress=progress and not json_, flush_every=flush_every, say=say,
                           executor=executor, ray_address=ray_address, revision=revision)
    if not emit_json(rep.to_dict(), json_):
        for note in rep.notes:
            err_console.print(f"note: {note}", markup=False)
        out_console.print(f"evaluated {rep.targets} checkpoint(s): {rep.generated} samples generated, {rep.labeled} labeled "
                          f"in {rep.seconds:.1f}s; see `{invocation()} evals --store {store}`", markup=False)
    if rep.incomplete:
        from curate.errors import CurateError

        hint = "relabel errors with `curate verify --relabel --where \"status = 'error'\"`, then rerun the same command"
        if rep.refused:
            hint = ("a prompt the server refused is refused again on a rerun: serve a longer context, lower max_tokens, "
                    "or leave those problems out (--set BENCH.where=...); " + hint)
        raise CurateError(f"{len(rep.incomplete)} benchmark(s) incomplete, stored without a score: " + "; ".join(rep.incomplete),
                          hint=hint)


def evals_cmd(
    ctx: typer.Context,
    store: StoreOpt = DEFAULT_STORE,
    where: Annotated[Optional[str], typer.Option(help="SQL predicate over the `evals` view, e.g. \"suite = 'paper'\".")] = None,
    long: Annotated[bool, typer.Option("--long", help="One row per metric instead of one column per benchmark.")] = False,
    json_: JsonOpt = False,
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
) -> None:
    """Evaluation results: one row per checkpoint, one column per benchmark (with length and truncation)."""
    if ctx.invoked_subcommand is not None:
        return
    import pyarrow as pa

    from curate.evaluate.results import headline_metrics, wide
    from curate.store.evals import read_evals

    rows = read_evals(open_store(store), where)
    fmt = "json" if json_ else "csv" if csv else "table"
    table = pa.Table.from_pylist(rows if long else wide(rows, digits=1 if fmt == "table" else None)) if rows \
        else pa.table({"evals": pa.array([], pa.string())})
    print_result(table, fmt=fmt, limit=10_000)
    if rows and not long and fmt == "table":
        used = headline_metrics(rows)
        err_console.print("each benchmark column shows its headline metric: "
                          + "; ".join(f"{b} {', '.join(m)}" for b, m in sorted(used.items())), markup=False)


def evals_import(
    file: Annotated[Path, typer.Argument(help="CSV or JSONL with run,benchmark,step,value [,metric,ci_low,ci_high,suite].")],
    store: StoreOpt = DEFAULT_STORE,
    run: Annotated[Optional[str], typer.Option(help="Use this run name for every row (the file's run column is then optional).")] = None,
    last_wins: Annotated[bool, typer.Option("--last-wins", help="A run/benchmark/metric/step given twice keeps its last line (default: refuse).")] = False,
    json_: JsonOpt = False,
) -> None:
    """Import published scores (e.g. a paper's curves) into the evals table, marked as imported; importing the
    same file again replaces what it imported before."""
    from curate.evaluate.results import import_results

    rep = import_results(open_store(store), file, run=run, last_wins=last_wins)
    if not emit_json(rep, json_):
        out_console.print(f"imported {rep['rows']} rows ({len(rep['runs'])} runs, benchmarks: {', '.join(rep['benchmarks'])})",
                          markup=False)
    for w in rep["warnings"]:
        err_console.print(f"warning: {w}", markup=False)


def evals_compare(
    a: Annotated[str, typer.Argument(help="Run (condition) A, as in the evals table's `run` column.")],
    b: Annotated[str, typer.Argument(help="Run (condition) B; differences are B - A.")],
    store: StoreOpt = DEFAULT_STORE,
    benchmark: Annotated[Optional[str], typer.Option(help="Only this benchmark.")] = None,
    a_id: Annotated[Optional[str], typer.Option("--a-id", help="When several runs are named A: the training run id (or a prefix, or `none`) to use; default the newest.")] = None,
    b_id: Annotated[Optional[str], typer.Option("--b-id", help="The same for B.")] = None,
    json_: JsonOpt = False,
) -> None:
    """B - A per benchmark at each common step, with a paired bootstrap CI over problems where possible. A name
    shared by several runs (two studies' conditions) compares the newest of them, said in a note."""
    from curate.evaluate.compare import compare

    pick = {run: {"run_id": i} for run, i in ((a, a_id), (b, b_id)) if i is not None}
    rep = compare(open_store(store), a, b, benchmark, pick=pick)
    if emit_json(rep, json_):
        return

    def fmt(r: dict, v, sign: str = "") -> str:  # a reward (unit `score`) is often below 1: three decimals
        return "" if v is None else f"{v:{sign}.{3 if r['unit'] == 'score' else 1}f}"

    rows = [{"benchmark": r["benchmark"], "metric": r["metric"], "step": "-" if r["step"] is None else r["step"],
             "A": fmt(r, r["a"]), "B": fmt(r, r["b"]), "B-A": fmt(r, r["diff"], "+"),
             "95% CI": f"[{fmt(r, r['ci_low'], '+')}, {fmt(r, r['ci_high'], '+')}]" if r["ci_low"] is not None else "",
             "p": r["p_value_text"] or "",
             "significant": "" if r["significant"] is None else "yes" if r["significant"] else "no",
             "method": r["method"] + (f" ({r['n_problems']} problems)" if r["n_problems"] else "")} for r in rep["rows"]]
    if rows:
        ids = {run: f" (run id {i[:8]})" if i else "" for run, i in ((a, rep["a_run_id"]), (b, rep["b_run_id"]))}
        print_table(rows, title=f"A = {a}{ids[a]}, B = {b}{ids[b]}")
    for n in rep["notes"]:
        err_console.print(f"[yellow]note:[/] {n}", markup=True)


def report_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for report.html, report.md, report.json and figures/.")],
    store: StoreOpt = DEFAULT_STORE,
    study: Annotated[Optional[Path], typer.Option(help="A study directory: its mixtures/*/manifest.json are described.")] = None,
    mixtures: Annotated[Optional[list[Path]], typer.Option("--mixtures", help="A mixture folder of `curate mix` (repeatable).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Curves with dip and recovery, length and truncation, final/best scores, mixtures and verdicts in one report."""
    from curate.evaluate.report import build_report

    data = build_report(open_store(store), out, study=study, mixtures=mixtures or [])
    if emit_json(data, json_):
        return
    out_console.print(f"report: {out / 'report.html'} (open it in a browser; figures in {out / 'figures'})", markup=False)
    for section, why in data["skipped"].items():
        out_console.print(f"  left out {section}: {why}", markup=False)
