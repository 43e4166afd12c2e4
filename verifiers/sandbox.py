"""Run one untrusted Python program in a fresh, limited, isolated process and capture its output.

How a program starts: a per-process "zygote" (verifiers/_zygote.py, a pre-forked clean interpreter that never
runs untrusted code; its client is verifiers/_zygote_client.py) forks one fresh process per program, so there is
no interpreter start-up per test. Where the zygote cannot run (or CURATE_SANDBOX_ZYGOTE=0), each program gets a
fresh interpreter started through the `unshare` tool instead (verifiers/_launch.py, which also holds the rlimits,
the output pump and the group kill both paths share); both paths give the same isolation and are both tested.
The level, interpreter and work root are chosen in verifiers/_isolation.py.

What it isolates (each run):
- a separate process in its own session and process group; on timeout the whole group is SIGKILLed, and
  as PID 1 of its own PID namespace every process the program started dies with it (a `setsid` daemon
  cannot outlive the run); PDEATHSIG kills it if the verifier worker itself is killed;
- a new network namespace (no interfaces up: connects fail), a new PID namespace with its own /proc (the
  parent's processes and environment are invisible, its PID unreachable), a private mount namespace;
- when started as root: the program runs as `nobody` (65534), so it cannot write or delete files outside its
  work dir (except world-writable places such as /tmp), cannot signal other users' processes, and
  RLIMIT_NPROC applies (root ignores it);
- rlimits: address space (memory bombs get MemoryError), CPU seconds, processes, file size, open files, no
  core dumps; a scrubbed environment;
- a private scratch per run (namespace levels): a fresh tmpfs of `Limits.scratch_mb` (64 MiB) mounted on /tmp
  and bound on /dev/shm and /var/tmp, holding a copy of the program's files and serving as its cwd, HOME and
  TMPDIR; files, shared memory, fifos and sockets left there vanish with the run's mount namespace, and
  filling it stops at its size (ENOSPC). The host's /tmp, /dev/shm and /var/tmp are not visible. The staging
  work dir on the host (mode 700) is removed afterwards;
- work dirs live in the sandbox's own work root (`work_root`), never wherever the caller's TMPDIR points: a
  `mktemp -d` TMPDIR (mode 700) is closed to `nobody`, which used to fail correct programs;
- function-call checks (`run_check`) run the solution and the test in two processes; the pass marker and the
  test source reach only the test's process, on its stdin after the solution's process was forked (the tests
  are never a file the solution could open, nor in the memory it was forked from), and that process is
  non-dumpable, so the solution cannot read the tests or the expected values, nor read or forge the marker; an
  exception from the candidate, of any type, fails the check even if the test catches it (see
  verifiers/_harness.py);
- stdout and stderr capped at 1 MiB each (the run is killed when a stream passes the cap).

What it does NOT isolate:
- the kernel is shared (no seccomp filter, no VM): a kernel exploit escapes;
- the rest of the filesystem stays readable where `nobody` may read (the checkout, the interpreter, /etc);
  other world-writable directories than /tmp, /dev/shm and /var/tmp (if any, e.g. /run/lock) stay shared;
- at level "none" there is no mount namespace: no private scratch (the program's cwd/TMPDIR is the host work
  dir, removed afterwards, but what it writes to /tmp or /dev/shm stays);
- CPU and memory contention between concurrent runs (no cgroups); RLIMIT_NPROC counts every process of
  `nobody` on the machine, so a fork bomb in one run can make forks fail in a concurrent run;
- a program may exit with the harness's "could not judge" codes itself (its verdict becomes `error`).

Isolation levels, probed once per process (`isolation()`), strongest first:
  "root-ns"  root: net+pid+mount namespaces, run as nobody (needs an interpreter nobody can execute:
             sys.executable if it can, else /usr/bin/python3; override with CURATE_SANDBOX_PYTHON, e.g. a
             venv with the packages a benchmark needs; one nobody cannot run is refused, never downgraded)
  "user-ns"  unprivileged user namespaces: same namespaces, but no uid change (files of the invoking user
             are writable, NPROC counts that user's processes)
  "none"     no namespaces allowed: session/process-group kill, rlimits, temp dir and scrubbed env only;
             network is reachable and a `setsid` daemon can outlive the run
CURATE_SANDBOX_ISOLATION=none|user-ns|root-ns forces a level (for testing the fallbacks);
CURATE_SANDBOX_ROOT names the work root. Set-up trouble is `RunResult.could_not_judge`, never a failed test.
Test: `python -m pytest -q tests/test_sandbox.py` (the API) and `tests/test_sandbox_hostile.py` (attacks).
"""
from __future__ import annotations

import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from verifiers._isolation import NOBODY, PYTHON_ENV, ROOT_ENV, SandboxUnavailable, isolation, new_work_dir, work_root
from verifiers._launch import run_fresh
from verifiers._zygote_client import run_in_zygote

__all__ = ["ENV_EXIT", "NOBODY", "OUTPUT_CAP", "PYTHON_ENV", "ROOT_ENV", "SETUP_EXIT", "Limits", "RunResult",
           "SandboxUnavailable", "isolation", "run_check", "run_python", "work_root"]

OUTPUT_CAP = 1 << 20
SETUP_EXIT, ENV_EXIT = 121, 120  # verifiers/_harness.py: the sandbox's own failure, a module it lacks


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 6.0  # wall clock
    memory_mb: int = 1024  # RLIMIT_AS
    cpu_s: float | None = None  # RLIMIT_CPU; default timeout_s + 1
    nproc: int = 64
    fsize_mb: int = 16
    nofile: int = 64
    output_bytes: int = OUTPUT_CAP
    scratch_mb: int = 64  # the run's private tmpfs (/tmp, /dev/shm, /var/tmp and its cwd), namespace levels only


@dataclass
class RunResult:
    returncode: int | None
    stdout: bytes = b""
    stderr: bytes = b""
    timed_out: bool = False
    output_exceeded: bool = False
    duration_s: float = 0.0
    isolation: str = ""
    sandbox_error: str | None = None  # the sandbox itself failed (not the program)
    passed_marker: bool = False  # run_check: the test returned and the harness printed the one-time marker
    extra: dict = field(default_factory=dict)

    @property
    def could_not_judge(self) -> str | None:
        """Why this run says nothing about the program (sandbox set-up, a module the interpreter lacks), or None."""
        if self.sandbox_error:
            return self.sandbox_error
        if self.timed_out or self.output_exceeded or self.returncode not in (SETUP_EXIT, ENV_EXIT):
            return None
        lines = self.stderr.decode("utf-8", "replace").strip().splitlines()
        said = [ln[len("curate-sandbox: "):] for ln in lines if ln.startswith("curate-sandbox: ")]
        what = "sandbox set-up failed" if self.returncode == SETUP_EXIT else "missing module"
        return said[-1][:300] if said else f"{what} (exit code {self.returncode})"

    @property
    def ok(self) -> bool:
        return self.sandbox_error is None and not self.timed_out and not self.output_exceeded and self.returncode == 0


def run_python(source: str, stdin: bytes | str = b"", limits: Limits = Limits()) -> RunResult:
    """Run `source` as a program with `stdin` fed; stdout returned (stdin/stdout tests; function-call checks go
    through run_check(solution, test, entry_point))."""
    if isinstance(stdin, str):
        stdin = stdin.encode("utf-8")
    return _run({"main.py": source}, "script", ["main.py"], stdin, limits, marker=None)


def run_check(solution: str, test: str, entry_point: str, limits: Limits = Limits()) -> RunResult:
    """Run a function-call check: `solution` (context + the candidate's code) in one process, `test` (which
    defines `check(candidate)`) in another that calls `entry_point` across the boundary (verifiers/_harness.py).
    `passed_marker` is set only if `check` returned; the program cannot read or forge that signal."""
    marker = secrets.token_hex(16)
    # the test travels on the test process's stdin after the marker, never as a file the solution could open
    return _run({"solution.py": solution}, "check", ["solution.py", entry_point],
                (marker + "\n" + test).encode("utf-8"), limits, marker=marker)


def _run(files: dict[str, str], mode: str, args: list[str], stdin: bytes, limits: Limits,
         marker: str | None) -> RunResult:
    t0 = time.monotonic()
    try:
        level, python = isolation()
        workdir = new_work_dir(level)
    except SandboxUnavailable as e:
        return RunResult(None, sandbox_error=str(e), duration_s=time.monotonic() - t0)
    try:
        for name, text in files.items():
            (Path(workdir) / name).write_text(text, encoding="utf-8")
        argv = list(args)  # file names relative to the run's cwd: the work dir, or the scratch they are copied to
        scratch = {"files": list(files), "bytes": limits.scratch_mb << 20} if level != "none" else None
        in_path = Path(workdir) / ".stdin"
        in_path.write_bytes(stdin)
        os.chmod(in_path, 0o600)  # opened by us, before the uid change; the program cannot re-read it
        with open(in_path, "rb") as fin:
            in_path.unlink()  # the open fd is all the program gets; a marker never sits on disk
            launch = (level, python, fin.fileno(), mode, argv, workdir, limits, t0, scratch)
            try:
                out = run_in_zygote(*launch)
                if out is None:
                    out = run_fresh(*launch)
            except SandboxUnavailable as e:  # the interpreter could not be started
                return RunResult(None, sandbox_error=str(e), duration_s=time.monotonic() - t0, isolation=level)
        res = RunResult(**vars(out), isolation=level)
        if marker is not None:
            lines = res.stdout.rstrip(b"\n").rsplit(b"\n", 1)
            res.passed_marker = bool(lines) and lines[-1].strip() == marker.encode() and res.returncode == 0
            if res.passed_marker:
                res.stdout = lines[0] if len(lines) == 2 else b""
        return res
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
