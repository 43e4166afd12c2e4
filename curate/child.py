"""Starting curate's own command line as a child process (study nodes, eval fan-out): `python -m curate`,
the same interpreter and the same curate code as the parent, optionally dying with its parent.

Test: tests/test_study_run.py and tests/test_evaluate.py start children through these helpers.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

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


def spawn(argv: list[str], log: Path, gpu: int | str | None = None, on_parent_death: int = signal.SIGTERM
          ) -> subprocess.Popen:
    """Start one child with its output appended to `log` (never a pipe: a pipe read only at exit blocks a child
    that prints more than it holds), pinned to `gpu` when given, and sent `on_parent_death` if this process
    dies first (Linux), so a killed parent leaves no orphan writing outputs."""
    from curate.train.guard import pdeathsig_setter

    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as f:
        f.write(f"$ {shlex.join(argv)}\n")
        f.flush()
        return subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=child_env({"CUDA_VISIBLE_DEVICES": str(gpu)} if gpu is not None else None),
                                preexec_fn=pdeathsig_setter(on_parent_death))
