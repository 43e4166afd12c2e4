"""Starting curate's own command line as a child process (study nodes, eval fan-out): `python -m curate`,
the same interpreter and the same curate code as the parent, optionally dying with its parent; and `Pool`,
the one loop that runs such children side by side: one per free GPU, and up to `cpu_slots` CPU ones, each of
those with its share of the CPU threads.

Test: tests/test_child.py; tests/test_study_run.py and tests/test_evaluate.py start children through these.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

# The folder that holds the `curate` package this process runs. Installed: site-packages; from a checkout
# (not installed, PYTHONPATH=checkout): the checkout, which a child must see too to run the same code.
_HOME = Path(__file__).resolve().parents[1]


def curate_argv(*args: str) -> list[str]:
    """The command line that runs `curate ARGS` in a child."""
    return [sys.executable, "-m", "curate", *args]


def checkout() -> Path | None:
    """The checkout this process runs curate from, or None when curate is installed (a child finds it anyway)."""
    return _HOME if (_HOME / "pyproject.toml").is_file() else None


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a child, with the checkout on PYTHONPATH when curate runs from one."""
    env = dict(os.environ)
    home = checkout()
    paths = env.get("PYTHONPATH", "").split(os.pathsep) if env.get("PYTHONPATH") else []
    if home is not None and str(home) not in paths:
        env["PYTHONPATH"] = os.pathsep.join([str(home), *paths])
    env.update(extra or {})
    return env


def error_line(log: Path) -> str:
    """The error a failed node printed: its `error:` line (and hint), else the last line of its log."""
    try:
        lines = [ln.rstrip() for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("error:"):
            return lines[i] + (f" ({lines[i + 1].strip()})" if i + 1 < len(lines) and lines[i + 1].startswith("hint:") else "")
    return lines[-1] if lines else "no output"


def spawn(argv: list[str], log: Path, gpu: int | str | None = None, on_parent_death: int = signal.SIGTERM,
          env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start one child with its output appended to `log` (never a pipe: a pipe read only at exit blocks a child
    that prints more than it holds), pinned to `gpu` when given, and sent `on_parent_death` if this process
    dies first (Linux), so a killed parent leaves no orphan writing outputs."""
    from curate.train.guard import pdeathsig_setter

    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as f:
        f.write(f"$ {shlex.join(argv)}\n")
        f.flush()
        return subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=child_env({**(env or {}), **({"CUDA_VISIBLE_DEVICES": str(gpu)} if gpu is not None else {})}),
                                preexec_fn=pdeathsig_setter(on_parent_death))


@dataclass
class Finished:
    """A child that exited: its key, exit status, log, the GPU it held (None on CPU) and its wall time."""
    key: str
    returncode: int
    log: Path
    gpu: int | str | None
    seconds: float


class Pool:
    """Children run side by side: a child that wants a GPU takes a free one from `gpus`; any other child (and
    one that wants a GPU when none is listed) takes one of `cpu_slots` CPU slots, and gets 1/cpu_slots of the
    thread counts curate chose for itself (`cpus.per_child`), so side-by-side children do not oversubscribe
    the cores. `max_running` caps all children together. The caller decides what to start when; `wait()`
    returns the children that exited."""

    def __init__(self, gpus: list[int] | list[str] | None = None, cpu_slots: int = 1, max_running: Optional[int] = None,
                 on_parent_death: int = signal.SIGTERM) -> None:
        if cpu_slots < 1:
            raise ValueError("cpu_slots must be at least 1")
        self.gpus, self.free = list(gpus or []), list(gpus or [])
        self.cpu_slots, self.max_running, self.on_parent_death = cpu_slots, max_running, on_parent_death
        self.running: dict[str, tuple[subprocess.Popen, int | str | None, Path, float]] = {}

    def __len__(self) -> int:
        return len(self.running)

    def _on_gpu(self, wants_gpu: bool) -> bool:
        return wants_gpu and bool(self.gpus)

    def can_start(self, wants_gpu: bool = False) -> bool:
        if self.max_running is not None and len(self.running) >= self.max_running:
            return False
        if self._on_gpu(wants_gpu):
            return bool(self.free)
        return sum(1 for _, gpu, _, _ in self.running.values() if gpu is None) < self.cpu_slots

    def start(self, key: str, argv: list[str], log: Path, wants_gpu: bool = False) -> int | str | None:
        """Start `argv` as child `key` (the caller checked `can_start`); returns the GPU it got, or None."""
        from curate import cpus

        if key in self.running or not self.can_start(wants_gpu):
            raise RuntimeError(f"cannot start {key} now")
        gpu = self.free.pop(0) if self._on_gpu(wants_gpu) else None
        env = cpus.per_child(self.cpu_slots) if gpu is None and self.cpu_slots > 1 else None
        proc = spawn(argv, log, gpu, self.on_parent_death, env=env)
        self.running[key] = (proc, gpu, log, time.monotonic())
        return gpu

    def pid(self, key: str) -> int:
        return self.running[key][0].pid

    def wait(self, poll: float = 0.2) -> list[Finished]:
        """Block until at least one child exited (at once when none runs) and return those that did."""
        while self.running:
            done = []
            for key, (proc, gpu, log, t0) in list(self.running.items()):
                if proc.poll() is None:
                    continue
                del self.running[key]
                if gpu is not None:
                    self.free.append(gpu)
                done.append(Finished(key, proc.returncode, log, gpu, time.monotonic() - t0))
            if done:
                return done
            time.sleep(poll)
        return []
