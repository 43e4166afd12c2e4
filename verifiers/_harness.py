"""The first code that runs inside every sandboxed program (stdlib only; never imported by curate itself).

verifiers/_zygote.py executes this file's source inside each forked program; the fallback path passes the
same source to `python -I -c` (the sandbox user may not be able to read the checkout). Entry: `run(mode, args)`
returns the process's exit code.

- mode "script", args [path]: run the file as __main__ (stdin/stdout tests).
- mode "check", args [solution, entry]: a function-call check whose pass signal and tests the program cannot
  read or forge. This process (T) forks the solution's process (C) after making itself non-dumpable, and only
  then reads a one-time marker and the test source from stdin: the tests never sit in a file and were never in
  the memory C was forked from. C runs the solution with /dev/null as stdin, stderr as stdout and no
  capabilities, and serves calls to `entry` over a socket: arguments and results cross as plain data (numbers,
  strings, bytes, lists, tuples, dicts, sets; anything else arrives as an opaque value equal to nothing). T runs
  the test's `check(entry)` against that proxy and prints the marker only after it returns, so exiting
  early, walking the stack for the marker, or returning an object whose `==` is always True cannot pass.
  An exception from the candidate (of any type, or its process ending) fails the check even if the test
  catches it: it reaches the test as `CandidateRaised` (a BaseException, so `except Exception` and a
  `for ... in map(candidate, ...)` loop cannot swallow it as they did StopIteration) and is remembered.
  When C fails before it can serve (its file raises, or it defines no `entry`: the NameError a single-process
  run would meet), it sends that exception as the answer to T's first call, so the reason names the real cause.

`enter_scratch` (called at the start of a run, as root of the run's private mount namespace) mounts a fresh,
size-limited tmpfs on /tmp and binds it on /dev/shm and /var/tmp, copies the program's files into it and makes it
the working directory; it vanishes with the namespace when the run ends. `main` is the entry of the fallback
path (a fresh interpreter per program): scratch, privilege drop, then `run`.

Exit codes the caller reads as "could not judge" (verdict `error`, never `incorrect`): SETUP_EXIT when the
sandbox's own files or set-up fail, ENV_EXIT when the program needs a module the sandbox interpreter lacks.
A program can exit with these codes itself; that only ever turns its verdict into `error`.
Test: `python -m pytest -q tests/test_sandbox.py tests/test_sandbox_hostile.py`.
"""
import ctypes
import json
import os
import socket
import struct
import sys
import traceback

SETUP_EXIT = 121
ENV_EXIT = 120
PR_SET_DUMPABLE = 4
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded once in the zygote, inherited by every fork


class _SetupError(Exception):
    pass


class CandidateRaised(BaseException):
    """The candidate's own exception (or its process ending), as the test sees it: a BaseException, so neither
    `except Exception` nor a loop over `map(candidate, ...)` can take it for a normal end."""


class _Passthrough(BaseException):
    """An exit code decided by the solution's process (missing module, set-up failure), passed on by T."""

    def __init__(self, code):
        self.code = code


def _compile(path):
    try:
        with open(path, encoding="utf-8") as f:
            src = f.read()
    except OSError as e:
        raise _SetupError(f"cannot read {path}: {e}") from None
    return compile(src, path, "exec")


def _main_module(path):
    import types

    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    sys.argv = [path]
    return main.__dict__


def _guard(fn):
    """Run fn() and map how it ended to an exit code (the caller exits with it)."""
    try:
        fn()
        return 0
    except _SetupError as e:
        print(f"curate-sandbox: set-up failed: {e}", file=sys.stderr)
        return SETUP_EXIT
    except _Passthrough as e:
        return e.code
    except SystemExit as e:
        if e.code is None:
            return 0
        if isinstance(e.code, int):
            return e.code & 0xFF
        print(e.code, file=sys.stderr)
        return 1
    except ModuleNotFoundError as e:
        traceback.print_exc()
        print(f"curate-sandbox: missing module {e.name!r} in the sandbox interpreter {sys.executable}",
              file=sys.stderr)
        return ENV_EXIT
    except BaseException:
        traceback.print_exc()
        return 1


MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 32, 4096, 16384
NOBODY = 65534


def _mount(source, target, fstype, flags, data):
    if _LIBC.mount(source, target, fstype, flags, data) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mount {target.decode()}: {os.strerror(e)}")


def enter_scratch(names, size_bytes):
    """As root of a private mount namespace: a fresh tmpfs of `size_bytes` on /tmp, bound on /dev/shm and
    /var/tmp too (one size limit for all three), the program files `names` (relative to the current directory,
    the caller's work dir) copied in read-only, and /tmp made the working directory."""
    payload = []
    for name in names:
        with open(name, "rb") as f:
            payload.append((name, f.read()))
    # the interpreter itself may live under a masked directory (a venv in /tmp): keep it visible, read-only
    masked = ("/tmp/", "/var/tmp/", "/dev/shm/")
    keep = sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                                  os.path.dirname(sys.executable))
                   if os.path.realpath(p).startswith(masked)})
    fds = [os.open(p, os.O_PATH | os.O_DIRECTORY) for p in keep]
    _mount(b"tmpfs", b"/tmp", b"tmpfs", MS_NOSUID | MS_NODEV,
           f"size={int(size_bytes)},nr_inodes=16384,mode=1777".encode())
    for d in (b"/dev/shm", b"/var/tmp"):
        if os.path.isdir(d):
            _mount(b"/tmp", d, None, MS_BIND, None)
    for path, fd in zip(keep, fds):
        os.makedirs(path, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}".encode(), path.encode(), None, MS_BIND | MS_REC, None)
        _mount(None, path.encode(), None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)
        os.close(fd)
    os.chdir("/tmp")
    for name, data in payload:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def main(argv):
    """Fallback entry: argv = [json set-up, mode, *args]. Set-up: {"scratch": bytes or 0, "files": [...],
    "uid": uid to drop to or null}; runs before any untrusted code, as the namespace's root."""
    try:
        setup = json.loads(argv[0])
        if setup.get("scratch"):
            enter_scratch(setup["files"], setup["scratch"])
        if setup.get("uid") is not None:
            os.setgroups([])
            os.setgid(setup["uid"])
            os.setuid(setup["uid"])
            _LIBC.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG SIGKILL again: a credential change clears it
    except BaseException as e:
        print(f"curate-sandbox: set-up failed: {e}", file=sys.stderr)
        return SETUP_EXIT
    return run(argv[1], argv[2:])


def run(mode, args):
    if mode == "script":
        def script():
            code = _compile(args[0])
            exec(code, _main_module(args[0]))

        return _flush(_guard(script))
    if mode == "check":
        return _flush(_check(*args))
    print(f"curate-sandbox: unknown mode {mode!r}", file=sys.stderr)
    return SETUP_EXIT


def _flush(code):
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except BaseException:
            pass
    return code


# ---------------------------------------------------------------- plain data across the process boundary

class Opaque:
    """A value that did not cross as plain data: equal to nothing, not even itself."""

    def __init__(self, kind, text):
        self.kind, self.text = kind, text

    def __eq__(self, other):
        return False

    def __ne__(self, other):
        return True

    __hash__ = object.__hash__

    def __repr__(self):
        return f"<{self.kind}: {self.text}>"


def encode(x, depth=0):
    if depth > 200:
        return ["o", "deep", "nested too deeply"]
    t = type(x)
    if x is None:
        return ["n"]
    if t is bool:
        return ["b", x]
    if isinstance(x, Opaque):
        return ["o", x.kind, x.text]
    if t.__module__ == "numpy" and hasattr(x, "item") and getattr(x, "shape", None) == ():
        return encode(x.item(), depth + 1)  # numpy scalars compare like Python numbers
    if isinstance(x, bool):
        return ["b", bool(x)]
    if isinstance(x, int):
        return ["i", str(int(x))]
    if isinstance(x, float):
        return ["f", repr(float(x))]
    if isinstance(x, complex):
        return ["c", repr(x.real), repr(x.imag)]
    if isinstance(x, str):
        return ["s", str(x)]
    if isinstance(x, (bytes, bytearray)):
        return ["y" if isinstance(x, bytes) else "ba", bytes(x).hex()]
    if isinstance(x, list):
        return ["l", [encode(v, depth + 1) for v in x]]
    if isinstance(x, tuple):
        return ["t", [encode(v, depth + 1) for v in x]]
    if isinstance(x, dict):
        return ["d", [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in x.items()]]
    if isinstance(x, (set, frozenset)):
        return ["fs" if isinstance(x, frozenset) else "set", [encode(v, depth + 1) for v in x]]
    try:
        text = repr(x)[:200]
    except BaseException:
        text = "?"
    return ["o", t.__name__, text]


def decode(e):
    tag = e[0]
    if tag == "n":
        return None
    if tag == "b":
        return bool(e[1])
    if tag == "i":
        return int(e[1])
    if tag == "f":
        return float(e[1])
    if tag == "c":
        return complex(float(e[1]), float(e[2]))
    if tag == "s":
        return e[1]
    if tag == "y":
        return bytes.fromhex(e[1])
    if tag == "ba":
        return bytearray.fromhex(e[1])
    if tag == "l":
        return [decode(v) for v in e[1]]
    if tag == "t":
        return tuple(decode(v) for v in e[1])
    if tag == "d":
        return {decode(k): decode(v) for k, v in e[1]}
    if tag == "set":
        return {decode(v) for v in e[1]}
    if tag == "fs":
        return frozenset(decode(v) for v in e[1])
    return Opaque(e[1], e[2])


def _send(sock, obj):
    data = json.dumps(obj).encode()
    sock.sendall(struct.pack("!I", len(data)) + data)


def _recv(sock):
    """One length-prefixed message (one recv call for the usual small one), or None at end of stream."""
    buf = bytearray()
    need = 4
    while len(buf) < need:
        chunk = sock.recv(max(need - len(buf), 65536) if need == 4 else need - len(buf))
        if not chunk:
            return None
        buf += chunk
        if need == 4 and len(buf) >= 4:
            need = 4 + struct.unpack("!I", bytes(buf[:4]))[0]
    return json.loads(bytes(buf[4:need]))


# ---------------------------------------------------------------- check mode

def _drop_capabilities():
    """C keeps no capability (user-ns level: it is root of its namespace), so it cannot ptrace T."""
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()
    _LIBC.capset(header, data)
    _LIBC.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS: no exec can give them back


def _solution_process(sock, solution, entry):
    fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)
    os.dup2(2, 1)  # its prints go to stderr: stdout carries only T's pass marker
    sys.stdin = open(0, "r", encoding="utf-8", errors="replace", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
    _drop_capabilities()
    holder = {}

    def load():
        code = _compile(solution)
        g = _main_module(solution)
        exec(code, g)
        cls = g.get("Solution")
        if isinstance(cls, type) and hasattr(cls, entry):
            return getattr(cls(), entry)
        if callable(g.get(entry)):
            return g[entry]
        if entry in g:
            raise TypeError(f"{type(g[entry]).__name__!r} object is not callable")
        raise NameError(f"name {entry!r} is not defined")  # what the test's call would raise in one process

    def serve():
        try:
            fn = load()
        except (SystemExit, ModuleNotFoundError, _SetupError):
            raise  # an exit code of its own, or one T passes on
        except BaseException as e:
            holder["failed"] = "%s: %s" % _describe(e)
            raise
        holder["fn"] = fn
        _flush(0)  # T kills this process when the test ends: its prints must be out by then
        while True:
            msg = _recv(sock)
            if msg is None:
                return
            try:
                result = fn(*decode(msg["args"]), **decode(msg["kwargs"]))
                reply = {"ok": encode(result)}
            except ModuleNotFoundError as e:
                reply = {"env": f"missing module {e.name!r} in the sandbox interpreter {sys.executable}"}
            except BaseException as e:  # the candidate's own exception, sent back for the test to see
                name, text = _describe(e)
                reply = {"raise": name, "text": text}
            _flush(0)
            _send(sock, reply)

    code = _guard(serve)
    _flush(code)
    if "failed" in holder:  # T reads it as the answer to its first call: the real cause, not just "ended"
        try:
            _send(sock, {"failed": holder["failed"]})
        except OSError:
            pass
    os._exit(code)


def _describe(e):
    """(type name, message) of an exception, whatever its __str__ does."""
    try:
        text = str(e)[:300]
    except BaseException:
        text = "?"
    return type(e).__name__, text


class _Candidate:
    """What the test calls: forwards each call to the solution's process."""

    def __init__(self, sock, pid, entry):
        self._sock, self._pid, self.__name__ = sock, pid, entry
        self.raised = None  # what the candidate raised first, kept even if the test catches it
        self._ended = None

    def _fail(self, what):
        if self.raised is None:
            self.raised = what
        raise CandidateRaised(what)

    def __call__(self, *args, **kwargs):
        if self._ended is not None:
            self._fail(self._ended)
        try:
            _send(self._sock, {"args": encode(list(args)), "kwargs": encode(dict(kwargs))})
        except OSError:
            pass  # the solution's process is gone; what it sent before it went is still there to read
        try:
            reply = _recv(self._sock)
        except OSError:
            reply = None
        if reply is not None and "failed" in reply:
            self._ended = f"{reply['failed']} (while loading the solution, before answering)"
            self._fail(self._ended)
        if reply is None:
            _, status = os.waitpid(self._pid, 0)
            code = os.waitstatus_to_exitcode(status)
            if code in (ENV_EXIT, SETUP_EXIT):
                raise _Passthrough(code)
            self._ended = f"the solution's process ended (exit code {code}) before answering"
            self._fail(self._ended)
        if "ok" in reply:
            return decode(reply["ok"])
        if "env" in reply:
            print(f"curate-sandbox: {reply['env']}", file=sys.stderr)
            raise _Passthrough(ENV_EXIT)
        self._fail(f"{reply['raise']}: {reply['text']}")


def _read_stdin():
    chunks = []
    while True:
        chunk = os.read(0, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _check(solution, entry):
    sock, child_sock = socket.socketpair()
    _LIBC.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # before the fork: C inherits no way into T's memory
    pid = os.fork()
    if pid == 0:
        sock.close()
        _solution_process(child_sock, solution, entry)
    child_sock.close()
    # only now, in T alone: the marker line, then the test source (never a file C could open)
    marker, _, test_src = _read_stdin().partition(b"\n")
    marker = marker.decode().strip()
    fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)
    candidate = _Candidate(sock, pid, entry)

    def tests():
        try:
            test_code = compile(test_src.decode("utf-8"), "test.py", "exec")
        except (SyntaxError, ValueError, UnicodeDecodeError) as e:
            raise _SetupError(f"the test does not compile: {e}") from None
        g = _main_module("test.py")
        g[entry] = candidate
        exec(test_code, g)
        g[entry] = candidate  # the test file's context may define a stub of the same name
        check = g.get("check")
        if not callable(check):
            raise _SetupError("the test defines no check(candidate) function")
        check(candidate)

    try:
        code = _guard(tests)
    finally:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    if candidate.raised is not None and code == 0:  # the test caught it; it still fails
        code = 1
    if candidate.raised is not None:
        print(f"CandidateRaised: the candidate raised {candidate.raised[:300]}", file=sys.stderr)
    if code == 0:
        sys.stdout.flush()
        os.write(1, ("\n" + marker + "\n").encode())
    return code
