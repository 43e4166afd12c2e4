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
Test: `python -m pytest -q tests/test_sandbox.py`.
"""
from __future__ import annotations

import ctypes
import json
import os
import resource
import secrets
import selectors
import shutil
import signal
import socket
import stat
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

_HARNESS_PATH = Path(__file__).with_name("_harness.py")
# The fallback path passes the harness as `-c` source: the sandbox user may not be able to read the checkout.
_HARNESS_MAIN = "\nimport sys as _s\n_s.exit(main(_s.argv[1:]))\n"
SETUP_EXIT, ENV_EXIT = 121, 120  # verifiers/_harness.py: the sandbox's own failure, a module it lacks
ROOT_ENV = "CURATE_SANDBOX_ROOT"
PYTHON_ENV = "CURATE_SANDBOX_PYTHON"


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot run programs as configured; the message names the path and the fix."""


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


# ---------------------------------------------------------------- isolation probing

def _prefix(level: str) -> list[str]:
    """The probe's command prefix: at root-ns it changes to nobody, proving nobody can run the interpreter."""
    if level == "root-ns":
        return [_UNSHARE, *_NS_FLAGS, "--setgid", str(NOBODY), "--setuid", str(NOBODY)]
    return _run_prefix(level)


def _run_prefix(level: str) -> list[str]:
    """A run's prefix: the interpreter starts as its namespace's root, sets up the scratch, then (root-ns)
    drops to nobody itself (verifiers/_harness.py `main`) before any untrusted code."""
    if level == "root-ns":
        return [_UNSHARE, *_NS_FLAGS]
    if level == "user-ns":
        return [_UNSHARE, "--user", "--map-root-user", *_NS_FLAGS]
    return []


def _default_pythons() -> list[str]:
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


_CHOSEN: dict[str, object] = {}


def isolation() -> tuple[str, str]:
    """(level, interpreter) used for every run in this process; see the module docstring. Raises
    SandboxUnavailable when CURATE_SANDBOX_PYTHON names an interpreter the sandbox user cannot run while the
    strongest level works with the default one: that would silently weaken the isolation."""
    if "result" not in _CHOSEN:
        try:
            _CHOSEN["result"] = _choose()
        except SandboxUnavailable as e:
            _CHOSEN["result"] = e
    out = _CHOSEN["result"]
    if isinstance(out, SandboxUnavailable):
        raise out
    return out  # type: ignore[return-value]


def _choose() -> tuple[str, str]:
    forced_level = os.environ.get("CURATE_SANDBOX_ISOLATION")
    forced_py = os.environ.get(PYTHON_ENV)
    if forced_py and not (os.path.isfile(forced_py) and os.access(forced_py, os.X_OK)):
        raise SandboxUnavailable(f"{PYTHON_ENV}={forced_py} is not an executable file; point it at a Python "
                                 "interpreter or unset it")
    pythons = [forced_py] if forced_py else _default_pythons()
    levels = [forced_level] if forced_level else (["root-ns"] if os.geteuid() == 0 else []) + ["user-ns", "none"]
    for level in levels:
        for python in pythons:
            if level == "none" or _probe(level, python):
                return level, python
        if level == "root-ns" and forced_py and any(_probe(level, p) for p in _default_pythons()):
            raise SandboxUnavailable(
                f"{PYTHON_ENV}={forced_py} cannot be run by the sandbox user nobody (uid {NOBODY}), so programs "
                "would run as root; make the interpreter and every directory above it readable and executable "
                "by others (for example a venv under /opt), or unset it")
    return "none", pythons[0]


def _blocked_for_nobody(path: Path) -> str | None:
    """The first directory on the way to `path` that uid/gid nobody cannot enter, or None."""
    for d in [*reversed(path.parents), path]:
        try:
            st = os.stat(d)
        except OSError:
            return None  # not created yet: its parents were fine
        bit = 0o100 if st.st_uid == NOBODY else 0o010 if st.st_gid == NOBODY else 0o001
        if not st.st_mode & bit:
            return str(d)
    return None


def _own_dir(root: Path) -> None:
    """Create `root` (mode 711: the sandbox user may enter, nobody may list) or accept it if it is a real
    directory of ours that no one else can write to (so no one can swap a run's files)."""
    try:
        os.mkdir(root, 0o711)
        os.chmod(root, 0o711)  # mkdir's mode passes through the umask
        return
    except FileExistsError:
        pass
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode):
        raise SandboxUnavailable(f"sandbox work root {root} exists and is not a directory")
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise SandboxUnavailable(f"sandbox work root {root} is owned by uid {st.st_uid} or writable by others; "
                                 f"remove it or set {ROOT_ENV} to a directory of your own")


_ROOTS: dict[tuple, object] = {}


def work_root(level: str) -> Path:
    """The directory that holds every run's work dir, independent of the caller's TMPDIR: $CURATE_SANDBOX_ROOT,
    else `curate-sandbox-<uid>` in the first of TMPDIR, /tmp, /var/tmp, /dev/shm that the sandbox user can
    reach. Raises SandboxUnavailable naming the path and the fix when none can be used."""
    key = (level, os.environ.get(ROOT_ENV), tempfile.gettempdir(), os.geteuid())
    if key not in _ROOTS:
        try:
            _ROOTS[key] = _find_root(level)
        except (SandboxUnavailable, OSError) as e:
            _ROOTS[key] = e if isinstance(e, SandboxUnavailable) else SandboxUnavailable(f"sandbox work root: {e}")
    out = _ROOTS[key]
    if isinstance(out, SandboxUnavailable):
        raise out
    return out  # type: ignore[return-value]


def _find_root(level: str) -> Path:
    forced = os.environ.get(ROOT_ENV)
    if forced:
        roots = [Path(forced).absolute()]
    else:
        bases = dict.fromkeys([tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"])
        roots = [Path(b).absolute() / f"curate-sandbox-{os.geteuid()}" for b in bases if os.path.isdir(b)]
    problems = []
    for root in roots:
        blocked = _blocked_for_nobody(root) if level == "root-ns" else None
        if blocked:
            problems.append(f"{blocked} is closed to nobody")
            continue
        _own_dir(root)
        return root
    fix = (f"set {ROOT_ENV} to a directory whose parents others may enter (chmod o+x)" if not forced else
           f"chmod o+x the directories above {forced}, or point {ROOT_ENV} elsewhere")
    raise SandboxUnavailable(f"the code sandbox has no work directory its user (nobody) can enter "
                             f"({'; '.join(problems) or 'no candidate'}); {fix}")


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
        root = work_root(level)
    except SandboxUnavailable as e:
        return RunResult(None, sandbox_error=str(e), duration_s=time.monotonic() - t0)
    try:
        workdir = tempfile.mkdtemp(prefix="curate-sbx-", dir=root)
    except FileNotFoundError:  # a tmp cleaner removed the work root during a long job: make it again
        _ROOTS.clear()
        try:
            workdir = tempfile.mkdtemp(prefix="curate-sbx-", dir=work_root(level))
        except (SandboxUnavailable, OSError) as e:
            return RunResult(None, sandbox_error=f"sandbox work root: {e}", duration_s=time.monotonic() - t0)
    try:
        paths = {}
        for name, text in files.items():
            paths[name] = Path(workdir) / name
            paths[name].write_text(text, encoding="utf-8")
        argv = list(args)  # file names relative to the run's cwd: the work dir, or the scratch they are copied to
        scratch = {"files": list(files), "bytes": limits.scratch_mb << 20} if level != "none" else None
        in_path = Path(workdir) / ".stdin"
        in_path.write_bytes(stdin)
        os.chmod(in_path, 0o600)  # opened by us, before the uid change; the program cannot re-read it
        with open(in_path, "rb") as fin:
            in_path.unlink()  # the open fd is all the program gets; a marker never sits on disk
            res = None
            with _ZYGOTE_LOCK:  # one program at a time per zygote; parallelism comes from worker processes
                zyg = _zygote(level, python)
                if zyg is not None:
                    try:
                        res = zyg.run(fin.fileno(), mode, argv, workdir, limits, t0, scratch)
                    except _ZygoteBroken:
                        _drop_zygote()  # fall back to a fresh interpreter per program
            if res is None:
                res = _run_popen(level, python, fin, mode, argv, workdir, limits, t0, scratch)
        res.isolation = level
        if marker is not None:
            lines = res.stdout.rstrip(b"\n").rsplit(b"\n", 1)
            res.passed_marker = bool(lines) and lines[-1].strip() == marker.encode() and res.returncode == 0
            if res.passed_marker:
                res.stdout = lines[0] if len(lines) == 2 else b""
        return res
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run_popen(level, python, fin, mode, argv, workdir, limits, t0, scratch) -> RunResult:
    """A fresh interpreter per program, started through `unshare` (the fallback when no zygote runs)."""
    setup = {"scratch": scratch["bytes"] if scratch else 0, "files": scratch["files"] if scratch else [],
             "uid": NOBODY if level == "root-ns" else None}
    cmd = [*_run_prefix(level), python, "-I", "-c", _HARNESS_PATH.read_text(encoding="utf-8") + _HARNESS_MAIN,
           json.dumps(setup), mode, *argv]
    try:
        proc = subprocess.Popen(
            cmd, stdin=fin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=workdir,
            env=_base_env("/tmp" if scratch else workdir), start_new_session=True,
            preexec_fn=lambda: _preexec(limits), close_fds=True,
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
            [python, "-I", str(_ZYGOTE_SRC), str(child.fileno()), level, str(_HARNESS_PATH)], pass_fds=(child.fileno(),),
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

    def run(self, stdin_fd: int, mode: str, argv: list[str], workdir: str, limits: Limits, t0: float,
            scratch: dict | None = None) -> RunResult:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        cpu = int(limits.cpu_s if limits.cpu_s is not None else limits.timeout_s + 1) + 1
        req = {"args": argv, "cwd": workdir, "mode": mode, "env": _base_env("/tmp" if scratch else workdir),
               "scratch": scratch,
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
