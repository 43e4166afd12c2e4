"""Training runs as one unit: one run per output_dir, signals reach every rank, ranks stop when the launcher dies.

torchrun starts each rank in its own session (setsid), so neither a signal to the launcher's process group
nor the launcher's death reaches the ranks by itself. Three pieces close that gap (torch-free):
- `RunLock`: the launcher holds `output_dir/.train.lock` with flock(LOCK_EX) for the whole run and writes
  its pid and host into it. The kernel drops the lock when the launcher dies, so a lock file left by a
  killed run is stale by construction; the pid is only for the message. Ranks hold `.ranks.lock` shared
  for their lifetime; a new launcher waits a few seconds for it, so it never loads a state that a dying
  rank of the previous run is still writing or deleting. Where flock is unsupported, a live pid on this
  host counts as a running launcher.
- `run_torchrun`: torchrun starts with PR_SET_PDEATHSIG(SIGTERM) (Linux), so it hears of the launcher's
  death and stops its ranks; SIGINT/SIGTERM/SIGHUP to the launcher are forwarded as SIGTERM (a second
  signal, or 30 s without exit: SIGKILL); the launcher returns only once no rank holds `.ranks.lock`.
- `watch_launcher`: a daemon thread in each rank exits the rank when the launcher (CURATE_TRAIN_LAUNCHER_PID)
  is gone or the rank's parent (torchrun) changed. A watchdog rather than PR_SET_PDEATHSIG in the ranks:
  that signal fires when the parent *thread* that forked the rank exits, which is torchrun's business.
Tested in tests/test_train_guard.py (unit) and tests/test_train_shutdown.py (real torchrun, kills).
"""
from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from curate.errors import CurateError, InputError

LAUNCHER_ENV = "CURATE_TRAIN_LAUNCHER_PID"
RANKS_LOCK_ENV = "CURATE_TRAIN_RANKS_LOCK"
GRACE_S = 30.0

try:
    import fcntl
except ImportError:  # not POSIX: only the pid check
    fcntl = None


class TrainingStopped(CurateError):
    """The launcher got a signal and stopped every rank; the run resumes from its latest state."""

    def __init__(self, signum: int, output_dir: Path) -> None:
        name = signal.Signals(signum).name
        super().__init__(f"training stopped by {name}; every rank has exited",
                         hint=f"continue with the same command plus --resume (output_dir {output_dir})")
        self.exit_code = 128 + signum


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie (a dead launcher its parent has not reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed launcher its parent has not reaped yet is a zombie: dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _flock(fd: int, how: int) -> bool:
    """True when taken, False when someone else holds it; raises OSError when the filesystem cannot lock."""
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise


class RunLock:
    """`with RunLock(out):` around everything a launcher does to output_dir. Raises InputError when a run is alive."""

    def __init__(self, output_dir: Path, ranks_wait_s: float = 15.0) -> None:
        self.dir = Path(output_dir)
        self.path = self.dir / ".train.lock"
        self.ranks_path = self.dir / ".ranks.lock"
        self.ranks_wait_s = ranks_wait_s
        self.fd: int | None = None
        self.created_dir = False

    def _holder(self) -> str:
        try:
            pid, _, host = self.path.read_text().strip().partition(" ")
            return f"pid {pid} on {host}" if pid else "another process"
        except OSError:
            return "another process"

    def acquire(self) -> "RunLock":
        self.created_dir = not self.dir.exists()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise InputError(f"output_dir '{self.dir}' is not writable ({e.strerror})",
                             hint="choose an output_dir you can write to") from None
        try:
            held = self._take(fd)
        except BaseException:
            os.close(fd)
            raise
        if not held:
            os.close(fd)
            raise InputError(f"output_dir '{self.dir}' is in use by a running `curate train` ({self._holder()})",
                             hint="wait for it to finish, or stop it (its ranks stop with it), then --resume")
        self.fd = fd
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        try:
            self.wait_ranks(self.ranks_wait_s)
        except BaseException:
            self.release()
            raise
        return self

    def _take(self, fd: int) -> bool:
        if fcntl is not None:
            try:
                return _flock(fd, fcntl.LOCK_EX)
            except OSError:
                pass  # e.g. a filesystem without locks: fall back to the pid inside
        pid, _, host = os.pread(fd, 256, 0).decode(errors="replace").strip().partition(" ")
        return not (pid.isdigit() and host == socket.gethostname() and int(pid) != os.getpid() and pid_alive(int(pid)))

    def wait_ranks(self, timeout_s: float) -> None:
        """Return once no rank of any run holds `.ranks.lock`; InputError after timeout_s."""
        if fcntl is None:
            return
        fd = os.open(self.ranks_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    if _flock(fd, fcntl.LOCK_EX):
                        fcntl.flock(fd, fcntl.LOCK_UN)
                        return
                except OSError:
                    return
                if time.monotonic() >= deadline:
                    raise InputError(f"ranks of an earlier run in '{self.dir}' are still running after {timeout_s:.0f} s",
                                     hint="they stop within seconds of their launcher; if not, find them with "
                                          f"`fuser {self.ranks_path}`")
                time.sleep(0.2)
        finally:
            os.close(fd)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # the file stays: unlinking a flock file races with the next opener
            self.fd = None

    def discard_if_unused(self) -> None:
        """After a refused start in a folder this lock created: leave no trace."""
        self.release()
        if self.created_dir and {p.name for p in self.dir.iterdir()} <= {self.path.name, self.ranks_path.name}:
            for name in (self.path, self.ranks_path):
                name.unlink(missing_ok=True)
            self.dir.rmdir()

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def pdeathsig_setter(sig: int = signal.SIGTERM):
    """A function for Popen's preexec_fn that asks the kernel to send `sig` to the child when we die (Linux).
    Resolved here, in the parent: nothing may be imported between fork and exec."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    PR_SET_PDEATHSIG = 1
    return lambda: prctl(PR_SET_PDEATHSIG, int(sig))


def catchable_signals(signals) -> list:
    """Signals to take over: not those the user set to be ignored (nohup ignores SIGHUP; so do we)."""
    return [s for s in signals if signal.getsignal(s) is not signal.SIG_IGN]


def run_torchrun(cmd: list[str], lock: RunLock | None, stdout=None) -> int:
    """Run torchrun as part of this process: forward signals, and return only once every rank is gone."""
    env = {**os.environ, LAUNCHER_ENV: str(os.getpid())}
    if lock is not None:
        env[RANKS_LOCK_ENV] = str(lock.ranks_path)
    # The parent-death signal follows the thread that forked: only the main thread lives as long as we do.
    main = threading.current_thread() is threading.main_thread()
    proc = subprocess.Popen(cmd, env=env, stdout=stdout, preexec_fn=pdeathsig_setter() if main else None)
    got: list[int] = []

    def forward(signum, frame):
        got.append(signum)
        try:
            proc.send_signal(signal.SIGKILL if len(got) > 1 else signal.SIGTERM)
        except ProcessLookupError:
            pass

    catch = catchable_signals((signal.SIGINT, signal.SIGTERM, signal.SIGHUP)) if main else []
    old = {s: signal.signal(s, forward) for s in catch}
    try:
        deadline = None
        while True:
            try:
                rc = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if got and deadline is None:
                    deadline = time.monotonic() + GRACE_S
                if deadline is not None and time.monotonic() > deadline:
                    proc.kill()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for s, h in old.items():
            signal.signal(s, h)
        if lock is not None:
            lock.wait_ranks(GRACE_S)  # torchrun gone: its ranks follow within the watchdog's period
    if got:
        raise TrainingStopped(got[0], lock.dir if lock is not None else Path("."))
    return rc


def watch_launcher(poll_s: float = 0.5) -> None:
    """In a rank: hold the ranks lock, and exit when the launcher or this rank's parent goes away."""
    lock_path = os.environ.get(RANKS_LOCK_ENV)
    if lock_path and fcntl is not None:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # held until this process exits (the fd is never closed)
        except OSError:
            os.close(fd)
    launcher = int(os.environ.get(LAUNCHER_ENV, "0") or 0)
    if not launcher or launcher == os.getpid():
        return
    parent, started = os.getppid(), _start_time(launcher)

    def check():
        while True:
            gone = not pid_alive(launcher) or _start_time(launcher) != started
            if gone or os.getppid() != parent:
                who = f"launcher (pid {launcher})" if gone else f"parent (pid {parent})"
                os.write(2, f"curate train rank {os.environ.get('RANK', '?')}: the {who} is gone; stopping\n".encode())
                os._exit(143)
            time.sleep(poll_s)

    threading.Thread(target=check, name="curate-launcher-watchdog", daemon=True).start()
