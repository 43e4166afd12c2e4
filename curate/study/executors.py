"""Executors: run a study's pending nodes here (`local`) or hand them to Slurm (`slurm`).

local: nodes run as `python -m curate ...` subprocesses through `curate.child.Pool`, as soon as their inputs
are done: with GPUs listed, one training or eval node per GPU at the same time (CUDA_VISIBLE_DEVICES); every
other node, and every node when no GPU is listed, in one of `jobs` CPU slots (each with its share of the
threads). A
child dies with the runner (PR_SET_PDEATHSIG), so a killed runner leaves no orphan writing outputs;
the node is simply not marked done and runs again next time (training resumes from its last state).
slurm: one sbatch script per node under OUT/slurm/, chained with --dependency=afterok; each script runs
the node's plain command and then `curate study mark`, which writes the completion marker.
Test: tests/test_study.py, tests/test_study_run.py.
"""
from __future__ import annotations

import json
import shlex
import shutil
import signal
import subprocess
from typing import Callable, Optional

from curate.child import Pool, checkout, curate_argv, error_line
from curate.study import state as st
from curate.study.plan import KINDS, Node, Plan

def python_argv(node: Node) -> list[str]:
    return curate_argv(*node.argv[1:])


def launch_argv(plan: Plan, node: Node) -> list[str]:
    """The node's command as it must run now: a training run that was killed resumes from its last
    complete state; one killed before any state starts over (its folder holds no finished work)."""
    argv = python_argv(node)
    if node.kind == "train":
        from curate.train.layout import latest_state

        run_dir = plan.cell(node.cell).run_dir
        if run_dir.exists():
            if (run_dir / "config.yaml").is_file() and latest_state(run_dir) is not None:
                argv.append("--resume")
            else:
                shutil.rmtree(run_dir)
    return argv


def cpu_jobs(setting: int | str) -> int:
    """CPU nodes side by side: the number given, or for `auto` the CPUs this process may use, at most 4 (a tiny
    model's training step uses a second thread poorly, a second process well; more than 4 at once mostly adds
    memory)."""
    if setting == "auto":
        from curate.cpus import usable_cpus

        return max(1, min(4, usable_cpus()))
    return int(setting)


class Local:
    """Runs pending nodes here; `finish(node)` (from the runner) verifies and marks a node done. Training and
    eval nodes take a GPU each from `gpus`; every other node, and with no GPUs listed every node, takes one of
    `jobs` CPU slots."""

    def __init__(self, plan: Plan, finish: Callable[[Node], Optional[str]], gpus: list[int], retries: int,
                 echo: Callable[[str], None], jobs: int = 1) -> None:
        self.plan, self.finish, self.gpus, self.retries, self.echo = plan, finish, list(gpus), retries, echo
        self.pool = Pool(self.gpus, cpu_slots=jobs, on_parent_death=signal.SIGKILL)

    def _start(self, node: Node) -> None:
        argv = launch_argv(self.plan, node)
        gpu = self.pool.start(node.id, argv, st.log_file(self.plan, node.id), wants_gpu=node.gpu)
        st.mark_running(self.plan, node, self.pool.pid(node.id))
        where = f" on GPU {gpu}" if gpu is not None else ""
        self.echo(f"start {node.id}{where}" + (" (resuming)" if "--resume" in argv else ""))

    def run(self, todo: list[Node]) -> dict:
        pending = list(todo)
        done: set[str] = set()
        failed: dict[str, str] = {}
        blocked: list[str] = []
        attempts: dict[str, int] = {}
        waiting_on = {n.id for n in todo}
        while pending or len(self.pool):
            # earlier stages first: a mixture unblocks trainings, and a training is long where an eval is
            # short, so evals fill the slots beside the last trainings
            for node in sorted(pending, key=lambda n: KINDS.index(n.kind)):
                if any(d in failed or d in blocked for d in node.deps):
                    pending.remove(node)
                    blocked.append(node.id)
                    continue
                if any(d in waiting_on and d not in done for d in node.deps) or not self.pool.can_start(node.gpu):
                    continue
                pending.remove(node)
                self._start(node)
            for f in self.pool.wait():
                node = self.plan.nodes[f.key]
                st.clear_running(self.plan, node)
                err = error_line(f.log) if f.returncode != 0 else self.finish(node)
                if err is None:
                    done.add(node.id)
                    self.echo(f"done  {node.id} in {f.seconds:.1f}s")
                    continue
                st.mark_failed(self.plan, node, f.returncode, err)
                attempts[node.id] = attempts.get(node.id, 0) + 1
                self.echo(f"FAILED {node.id} after {f.seconds:.1f}s (exit {f.returncode}): {err}\n       log: {f.log}")
                if attempts[node.id] <= self.retries:
                    self.echo(f"retry {node.id} ({attempts[node.id]} of {self.retries})")
                    pending.insert(0, node)
                else:
                    failed[node.id] = err
        return {"done": sorted(done), "failed": failed, "blocked": blocked}


# ------------------------------------------------------------------ slurm
def sbatch_script(plan: Plan, node: Node) -> str:
    s = plan.spec.executor.slurm
    log = st.log_file(plan, node.id)
    lines = ["#!/bin/bash", f"#SBATCH --job-name={plan.spec.name}.{node.id.replace('/', '.')}",
             f"#SBATCH --output={log.with_suffix('')}.%j.log", f"#SBATCH --cpus-per-task={s.cpus}", f"#SBATCH --time={s.time}"]
    gpus = (s.gpus_train if node.kind == "train" else s.gpus_eval) if node.gpu else 0
    if gpus:
        lines.append(f"#SBATCH --gpus-per-node={gpus}")
    if s.partition:
        lines.append(f"#SBATCH --partition={s.partition}")
    if s.account:
        lines.append(f"#SBATCH --account={s.account}")
    lines += [f"#SBATCH {opt}" for opt in s.sbatch]
    lines += ["# curate study node: rerun by hand with the command below (from the checkout)", "set -euo pipefail", *s.setup,
              *([f"export PYTHONPATH={shlex.quote(str(home))}${{PYTHONPATH:+:$PYTHONPATH}}"] if (home := checkout()) else [])]
    argv = python_argv(node)
    if node.kind == "train":  # a requeued or resubmitted job continues its run
        run_dir = shlex.quote(str(plan.cell(node.cell).run_dir))
        # the same rule as launch_argv (layout.latest_state): resume only from a state with its COMPLETE marker
        lines.append(f"RESUME=(); if compgen -G {run_dir}'/state/step-*/COMPLETE' >/dev/null && [ -f {run_dir}/config.yaml ]; "
                     f"then RESUME=(--resume); elif [ -d {run_dir} ]; then rm -rf {run_dir}; fi")
        lines.append(shlex.join(argv) + ' "${RESUME[@]}"')
    else:
        lines.append(shlex.join(argv))
    lines.append(shlex.join(curate_argv("study", "mark", str(plan.file), "--out", str(plan.out), "--node", node.id)))
    return "\n".join(lines) + "\n"


def submit_slurm(plan: Plan, todo: list[Node], dry_run: bool, echo: Callable[[str], None]) -> dict:
    """Write one script per pending node and submit them in order with afterok dependencies."""
    folder = plan.out / "slurm"
    folder.mkdir(parents=True, exist_ok=True)
    (plan.out / "logs").mkdir(parents=True, exist_ok=True)
    pending = {n.id for n in todo}
    jobs: dict[str, str] = {}
    calls = []
    for node in todo:
        script = folder / (node.id.replace("/", "__") + ".sbatch")
        script.write_text(sbatch_script(plan, node), encoding="utf-8")
        script.chmod(0o755)
        deps = [jobs[d] for d in node.deps if d in pending]
        cmd = ["sbatch", "--parsable"] + ([f"--dependency=afterok:{':'.join(deps)}"] if deps else []) + [str(script)]
        calls.append(cmd)
        if dry_run:
            jobs[node.id] = f"<{node.id}>"
            echo(f"would run: {shlex.join(cmd)}")
            continue
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except FileNotFoundError:
            from curate.errors import CurateError

            raise CurateError("sbatch not found on PATH", hint="run on a Slurm login node, or use --dry-run to write the scripts") from None
        if r.returncode != 0:
            from curate.errors import CurateError

            raise CurateError(f"sbatch refused {script.name}: {(r.stderr or r.stdout).strip().splitlines()[-1:]}",
                              hint=f"jobs submitted so far are listed in {folder / 'jobs.json'}")
        jobs[node.id] = r.stdout.strip().split(";")[0]
        st.journal(plan, node.id, "submitted", job=jobs[node.id])
        echo(f"submitted {node.id} as job {jobs[node.id]}" + (f" (after {', '.join(deps)})" if deps else ""))
        (folder / "jobs.json").write_text(json.dumps(jobs, indent=2) + "\n")
    return {"jobs": jobs, "scripts": str(folder), "calls": calls}
