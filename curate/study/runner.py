"""`curate study plan|run|status|show`: the library functions behind the commands.

run: validate, refuse stale cells unless asked to redo them (their old results are renamed, never
mixed), write the resolved recipes, then hand pending nodes to an executor. Rerunning skips every
node that is done (marker + matching key + matching output hash) and retries failed ones, showing
the error they failed with. One runner per study at a time (an flock on OUT/.study/lock).
Test: tests/test_study.py, tests/test_study_run.py.
"""
from __future__ import annotations

import fcntl
import json
import shutil
from pathlib import Path
from typing import Callable, Optional

from curate.errors import CurateError, InputError
from curate.study import state as st
from curate.study.plan import KINDS, Node, Plan, build_plan, estimate, recipe_yaml


def plan_study(study: str | Path, out: Optional[str | Path] = None) -> dict:
    plan = build_plan(study, out)
    return {"study": plan.spec.name, "file": str(plan.file), "out": str(plan.out), "store": str(plan.store),
            "grid": [{"cell": c.id, "condition": c.condition, "model": c.model, "seed": c.seed, "mixture": c.mixture}
                     for c in plan.cells],
            "mixtures": [{"mixture": m.id, "conditions": m.conditions, "recipe": m.recipe.name, "recipe_file": m.recipe_file,
                          "recipe_hash": m.recipe.hash()[:12], "size": m.recipe.size} for m in plan.mixtures.values()],
            "estimate": estimate(plan), "warnings": plan.warnings,
            "nodes": [{"id": n.id, "deps": n.deps, "command": n.command()} for n in plan.nodes.values()]}


# ------------------------------------------------------------------ finishing a node
def finish_node(plan: Plan, node: Node) -> Optional[str]:
    """Verify a node's outputs, write its completion marker and (train/eval) record lineage.
    Returns None when done, else the reason it is not."""
    states = st.node_states(plan, verify_evals=False, only=st.upstream(plan, node.id) - {node.id})
    not_done = [d for d in node.deps if states[d].state != "done"]
    if not_done:
        return f"upstream not done: {', '.join(not_done)}"
    out_hash = st.output_hash(plan, node)
    if out_hash is None:
        return {"mix": "no manifest.json was written", "train": "the run exported no checkpoint",
                "eval": "no eval rows for this run in the store", "model": "no model files were written",
                "report": "no report files were written"}.get(node.kind, "no output")
    key = st.node_key(plan, node, {d: states[d].output_hash for d in node.deps})
    if node.kind in ("train", "eval"):
        _record_lineage(plan, node, key)
    st.mark_done(plan, node, key, out_hash)
    return None


def _record_lineage(plan: Plan, node: Node, key: str) -> None:
    from curate.store import TraceStore
    from curate.store.lineage import record_run
    from curate.train.layout import mixture_facts, run_lineage

    cell = plan.cell(node.cell)
    mix = plan.mixtures[cell.mixture]
    manifest = json.loads((mix.dir / "manifest.json").read_text(encoding="utf-8"))
    # the same hashes `curate eval` reads from the checkpoint, so the lineage view can compare them
    mixture, run = mixture_facts(mix.dir), run_lineage(cell.run_dir)
    record_run(TraceStore(plan.store), {
        "run": cell.id, "study": plan.spec.name, "study_file": str(plan.file), "cell": cell.id, "condition": cell.condition,
        "base_model": cell.base_model, "seed": cell.seed, "run_dir": str(cell.run_dir), "train_config": str(plan.train_config),
        "config_hash": run.get("config_hash"), "mixture": mix.id, "mixture_dir": str(mix.dir),
        "manifest": str(mix.dir / "manifest.json"), "mixture_fingerprint": mixture.get("mixture_fingerprint"),
        "recipe_name": manifest["name"], "recipe_file": str(mix.recipe_path), "recipe_hash": manifest["recipe_hash"],
        "store_snapshot": manifest["store"]["id"], "node_key": key, "run_id": run.get("run_id")})


def mark(study: str | Path, node_id: str, out: Optional[str | Path] = None) -> None:
    """`curate study mark`: what a Slurm job runs after its node's command succeeded."""
    plan = build_plan(study, out)
    if node_id not in plan.nodes:
        raise InputError(f"no node {node_id!r} in study {plan.spec.name}", hint="`curate study show FILE` lists the nodes")
    node = plan.nodes[node_id]
    err = finish_node(plan, node)
    if err:
        st.mark_failed(plan, node, 1, err)
        raise CurateError(f"{node_id}: {err}")


# ------------------------------------------------------------------ stale cells
def _retire(plan: Plan, states: dict, echo: Callable[[str], None]) -> None:
    """Move aside every stale node's results so the rerun never mixes two configs."""
    from curate.store import TraceStore
    from curate.store.lineage import retire_run

    store = TraceStore(plan.store)
    for nid, s in states.items():
        if s.state != "stale":
            continue
        node = plan.nodes[nid]
        marker = json.loads(st.node_file(plan, nid, ".json").read_text())
        tag = marker["key"][:8]
        if node.kind == "train":
            cell = plan.cell(node.cell)
            if cell.run_dir.exists():
                dest = plan.out / "stale" / "runs" / f"{cell.id}@{tag}"
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(dest, ignore_errors=True)
                cell.run_dir.rename(dest)
                echo(f"stale run {cell.id} moved to {dest}")
        if node.kind in ("train", "eval"):
            n = retire_run(store, node.cell, f"{node.cell}@{tag}")
            if n:
                echo(f"stale eval rows of {node.cell} renamed to run {node.cell}@{tag} ({n} rows)")
        st.node_file(plan, nid, ".json").unlink(missing_ok=True)


def _stale_message(plan: Plan, states: dict) -> str:
    cells = st.stale_cells(plan, states)
    other = [f"{nid}: {s.reason}" for nid, s in states.items()
             if s.state == "stale" and plan.nodes[nid].cell is None and plan.nodes[nid].kind not in ("mix", "report")]
    parts = [f"{c} ({'; '.join(r)})" for c, r in cells.items()] + other
    return f"the study file changed over {plan.out}: stale: " + " | ".join(parts)


# ------------------------------------------------------------------ run
def check_output_folder(out: Path) -> None:
    """A study writes (and replaces folders) under its output folder, so that folder must be new, empty, or
    one a study made (it has `.study/`): a study file saying `output: ~` or `/` must not run into it."""
    if out.exists() and not out.is_dir():
        raise InputError(f"study output {out} is not a folder", hint="choose another `output` or --out")
    if out.is_dir() and not (out / ".study").is_dir() and any(out.iterdir()):
        raise InputError(f"study output {out} already holds files that no study wrote (no .study/ in it); "
                         "refusing to write into it", hint="choose a new or empty folder with `output` or --out")


def check_store_folder(store: Path) -> None:
    """The study's store must be new, empty or a curate store (it has catalog.duckdb): `store: ~` must not
    turn a home folder into one."""
    from curate.store.store import CATALOG

    if store.exists() and (not store.is_dir() or (not (store / CATALOG).is_file() and any(store.iterdir()))):
        raise InputError(f"study store {store} holds files but is no curate store (no {CATALOG}); refusing to write into it",
                         hint="set the study's `store` to a store, or to a new or empty folder")


class _Lock:
    def __init__(self, out: Path) -> None:
        self.path = out / ".study" / "lock"

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.f = self.path.open("a+")
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.f.seek(0)
            holder = self.f.read().strip() or "?"
            self.f.close()
            raise CurateError(f"another `curate study run` (pid {holder}) is running this study in {self.path.parents[1]}",
                              hint="wait for it, or stop it first") from None
        import os

        self.f.seek(0)
        self.f.truncate()
        self.f.write(str(os.getpid()))
        self.f.flush()
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


def _check_store(plan: Plan, todo: list) -> None:
    """Mixtures to build need a store with traces; without one (and no `prepare:` to fill it) say so before
    anything runs, instead of failing every mix node one after another."""
    if not any(n.kind == "mix" for n in todo) or any(n.kind == "prepare" for n in plan.nodes.values()):
        return
    from curate.store import TraceStore

    if not TraceStore(plan.store).exists:
        raise InputError(f"{plan.store}: the study's store does not exist, and the study has no `prepare:` commands "
                         "to fill it", hint="fill it first (`curate tasks add`, `curate generate`, `curate verify`; for "
                         "the demo study `curate demo`), point `store:` at a filled store, or add `prepare:` commands")


def run_study(study: str | Path, out: Optional[str | Path] = None, executor: Optional[str] = None,
              gpus: Optional[list[int]] = None, dry_run: bool = False, rerun_stale: bool = False,
              until: Optional[str] = None, retries: Optional[int] = None, jobs: Optional[int | str] = None,
              echo: Callable[[str], None] = print) -> dict:
    from curate.study.executors import Local, cpu_jobs, submit_slurm

    plan = build_plan(study, out)
    kind = executor or plan.spec.executor.kind
    if until is not None and until not in KINDS:
        raise InputError(f"--until {until!r}: expected one of {', '.join(KINDS)}")
    allowed = set(KINDS[: KINDS.index(until) + 1]) if until else set(KINDS)
    for w in plan.warnings:
        echo(f"note: {w}")
    check_output_folder(plan.out)
    check_store_folder(plan.store)
    plan.out.mkdir(parents=True, exist_ok=True)
    with _Lock(plan.out):
        states = st.node_states(plan)
        blocking = {nid: s for nid, s in states.items() if s.state == "stale" and plan.nodes[nid].kind != "report"}
        if blocking and not rerun_stale:
            raise CurateError(_stale_message(plan, states), hint="pass --rerun-stale to redo them (old results are kept "
                                                                  "under OUT/stale and renamed runs), or choose another --out")
        if blocking or states.get("report") and states["report"].state == "stale":
            _retire(plan, {k: v for k, v in states.items() if v.state == "stale"}, echo)
            states = st.node_states(plan)
        for m in plan.mixtures.values():
            m.recipe_path.parent.mkdir(parents=True, exist_ok=True)
            text = recipe_yaml(m)
            if not m.recipe_path.is_file() or m.recipe_path.read_text(encoding="utf-8") != text:
                m.recipe_path.write_text(text, encoding="utf-8")
        todo = [n for n in plan.nodes.values() if states[n.id].state != "done" and n.kind in allowed]
        for n in todo:
            prev = st.last_failure(plan, n.id)
            if prev:
                echo(f"retrying {n.id}, which failed before: {prev.get('error')}")
        already = len(plan.nodes) - len([n for n in plan.nodes.values() if states[n.id].state != "done"])
        echo(f"study {plan.spec.name}: {len(plan.nodes)} nodes, {already} done, {len(todo)} to run ({kind}) in {plan.out}")
        if kind == "slurm":
            res = submit_slurm(plan, todo, dry_run, echo)
            return {"study": plan.spec.name, "out": str(plan.out), "executor": "slurm", "dry_run": dry_run, **res}
        if dry_run:
            for n in todo:
                echo(f"would run {n.id}: {n.command()}")
            return {"study": plan.spec.name, "out": str(plan.out), "executor": "local", "dry_run": True,
                    "todo": [n.id for n in todo]}
        _check_store(plan, todo)
        use_gpus = plan.spec.executor.gpus if gpus is None else gpus
        slots = cpu_jobs(plan.spec.executor.jobs if jobs is None else jobs)
        if slots > 1:
            echo(f"up to {slots} CPU nodes side by side (executor.jobs; --jobs 1 runs one at a time)")
        local = Local(plan, lambda node: finish_node(plan, node), use_gpus,
                      plan.spec.executor.retries if retries is None else retries, echo, jobs=slots)
        res = local.run(todo)
    report = plan.out / "report"
    if (report / "report.html").is_file():
        report = report / "report.html"
    finished = "report" in res["done"] or ("report" in plan.nodes and states["report"].state == "done")
    out = {"study": plan.spec.name, "out": str(plan.out), "store": str(plan.store), "executor": "local", "ran": res["done"], "failed": res["failed"],
           "blocked": res["blocked"], "report": str(report) if finished else None}
    if res["failed"]:
        names = ", ".join(res["failed"])
        raise CurateError(f"{len(res['failed'])} node(s) failed: {names}" + (f"; {len(res['blocked'])} waiting on them" if res["blocked"] else ""),
                          hint=f"logs in {plan.out / 'logs'}; rerun `curate study run` to retry them")
    return out


# ------------------------------------------------------------------ status and show
def study_status(study: str | Path, out: Optional[str | Path] = None) -> dict:
    plan = build_plan(study, out)
    states = st.node_states(plan)
    cells = []
    for c in plan.cells:
        mix, train, ev = (states[n] for n in plan.node_ids(c.id))
        row_states = [mix.state, train.state, ev.state]
        overall = ("done" if all(s == "done" for s in row_states) else "failed" if "failed" in row_states else
                   "running" if "running" in row_states else "stale" if "stale" in row_states else "pending")
        cells.append({"cell": c.id, "condition": c.condition, "model": c.model, "seed": c.seed, "mix": mix.state,
                      "train": train.state, "eval": ev.state, "state": overall,
                      "note": "; ".join(s.reason for s in (mix, train, ev) if s.reason)})
    return {"study": plan.spec.name, "out": str(plan.out), "cells": cells,
            "nodes": [{"id": nid, "state": s.state, "reason": s.reason} for nid, s in states.items()]}


def show_study(study: str | Path, out: Optional[str | Path] = None, cell: Optional[str] = None) -> dict:
    """Every node's command line; with a cell, its nodes and the lineage of each eval row back to the store."""
    plan = build_plan(study, out)
    states = st.node_states(plan, verify_evals=False)
    if cell is None:
        return {"study": plan.spec.name, "out": str(plan.out),
                "nodes": [{"id": n.id, "state": states[n.id].state, "deps": n.deps, "command": n.command()}
                          for n in plan.nodes.values()]}
    c = plan.cell(cell)
    ids = [i for i in plan.nodes if plan.nodes[i].cell == c.id or i == f"mix/{c.mixture}" or i.startswith(("prepare/", "model/"))]
    result = {"study": plan.spec.name, "cell": c.id, "condition": c.condition, "model": c.model, "seed": c.seed,
              "nodes": [{"id": i, "state": states[i].state, "command": plan.nodes[i].command()} for i in ids],
              "record": None, "evals": []}
    from curate.store import TraceStore
    from curate.store.lineage import read_lineage, read_study_run

    store = TraceStore(plan.store)
    if store.exists:
        result["record"] = read_study_run(store, c.id)
        result["evals"] = read_lineage(store, c.id)
    return result
