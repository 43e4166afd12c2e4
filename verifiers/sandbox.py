"""Run one untrusted Python program in a fresh, limited, isolated process and capture its output.

How a program starts: a per-process "zygote" (verifiers/_zygote.py, a pre-forked clean interpreter that never
runs untrusted code) forks one fresh process per program, so there is no interpreter start-up per test.
Where the zygote cannot run (or CURATE_SANDBOX_ZYGOTE=0), each program gets a fresh interpreter started
through the `unshare` tool instead; both paths give the same isolation and are both tested.

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
import json
import os
import resource
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
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
        with open(in_path, "rb") as fin:
            in_path.unlink()  # the open fd is all the program gets; the marker never sits on disk
            res = None
            with _ZYGOTE_LOCK:  # one program at a time per zygote; parallelism comes from worker processes
                zyg = _zygote(level, python)
                if zyg is not None:
                    try:
                        res = zyg.run(fin.fileno(), prog, workdir, mode, limits, t0)
                    except _ZygoteBroken:
                        _drop_zygote()  # fall back to a fresh interpreter per program
            if res is None:
                res = _run_popen(level, python, fin, prog, workdir, mode, limits, t0)
        res.isolation = level
        if marker is not None:
            lines = res.stdout.rstrip(b"\n").rsplit(b"\n", 1)
            res.passed_marker = bool(lines) and lines[-1].strip() == marker.encode() and res.returncode == 0
            if res.passed_marker:
                res.stdout = lines[0] if len(lines) == 2 else b""
        return res
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run_popen(level, python, fin, prog, workdir, mode, limits, t0) -> RunResult:
    """A fresh interpreter per program, started through `unshare` (the fallback when no zygote runs)."""
    cmd = [*_prefix(level), python, "-I", "-c", _HARNESS, mode, str(prog)]
    try:
        proc = subprocess.Popen(
            cmd, stdin=fin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=workdir,
            env=_base_env(workdir), start_new_session=True, preexec_fn=lambda: _preexec(limits), close_fds=True,
        )
    except OSError as e:
        return RunResult(None, sandbox_error=f"cannot start sandbox: {e}", duration_s=time.monotonic() - t0)
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # old kernel: rely on pipe EOF and the deadline
        pidfd = None
    try:
        res = _pump(proc.stdout.fileno(), proc.stderr.fileno(), pidfd, limits, t0,
                    wait=lambda t: proc.wait(timeout=t))
    finally:
        _kill_group(proc.pid)  # leftovers in the group die whether or not the program finished
        try:
            rc = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not take this long
            rc = None
        proc.stdout.close()
        proc.stderr.close()
    res.returncode = rc
    return res


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _pump(out_fd: int, err_fd: int, pidfd: int | None, limits: Limits, t0: float, wait) -> RunResult:
    """Read both pipes until EOF + exit, the deadline or the output cap. Does not kill; the caller does."""
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
    return RunResult(returncode=None, stdout=bytes(bufs[out_fd]), stderr=bytes(bufs[err_fd]), timed_out=timed_out,
                     output_exceeded=exceeded, duration_s=round(time.monotonic() - t0, 6))


# ---------------------------------------------------------------- the pre-forked clean worker

_ZYGOTE_SRC = Path(__file__).with_name("_zygote.py")


class _ZygoteBroken(Exception):
    pass


class _Zygote:
    """Client side of verifiers/_zygote.py: one per process, one program at a time."""

    def __init__(self, level: str, python: str) -> None:
        self.level = level
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.proc = subprocess.Popen(
            [python, "-I", str(_ZYGOTE_SRC), str(child.fileno()), level], pass_fds=(child.fileno(),),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cwd="/", env=_base_env("/"),
            start_new_session=True, preexec_fn=_prctl_pdeathsig,
        )
        child.close()
        self.sock = parent
        self.pid = os.getpid()

    def alive(self) -> bool:
        return self.pid == os.getpid() and self.proc.poll() is None

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            if self.pid == os.getpid():
                self.proc.kill()
                self.proc.wait(timeout=5)

    def _recv(self, timeout: float) -> dict:
        self.sock.settimeout(timeout)
        try:
            msg = self.sock.recv(4096)
        except (OSError, socket.timeout) as e:
            raise _ZygoteBroken(f"zygote did not answer: {e}") from None
        if not msg:
            raise _ZygoteBroken("zygote exited")
        return json.loads(msg)

    def run(self, stdin_fd: int, prog: Path, workdir: str, mode: str, limits: Limits, t0: float) -> RunResult:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        cpu = int(limits.cpu_s if limits.cpu_s is not None else limits.timeout_s + 1) + 1
        req = {"path": str(prog), "cwd": workdir, "mode": mode, "env": _base_env(workdir),
               "limits": {"as": limits.memory_mb << 20, "cpu": cpu, "nproc": limits.nproc,
                          "fsize": limits.fsize_mb << 20, "nofile": limits.nofile}}
        try:
            try:
                socket.send_fds(self.sock, [json.dumps(req).encode()], [stdin_fd, out_w, err_w])
            except OSError as e:
                raise _ZygoteBroken(f"zygote unreachable: {e}") from None
            finally:
                os.close(out_w)
                os.close(err_w)
            first = self._recv(10.0)
            if "pid" not in first:
                raise _ZygoteBroken(f"zygote could not start the program: {first.get('error')}")
            pid = first["pid"]
            try:
                pidfd = os.pidfd_open(pid)
            except (AttributeError, OSError):
                pidfd = None
            box: dict = {}

            def wait(t: float) -> None:
                box.update(self._recv_status(t))

            try:
                res = _pump(out_r, err_r, pidfd, limits, t0, wait=wait)
            finally:
                _kill_group(pid)
            if "returncode" not in box:
                box.update(self._recv(10.0))
            res.returncode = box["returncode"]
            return res
        finally:
            os.close(out_r)
            os.close(err_r)

    def _recv_status(self, timeout: float) -> dict:
        try:
            return self._recv(max(timeout, 0.001))
        except _ZygoteBroken:
            raise TimeoutError from None


_ZYGOTE: _Zygote | None = None
_ZYGOTE_LOCK = threading.Lock()
_ZYGOTE_OFF = False


def _drop_zygote() -> None:
    global _ZYGOTE, _ZYGOTE_OFF
    if _ZYGOTE is not None:
        try:
            _ZYGOTE.close()
        except Exception:
            pass
    _ZYGOTE, _ZYGOTE_OFF = None, True


def _zygote(level: str, python: str) -> _Zygote | None:
    """The process's zygote, started on first use; None where it is off or unsupported (user-ns level)."""
    global _ZYGOTE
    if _ZYGOTE_OFF or level == "user-ns" or os.environ.get("CURATE_SANDBOX_ZYGOTE", "1") == "0":
        return None
    if _ZYGOTE is None or not _ZYGOTE.alive():
        try:
            _ZYGOTE = _Zygote(level, python)
        except OSError:
            return None
    return _ZYGOTE
