"""Study commands: `study plan|run|status|show|tiny-model`, and the hidden node `study mark` (what a Slurm job runs last)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from curate.cli.common import JsonOpt, emit_json, err_console, invocation, out_console, print_table
from curate.errors import InputError


def register(app: typer.Typer) -> None:
    study_app = typer.Typer(no_args_is_help=True, help="Ablation studies: a grid of recipes x base models x seeds in one file.")
    study_app.command("plan")(study_plan)
    study_app.command("run")(study_run)
    study_app.command("status")(study_status_cmd)
    study_app.command("show")(study_show)
    study_app.command("tiny-model")(study_tiny_model)
    study_app.command("mark", hidden=True)(study_mark)
    app.add_typer(study_app, name="study")


StudyArg = Annotated[str, typer.Argument(help="Study file, or the name of a shipped study (studies/NAME.yaml).")]
StudyOut = Annotated[Optional[Path], typer.Option("--out", help="Output folder (default: the study's `output`).")]


def study_plan(study: StudyArg, out: StudyOut = None, json_: JsonOpt = False) -> None:
    """The grid and the work it implies (mixtures, runs, evals, GPU-hours); does nothing."""
    from curate.study import plan_study

    p = plan_study(study, out)
    if emit_json(p, json_):
        return
    print_table(p["grid"], title=f"study {p['study']}: {len(p['grid'])} cells -> {p['out']}")
    print_table([{**m, "conditions": ", ".join(m["conditions"]), "recipe_file": Path(m["recipe_file"]).name}
                  for m in p["mixtures"]], title="mixtures (each built once)")
    prepare = [{"node": n["id"], "command": n["command"]} for n in p["nodes"] if n["id"].startswith("prepare/")]
    if prepare:  # commands a study file runs before anything else: shown, so a shared file holds no surprise
        print_table(prepare, title=f"prepare: commands that fill the store {p['store']}")
    e = p["estimate"]
    hours = "GPU-hours unknown" if e["train_gpu_hours"] is None else f"{gpu_time(e['train_gpu_hours'])} of training"
    rough = " (rough: no mixture built yet)" if any(r["rough"] for r in e["per_cell"]) else ""
    out_console.print(f"{e['mixtures']} mixtures, {e['runs']} runs, {e['checkpoint_evals']} checkpoint evaluations, "
                      f"{e['nodes']} nodes; {e['train_tokens']:,} training tokens, {hours}{rough}")
    for w in p["warnings"]:
        err_console.print(f"[yellow]note:[/] {w}", markup=False)


def parse_jobs(text: Optional[str]) -> int | str | None:
    if text is None or text == "auto":
        return text
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise InputError(f"--jobs expects a whole number of at least 1 or 'auto', got {text!r}")
    return n


def study_run(
    study: StudyArg,
    out: StudyOut = None,
    executor: Annotated[Optional[str], typer.Option(help="local or slurm (default: the study's executor.kind).")] = None,
    gpus: Annotated[Optional[str], typer.Option(help="local: GPUs to use, e.g. 0,1,2,3 (one training or eval node per GPU).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print (slurm: write) what would run; run nothing.")] = False,
    rerun_stale: Annotated[bool, typer.Option("--rerun-stale", help="Redo cells the changed study file made stale (old results are kept, renamed).")] = False,
    until: Annotated[Optional[str], typer.Option(help="Stop after this stage: prepare, model, mix, train, eval or report.")] = None,
    retries: Annotated[Optional[int], typer.Option(help="Extra attempts of a failed node (default: executor.retries).")] = None,
    jobs: Annotated[Optional[str], typer.Option(help="local: nodes run side by side on the CPU, a number or auto (default: executor.jobs).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Run the study as a DAG of curate commands; rerun to resume (finished nodes are skipped)."""
    from curate.study import run_study

    gpu_list = [int(g) for g in gpus.split(",") if g.strip()] if gpus else None
    say = (lambda s: err_console.print(s, markup=False)) if json_ else (lambda s: out_console.print(s, markup=False))
    res = run_study(study, out, executor=executor, gpus=gpu_list, dry_run=dry_run, rerun_stale=rerun_stale, until=until,
                    retries=retries, jobs=parse_jobs(jobs), echo=say)
    if emit_json(res, json_):
        pass
    elif res.get("report"):
        out_console.print(f"report: {res['report']}", markup=False)
    elif res.get("store") and not dry_run:
        out_console.print(f"results: {invocation()} evals --store {res['store']}", markup=False)


def study_status_cmd(study: StudyArg, out: StudyOut = None, json_: JsonOpt = False) -> None:
    """The grid with done / running / failed / stale / pending per cell and stage."""
    from curate.study import study_status

    s = study_status(study, out)
    if emit_json(s, json_):
        return
    print_table(s["cells"], title=f"study {s['study']} in {s['out']}")
    other = [n for n in s["nodes"] if not n["id"].startswith(("mix/", "train/", "eval/"))]
    if other:
        print_table(other)


def study_show(
    study: StudyArg,
    out: StudyOut = None,
    cell: Annotated[Optional[str], typer.Option(help="One cell: its commands and the lineage of its eval rows.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Each node's command line (rerun any by hand); with --cell, lineage from eval rows to the recipe."""
    from curate.study import show_study

    s = show_study(study, out, cell)
    if emit_json(s, json_):
        return
    for n in s["nodes"]:
        out_console.print(f"# {n['id']} ({n['state']})\n{n['command']}", markup=False)
    if cell is None:
        return
    r = s["record"]
    if r:
        out_console.print(f"\nrun {r['run']}: {r['run_dir']} (config {r['train_config']}, hash {r['config_hash']})\n"
                          f"  mixture {r['mixture']}: {r['manifest']} (fingerprint {r['mixture_fingerprint']})\n"
                          f"  recipe {r['recipe_name']}: {r['recipe_file']} (hash {r['recipe_hash'][:12]})\n"
                          f"  store snapshot {r['store_snapshot']}", markup=False)
    else:
        out_console.print("\nno lineage recorded yet (the run has not finished)", markup=False)
    rows = [{k: e[k] for k in ("checkpoint", "step", "benchmark", "metric", "value", "config_hash", "mixture_fingerprint",
                               "recipe_hash", "consistent")} for e in s["evals"] if e["kind"] == "score"]
    if rows:
        print_table(rows, title="eval rows")


def study_tiny_model(folder: Annotated[Path, typer.Argument(help="Folder to write the model into.")],
                     seed: Annotated[int, typer.Option(help="Seed of the random weights (same seed and size, same files).")] = 0,
                     size: Annotated[str, typer.Option(help="bpe-64x2, char-96x4 or char-128x4.")] = "bpe-64x2") -> None:
    """Build a tiny random base model folder (Hugging Face layout, own tokenizer, no download) for CPU runs."""
    from curate.study.tiny import build_study_model

    out_console.print(f"tiny model written to {build_study_model(folder, seed, size=size)}", markup=False)


def study_mark(study: StudyArg, node: Annotated[str, typer.Option(help="Node id.")], out: StudyOut = None) -> None:
    """Verify a node's outputs and write its completion marker (what a Slurm job runs last)."""
    from curate.study.runner import mark

    mark(study, node, out)
    out_console.print(f"{node}: done", markup=False)


def gpu_time(hours: float) -> str:
    """GPU time a person reads at a glance: hours from one hour up, else minutes, else "under a GPU-minute"."""
    if hours >= 1:
        return f"{hours:,.0f} GPU-hours" if hours >= 100 else f"{hours:.3g} GPU-hours"
    minutes = hours * 60
    return f"{minutes:.2g} GPU-minutes" if minutes >= 1 else "under a GPU-minute"
