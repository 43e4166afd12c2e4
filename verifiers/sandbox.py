"""Run one untrusted Python program in a fresh, limited, isolated process and capture its output.

What it isolates (each run):
- a separate process started through `unshare`, in its own session and process group; on timeout the whole
  group is SIGKILLed, and with a PID namespace every process the program started dies with it (a `setsid`
  daemon cannot outlive the run); PDEATHSIG kills it if the verifier worker itself is killed;
- a new network namespace (no interfaces up: connects fail), a new PID namespace with its own /proc (the
  parent's processes and environment are invisible, its PID unreachable), a private mount namespace;
- when started as root: the program runs as `nobody` (65534), so it cannot write or delete files outside its
  work dir (except world-writable places such as /tmp), cannot signal other users' processes, and
  RLIMIT_NPROC applies (root ignores it);
- rlimits: address space (memory bombs get MemoryError), CPU seconds, processes, file size, open files, no
  core dumps; a temporary work dir as cwd/HOME/TMPDIR, removed afterwards; a scrubbed environment;
- stdout and stderr capped at 1 MiB each (the run is killed when a stream passes the cap).

What it does NOT isolate:
- the kernel is shared (no seccomp filter, no VM): a kernel exploit escapes;
- world-writable directories (/tmp, /dev/shm) stay writable; the filesystem stays readable where `nobody`
  may read;
- CPU and memory contention between concurrent runs (no cgroups); RLIMIT_NPROC counts every process of
  `nobody` on the machine, so a fork bomb in one run can make forks fail in a concurrent run;
- a program that deliberately inspects the test harness's frames/memory can forge the pass marker of a
  function-call check; the marker only defends against exiting early (`sys.exit(0)`, `os._exit(0)`).

Isolation levels, probed once per process (`isolation()`), strongest first:
  "root-ns"  root: net+pid+mount namespaces, run as nobody (needs an interpreter nobody can execute:
             sys.executable if it can, else /usr/bin/python3; override with CURATE_SANDBOX_PYTHON)
  "user-ns"  unprivileged user namespaces: same namespaces, but no uid change (files of the invoking user
             are writable, NPROC counts that user's processes)
  "none"     no namespaces allowed: session/process-group kill, rlimits, temp dir and scrubbed env only;
             network is reachable and a `setsid` daemon can outlive the run
CURATE_SANDBOX_ISOLATION=none|user-ns|root-ns forces a level (for testing the fallbacks).
Test: `python -m pytest -q tests/test_sandbox.py`.
"""
from __future__ import annotations

import ctypes
import functools
import os
import resource
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

NOBODY = 65534
OUTPUT_CAP = 1 << 20
_UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"
_NS_FLAGS = ["--net", "--pid", "--fork", "--kill-child", "--mount-proc"]

# Runs as the first process inside the sandbox. "script": run the file as __main__ (stdin/stdout tests).
# "check": read a one-time marker from stdin, run the file, and print the marker only if the whole file
# (solution + tests + check call) finished: exiting early can no longer pass.
_HARNESS = r"""
import os, sys
def _main():
    mode, path = sys.argv[1], sys.argv[2]
    marker = None
    if mode == "check":
        marker = sys.stdin.readline().strip()
        fd = os.open(os.devnull, os.O_RDONLY); os.dup2(fd, 0); os.close(fd)
    with open(path, encoding="utf-8") as f:
        code = compile(f.read(), path, "exec")
    sys.argv = [path]
    g = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__}
    del f
    exec(code, g)
    if marker is not None:
        sys.stdout.flush()
        os.write(1, ("\n" + marker + "\n").encode())
_main()
"""


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 6.0  # wall clock
    memory_mb: int = 1024  # RLIMIT_AS
    cpu_s: float | None = None  # RLIMIT_CPU; default timeout_s + 1
    nproc: int = 64
    fsize_mb: int = 16
    nofile: int = 64
    output_bytes: int = OUTPUT_CAP


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
    passed_marker: bool = False  # check mode: the harness printed the one-time marker
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.sandbox_error is None and not self.timed_out and not self.output_exceeded and self.returncode == 0


# ---------------------------------------------------------------- isolation probing

def _prefix(level: str) -> list[str]:
    if level == "root-ns":
        return [_UNSHARE, *_NS_FLAGS, "--setgid", str(NOBODY), "--setuid", str(NOBODY)]
    if level == "user-ns":
        return [_UNSHARE, "--user", "--map-root-user", *_NS_FLAGS]
    return []


def _candidate_pythons() -> list[str]:
    forced = os.environ.get("CURATE_SANDBOX_PYTHON")
    if forced:
        return [forced]
    out = [sys.executable]
    for p in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(p) and os.path.realpath(p) != os.path.realpath(sys.executable):
            out.append(p)
    return out


def _probe(level: str, python: str) -> bool:
    cmd = [*_prefix(level), python, "-I", "-c", "import json, socket; print('ok')"]
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=20, cwd="/", env=_base_env("/"))
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0 and r.stdout.strip() == b"ok"


@functools.lru_cache(maxsize=1)
def isolation() -> tuple[str, str]:
    """(level, interpreter) used for every run in this process; see the module docstring."""
    forced = os.environ.get("CURATE_SANDBOX_ISOLATION")
    levels = [forced] if forced else (["root-ns"] if os.geteuid() == 0 else []) + ["user-ns", "none"]
    for level in levels:
        for python in _candidate_pythons():
            if level == "none" or _probe(level, python):
                return level, python
    return "none", sys.executable


# ---------------------------------------------------------------- running

def _base_env(workdir: str) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": workdir,
        "TMPDIR": workdir,
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
    }


_libc = None


def _prctl_pdeathsig() -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    _libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the verifier worker


def _preexec(limits: Limits) -> None:
    """In the child between fork and exec: limits that every process of the run inherits."""
    _prctl_pdeathsig()
    cpu = int(limits.cpu_s if limits.cpu_s is not None else limits.timeout_s + 1) + 1
    mem = limits.memory_mb << 20
    for res, val in (
        (resource.RLIMIT_AS, mem),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_NPROC, limits.nproc),
        (resource.RLIMIT_FSIZE, limits.fsize_mb << 20),
        (resource.RLIMIT_NOFILE, limits.nofile),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(res, (val, val))


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except ProcessLookupError:
        pass


def run_python(source: str, stdin: bytes | str = b"", limits: Limits = Limits(), mode: str = "script") -> RunResult:
    """Run `source` as a program. mode "script": stdin fed, stdout returned. mode "check": the program is a
    test file; `passed_marker` is set only if it ran to the end."""
    level, python = isolation()
    if isinstance(stdin, str):
        stdin = stdin.encode("utf-8")
    workdir = tempfile.mkdtemp(prefix="curate-sbx-")
    t0 = time.monotonic()
    try:
        prog = Path(workdir) / "main.py"
        prog.write_text(source, encoding="utf-8")
        marker = secrets.token_hex(16) if mode == "check" else None
        in_path = Path(workdir) / ".stdin"
        in_path.write_bytes((marker + "\n").encode() if marker else stdin)
        if level == "root-ns":
            os.chown(workdir, NOBODY, NOBODY)
            os.chmod(prog, 0o644)
            os.chmod(in_path, 0o600)  # opened by us, before the uid change; the program cannot re-read it
        cmd = [*_prefix(level), python, "-I", "-c", _HARNESS, mode, str(prog)]
        with open(in_path, "rb") as fin:
            in_path.unlink()  # the open fd is all the program gets; the marker never sits on disk
            try:
                proc = subprocess.Popen(
                    cmd, stdin=fin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=workdir,
                    env=_base_env(workdir), start_new_session=True, preexec_fn=lambda: _preexec(limits),
                    close_fds=True,
                )
            except OSError as e:
                return RunResult(None, isolation=level, sandbox_error=f"cannot start sandbox: {e}",
                                 duration_s=time.monotonic() - t0)
        res = _collect(proc, limits, t0)
        res.isolation = level
        if marker is not None:
            lines = res.stdout.rstrip(b"\n").rsplit(b"\n", 1)
            res.passed_marker = bool(lines) and lines[-1].strip() == marker.encode() and res.returncode == 0
            if res.passed_marker:
                res.stdout = lines[0] if len(lines) == 2 else b""
        return res
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _collect(proc: subprocess.Popen, limits: Limits, t0: float) -> RunResult:
    """Read both pipes until EOF, process exit, timeout or the output cap; always kill the group after."""
    deadline = t0 + limits.timeout_s
    bufs = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    sel = selectors.DefaultSelector()
    for f in bufs:
        os.set_blocking(f.fileno(), False)
        sel.register(f, selectors.EVENT_READ)
    pidfd = None
    try:
        pidfd = os.pidfd_open(proc.pid)
        sel.register(pidfd, selectors.EVENT_READ)
    except (AttributeError, OSError):  # old kernel: rely on pipe EOF and the deadline
        pass
    timed_out = exceeded = exited = False
    open_pipes = len(bufs)
    try:
        while open_pipes or (pidfd is not None and not exited):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            events = sel.select(timeout=min(remaining, 0.05) if exited else remaining)
            if exited and not events:
                break  # the program is gone; anything still holding the pipes is a leftover
            for key, _ in events:
                if key.fileobj == pidfd:
                    exited = True
                    sel.unregister(pidfd)
                    continue
                try:
                    chunk = os.read(key.fileobj.fileno(), 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(key.fileobj)
                    open_pipes -= 1
                    continue
                buf = bufs[key.fileobj]
                buf += chunk
                if len(buf) > limits.output_bytes:
                    del buf[limits.output_bytes:]
                    exceeded = True
            if exceeded:
                break
        if not (timed_out or exceeded or exited):  # pipes closed but the program may still run
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        _kill_group(proc)  # leftovers in the group die whether or not the program finished
        try:
            rc = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not take this long
            rc = None
        sel.close()
        if pidfd is not None:
            os.close(pidfd)
        proc.stdout.close()
        proc.stderr.close()
    return RunResult(
        returncode=rc,
        stdout=bytes(bufs[proc.stdout]),
        stderr=bytes(bufs[proc.stderr]),
        timed_out=timed_out,
        output_exceeded=exceeded,
        duration_s=round(time.monotonic() - t0, 6),
    )
