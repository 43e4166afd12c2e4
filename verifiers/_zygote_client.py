"""The code sandbox's side of the pre-forked clean worker (verifiers/_zygote.py): one zygote per process, started
on first use, asked to fork one program at a time. Where it cannot start or breaks, `run_in_zygote` answers
None and the caller starts a fresh interpreter instead (verifiers/_launch.py); both paths isolate the same.
Test: `python -m pytest -q tests/test_sandbox.py tests/test_sandbox_hostile.py`.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from verifiers._isolation import base_env
from verifiers._launch import HARNESS_PATH, ProcessOutput, kill_group, prctl_pdeathsig, pump, rlimits

if TYPE_CHECKING:
    from verifiers.sandbox import Limits

_ZYGOTE_SRC = Path(__file__).with_name("_zygote.py")


class _ZygoteBroken(Exception):
    pass


class _Zygote:
    """Client side of verifiers/_zygote.py: one per process, one program at a time."""

    def __init__(self, level: str, python: str) -> None:
        self.level = level
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.proc = subprocess.Popen(
            [python, "-I", str(_ZYGOTE_SRC), str(child.fileno()), level, str(HARNESS_PATH)], pass_fds=(child.fileno(),),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cwd="/", env=base_env("/"),
            start_new_session=True, preexec_fn=prctl_pdeathsig,
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
            scratch: dict | None = None) -> ProcessOutput:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        req = {"args": argv, "cwd": workdir, "mode": mode, "env": base_env("/tmp" if scratch else workdir),
               "scratch": scratch, "limits": rlimits(limits)}
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
                res = pump(out_r, err_r, pidfd, limits, t0, wait=wait)
            finally:
                kill_group(pid)
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


def run_in_zygote(level: str, python: str, stdin_fd: int, mode: str, argv: list[str], workdir: str, limits: Limits,
                  t0: float, scratch: dict | None) -> ProcessOutput | None:
    """Run one program through the process's zygote; None where no zygote runs here or it broke (then it stays
    off for this process and the caller starts a fresh interpreter)."""
    with _ZYGOTE_LOCK:  # one program at a time per zygote; parallelism comes from worker processes
        zyg = _zygote(level, python)
        if zyg is None:
            return None
        try:
            return zyg.run(stdin_fd, mode, argv, workdir, limits, t0, scratch)
        except _ZygoteBroken:
            _drop_zygote()
            return None
