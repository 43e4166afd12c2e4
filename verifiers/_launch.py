"""How the code sandbox starts one program and collects what it printed: the rlimits every process of a run
inherits, the fresh-interpreter path (`unshare` + verifiers/_harness.py, used where no zygote runs), the output
pump that enforces the deadline and the output cap, and the process-group kill.

The zygote path (verifiers/_zygote_client.py) shares the pump, the limits and the kill.
Test: `python -m pytest -q tests/test_sandbox.py tests/test_sandbox_hostile.py`.
"""
from __future__ import annotations

import ctypes
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from verifiers._isolation import NOBODY, SandboxUnavailable, base_env, run_prefix

if TYPE_CHECKING:
    from verifiers.sandbox import Limits

HARNESS_PATH = Path(__file__).with_name("_harness.py")
# The fallback path passes the harness as `-c` source: the sandbox user may not be able to read the checkout.
HARNESS_MAIN = "\nimport sys as _s\n_s.exit(main(_s.argv[1:]))\n"


@dataclass
class ProcessOutput:
    """How one program ended; verifiers/sandbox.py turns it into the public RunResult."""

    returncode: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool
    output_exceeded: bool
    duration_s: float


def rlimits(limits: Limits) -> dict[str, int]:
    """The run's rlimits by name (verifiers/_zygote.py reads the same names)."""
    cpu = int(limits.cpu_s if limits.cpu_s is not None else limits.timeout_s + 1) + 1
    return {"as": limits.memory_mb << 20, "cpu": cpu, "nproc": limits.nproc, "fsize": limits.fsize_mb << 20,
            "nofile": limits.nofile}


_RLIMIT = {"as": resource.RLIMIT_AS, "cpu": resource.RLIMIT_CPU, "nproc": resource.RLIMIT_NPROC,
           "fsize": resource.RLIMIT_FSIZE, "nofile": resource.RLIMIT_NOFILE}
_libc = None


def prctl_pdeathsig() -> None:
    """Die with the verifier worker (PR_SET_PDEATHSIG), so a killed worker leaves no program running."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    _libc.prctl(1, signal.SIGKILL, 0, 0, 0)


def _preexec(limits: Limits) -> None:
    """In the child between fork and exec: limits that every process of the run inherits."""
    prctl_pdeathsig()
    for name, val in rlimits(limits).items():
        resource.setrlimit(_RLIMIT[name], (val, val))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_fresh(level: str, python: str, stdin_fd: int, mode: str, argv: list[str], workdir: str, limits: Limits,
              t0: float, scratch: dict | None) -> ProcessOutput:
    """A fresh interpreter per program, started through `unshare` (the fallback when no zygote runs). Raises
    SandboxUnavailable when the interpreter cannot be started."""
    setup = {"scratch": scratch["bytes"] if scratch else 0, "files": scratch["files"] if scratch else [],
             "uid": NOBODY if level == "root-ns" else None}
    cmd = [*run_prefix(level), python, "-I", "-c", HARNESS_PATH.read_text(encoding="utf-8") + HARNESS_MAIN,
           json.dumps(setup), mode, *argv]
    try:
        proc = subprocess.Popen(
            cmd, stdin=stdin_fd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=workdir,
            env=base_env("/tmp" if scratch else workdir), start_new_session=True,
            preexec_fn=lambda: _preexec(limits), close_fds=True,
        )
    except OSError as e:
        raise SandboxUnavailable(f"cannot start sandbox: {e}") from None
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # old kernel: rely on pipe EOF and the deadline
        pidfd = None
    try:
        out = pump(proc.stdout.fileno(), proc.stderr.fileno(), pidfd, limits, t0,
                   wait=lambda t: proc.wait(timeout=t))
    finally:
        kill_group(proc.pid)  # leftovers in the group die whether or not the program finished
        try:
            rc = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not take this long
            rc = None
        proc.stdout.close()
        proc.stderr.close()
    out.returncode = rc
    return out


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def pump(out_fd: int, err_fd: int, pidfd: int | None, limits: Limits, t0: float, wait) -> ProcessOutput:
    """Read both pipes until EOF + exit, the deadline or the output cap. Does not kill; the caller does, and
    sets the return code."""
    deadline = t0 + limits.timeout_s
    bufs = {out_fd: bytearray(), err_fd: bytearray()}
    sel = selectors.DefaultSelector()
    for fd in bufs:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    if pidfd is not None:
        sel.register(pidfd, selectors.EVENT_READ)
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
                fd = key.fd
                if fd == pidfd:
                    exited = True
                    sel.unregister(pidfd)
                    continue
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(fd)
                    open_pipes -= 1
                    continue
                buf = bufs[fd]
                buf += chunk
                if len(buf) > limits.output_bytes:
                    del buf[limits.output_bytes:]
                    exceeded = True
            if exceeded:
                break
        if not (timed_out or exceeded or exited):  # pipes closed but the program may still run
            try:
                wait(max(0.0, deadline - time.monotonic()))
            except (subprocess.TimeoutExpired, TimeoutError, socket.timeout):
                timed_out = True
    finally:
        sel.close()
        if pidfd is not None:
            os.close(pidfd)
    return ProcessOutput(returncode=None, stdout=bytes(bufs[out_fd]), stderr=bytes(bufs[err_fd]), timed_out=timed_out,
                         output_exceeded=exceeded, duration_s=round(time.monotonic() - t0, 6))
