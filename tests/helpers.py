"""Helpers shared by the tests: the checkout's root, the command line as a user runs it, this test's own
process tree, and a verifier plugin whose environment breaks on demand. Import them from here (`from
tests.helpers import run_cli`); test modules never import each other. Disks that fail on demand (a tiny
tmpfs, a read-only bind mount, a filled disk) need root and skip without it."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def default_signals() -> None:
    """preexec_fn for a child a test interrupts: SIGINT and SIGHUP back to their defaults. A test run started
    in the background (`cmd &` in a script, or under nohup) hands its children those signals ignored, and
    Python keeps SIGINT ignored instead of raising KeyboardInterrupt, so the test would not test the handler."""
    import signal

    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def invoke(*args: str) -> subprocess.CompletedProcess:
    """Run `curate ARGS` in this process (no interpreter start-up) through the real entry point and error
    mapping; for commands that start nothing and hold no state between calls (usage errors, listings)."""
    import contextlib
    import io

    from curate.cli import main

    out, err, code = io.StringIO(), io.StringIO(), 0
    argv = sys.argv
    sys.argv = ["curate", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
    return subprocess.CompletedProcess(["curate", *args], code, out.getvalue(), err.getvalue())


def run_cli(*args: str, env: dict | None = None, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python -m curate ARGS` in a subprocess, exactly as a user would, and capture its output."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "curate", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT, env=full_env
    )


# ---------------------------------------------------------------- disks that fail


ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounting a tmpfs needs root")


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "5m"):
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextlib.contextmanager
def read_only(store: Path, tmp_path: Path):
    """`store` made read-only: a read-only bind mount as root (root ignores file modes), chmod otherwise."""
    if os.geteuid() == 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        if subprocess.run(["mount", "--bind", str(store), str(ro)], capture_output=True).returncode:
            pytest.skip("cannot bind-mount here")
        try:
            if subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], capture_output=True).returncode:
                pytest.skip("cannot remount read-only here")
            yield ro
        finally:
            subprocess.run(["umount", "-l", str(ro)], check=False)
    else:
        paths = [store, *store.rglob("*")]
        for p in paths:
            p.chmod(p.stat().st_mode & ~0o222)
        try:
            yield store
        finally:
            for p in paths:
                p.chmod(p.stat().st_mode | 0o200)


def one_error_line(r: subprocess.CompletedProcess, *needles: str) -> str:
    assert r.returncode != 0
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.stderr
    assert sum(ln.startswith("hint:") for ln in r.stderr.splitlines()) == 1, r.stderr  # as docs/store.md shows
    assert "Traceback" not in r.stderr and "quarantine" not in r.stderr.lower(), r.stderr
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0]


def fill(disk: Path) -> Path:
    """Write zeros to `disk` until it is full; returns the filler file (unlink it to free the space)."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()
    return filler


def descendants(pid: int) -> set[int]:
    """Every live process below pid (this test's own tree only)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    return {p for p in pids if alive(p)}


FLAKY = '''
"""A verifier whose environment breaks: once it has judged the response BREAK, it gets everything wrong."""
import os
from verifiers.base import Probe, ProbeProblem, Verifier

class Flaky(Verifier):
    name = "flaky"
    domains = ("flaky",)

    def probes(self):
        p = ProbeProblem("Say ok.", "ok", domain="flaky")
        return [Probe("says ok", p, "ok", "correct"), Probe("says no", p, "no", "incorrect")]

    def check(self, problem, response):
        flag = os.environ["FLAKY_FLAG"]
        if response == "BREAK":
            open(flag, "w").close()
        if os.path.exists(flag):  # the broken environment: correct answers come out incorrect
            return self.verdict("incorrect", reason="environment broke")
        ok = response in ("ok", "BREAK")
        return self.verdict("correct" if ok else "incorrect", answer=response)
'''


def flaky_plugin(tmp_path: Path) -> dict:
    plug = tmp_path / "plugin"
    info = plug / "flaky_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: flaky_plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[curate.verifiers]\nflaky = flaky_plugin:Flaky\n")
    (plug / "flaky_plugin.py").write_text(FLAKY)
    return {"PYTHONPATH": f"{ROOT}:{plug}", "FLAKY_FLAG": str(tmp_path / "broken")}


CAPPED = '''
"""Two verifiers that say which process judged: `one_copy` asks, like the reward model, for one worker process
per labeling run (`max_workers = 1`); `any_copy` takes every worker."""
import os
import time
from verifiers.base import Verifier

class OneCopy(Verifier):
    name = "one_copy"
    domains = ("one_copy",)
    max_workers = 1

    def check(self, problem, response):
        time.sleep(0.1)  # long enough that a second process in the pool would take some of the work
        return self.verdict("correct", answer=response, reason=f"pid {os.getpid()}")

class AnyCopy(OneCopy):
    name = "any_copy"
    domains = ("any_copy",)
    max_workers = None
'''


def capped_plugin(plug: Path) -> None:
    """Install the CAPPED verifiers as a plugin distribution in `plug` (a folder on PYTHONPATH)."""
    info = plug / "capped_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: capped_plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[curate.verifiers]\none_copy = capped_plugin:OneCopy\n"
                                           "any_copy = capped_plugin:AnyCopy\n")
    (plug / "capped_plugin.py").write_text(CAPPED)
