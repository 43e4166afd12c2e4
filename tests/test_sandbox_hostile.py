"""Containment corpus for the code sandbox: each attack must not escape, leave no process behind and never
pass. Short timeouts keep the whole file to a few seconds. The sandbox's ordinary behaviour (a clean run,
values crossing the check boundary, levels, interpreters, work roots, set-up failures) is tested in
tests/test_sandbox.py. Run: `python -m pytest -q tests/test_sandbox_hostile.py`."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers import descendants
from tests.sandbox_cases import FAST, LEVEL, NS, P, code, leftovers, run
from tests.sandbox_cases import no_leftovers  # noqa: F401 (autouse: every test here leaves no process behind)
from verifiers.code import CodeVerifier
from verifiers.sandbox import OUTPUT_CAP, Limits, run_check, run_python, work_root

# Without namespaces (level "none") some attacks would really hurt the machine running the tests: a fork bomb
# as root (RLIMIT_NPROC does not bind root) or a program killing the test process. Those run only where
# the sandbox contains them; the fallback level is documented as not containing them.
NPROC_BINDS = LEVEL == "root-ns" or os.geteuid() != 0


def test_leftover_check_sees_only_this_test_process_tree(tmp_path):
    """Another curate process running code on the same machine is not this test's leftover."""
    fake = tmp_path / "curate-sbx-elsewhere"
    fake.mkdir()
    out = subprocess.run(["sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $!"], cwd=fake, capture_output=True, text=True)
    stranger = int(out.stdout.strip())  # its parent exited: it now belongs to init, not to this test
    try:
        assert Path(f"/proc/{stranger}/cwd").resolve() == fake.resolve()
        assert stranger not in descendants(os.getpid()) and leftovers() == []
    finally:
        os.kill(stranger, 9)


# ---------------------------------------------------------------- the corpus (>= 15 attacks)

@pytest.mark.skipif(not NPROC_BINDS, reason="as root without a uid change RLIMIT_NPROC does not apply")
def test_fork_bomb():
    r = run("""
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """)
    assert not r.ok and not r.passed_marker


def test_memory_bomb():
    r = run("x = bytearray(8 << 30)\nprint('allocated')")
    assert not r.ok and b"allocated" not in r.stdout and b"MemoryError" in r.stderr
    assert not r.timed_out, "the allocation fails at once under the memory limit, not at the time limit"


def test_infinite_loop_is_killed_on_time():
    t0 = time.monotonic()
    r = run("while True: pass")
    assert r.timed_out and not r.ok and time.monotonic() - t0 < FAST.timeout_s + 1.0


def test_infinite_output_is_capped():
    r = run("import sys\nwhile True: sys.stdout.write('x' * 65536)")
    assert r.output_exceeded and len(r.stdout) == OUTPUT_CAP and not r.ok


def test_infinite_stderr_is_capped():
    r = run("import sys\nwhile True: sys.stderr.write('y' * 65536)")
    assert r.output_exceeded and len(r.stderr) == OUTPUT_CAP and not r.ok


@pytest.mark.skipif(LEVEL != "root-ns", reason="writes outside the work dir are only blocked when running as nobody")
def test_writing_and_deleting_outside_the_work_dir(tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    r = run(f"""
        import os, shutil
        for attempt in (lambda: open({str(tmp_path / 'evil.txt')!r}, 'w').write('x'),
                        lambda: os.remove({str(victim)!r}),
                        lambda: shutil.rmtree({str(tmp_path)!r}),
                        lambda: open({str(victim)!r}, 'a').write('pwned')):
            try:
                attempt(); print('ESCAPED')
            except OSError as e:
                print('blocked', type(e).__name__)
    """)
    assert b"ESCAPED" not in r.stdout and r.stdout.count(b"blocked") == 4
    assert victim.read_text() == "keep me" and not (tmp_path / "evil.txt").exists()


@pytest.mark.skipif(not NS, reason="without a PID namespace /proc shows the parent (documented)")
def test_reading_the_parents_environment(monkeypatch):
    monkeypatch.setenv("CURATE_TEST_SECRET", "s3cret-token-42")
    r = run("""
        import os, glob
        print(dict(os.environ))
        for p in glob.glob('/proc/*/environ'):
            try:
                print(open(p, 'rb').read())
            except OSError:
                pass
    """)
    assert b"s3cret-token-42" not in r.stdout + r.stderr


@pytest.mark.skipif(not NS, reason="no network namespace at this isolation level")
def test_network_connect_fails():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(0.5)
    port = srv.getsockname()[1]
    r = run(f"""
        import socket
        for host in ('127.0.0.1', '8.8.8.8'):
            try:
                s = socket.create_connection((host, {port} if host == '127.0.0.1' else 53), timeout=0.5)
                s.sendall(b'leak'); print('CONNECTED', host)
            except OSError as e:
                print('blocked', host, type(e).__name__)
    """)
    with pytest.raises(socket.timeout):
        srv.accept()
    srv.close()
    assert b"CONNECTED" not in r.stdout and r.stdout.count(b"blocked") == 2


@pytest.mark.parametrize("exit_call", ["import sys; sys.exit(0)", "import os; os._exit(0)", "raise SystemExit(0)",
                                       "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
def test_exiting_before_the_asserts_is_not_a_pass(exit_call):
    v = CodeVerifier().verify(P(), code(f"def add3(x):\n    return x\n{exit_call}\n"))
    assert v.status == "incorrect", v


@pytest.mark.skipif(not NS, reason="without a PID namespace the parent is reachable (documented)")
def test_killing_the_parent():
    me = os.getpid()
    r = run(f"""
        import os, signal
        for target in ({me}, os.getppid(), 1):
            try:
                os.kill(target, signal.SIGKILL); print('sent', target)
            except OSError as e:
                print('blocked', target, type(e).__name__)
    """)
    assert os.getpid() == me  # we are alive to assert this
    if LEVEL == "root-ns":
        assert str(me).encode() + b" " not in r.stdout.replace(b"blocked " + str(me).encode(), b"")


@pytest.mark.skipif(not NS, reason="without a PID namespace a setsid daemon can outlive the run (documented)")
def test_setsid_daemon_does_not_outlive_the_run(tmp_path):
    # /tmp is private to the run now, so the daemon names itself (its comm) for the host to look for
    name = f"cdm{os.getpid() % 100000}{time.monotonic_ns() % 1000}"[:15]
    r = run(f"""
        import ctypes, os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                ctypes.CDLL(None).prctl(15, {name.encode()!r}, 0, 0, 0)  # PR_SET_NAME
                time.sleep(30)
            os._exit(0)
        print('parent done')
    """)
    assert r.ok
    time.sleep(0.5)

    def named() -> list[str]:
        out = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                    out.append(pid)
            except OSError:
                pass
        return out

    assert named() == []


def test_background_shell_process_is_reaped():
    r = run("import subprocess\nsubprocess.Popen(['sleep', '30'])\nprint('spawned')")
    assert b"spawned" in r.stdout  # the fixture then asserts that `sleep 30` is gone


def test_huge_int_to_str():
    r = run("print(str(10 ** 100000))")
    assert not r.ok and b"ValueError" in r.stderr
    r = run("import sys\nsys.set_int_max_str_digits(0)\nprint(len(str(7 ** (10 ** 8))))")
    assert not r.ok and (r.timed_out or r.returncode != 0)


def test_recursion_bomb():
    r = run("import sys\nsys.setrecursionlimit(10 ** 7)\ndef f(n): return f(n + 1)\nf(0)")
    assert not r.ok and not r.passed_marker  # RecursionError, MemoryError, a crash or the wall clock


def test_ignoring_sigterm():
    t0 = time.monotonic()
    r = run("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: pass")
    assert r.timed_out and time.monotonic() - t0 < FAST.timeout_s + 1.0


def test_filling_the_disk_hits_the_file_size_limit():
    r = run("f = open('big', 'wb')\nfor _ in range(100): f.write(b'0' * (1 << 20))\nprint('wrote 100 MiB')",
            limits=Limits(timeout_s=3, fsize_mb=8))
    assert not r.ok and b"wrote" not in r.stdout


def test_too_many_open_files():
    r = run("fs = [open('f%d' % i, 'w') for i in range(10000)]\nprint('opened all')")
    assert not r.ok and b"opened all" not in r.stdout and b"Too many open files" in r.stderr


@pytest.mark.skipif(os.environ.get("CURATE_SANDBOX_ZYGOTE") == "0", reason="already the fallback run")
def test_fallback_path_without_the_zygote_contains_the_same_attacks():
    """The same corpus subset through a fresh `unshare`d interpreter per program (no pre-forked zygote)."""
    env = {**os.environ, "CURATE_SANDBOX_ZYGOTE": "0", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    sel = "daemon or network or infinite_loop or killing_the_parent or memory_bomb or exiting_before or environment"
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", sel],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:]


# ---------------------------------------------------------------- the pass signal cannot be read or forged

FORGE_FRAMES = """
import os, sys
def add3(x):
    return x
f = sys._getframe()
while f is not None:
    for value in list(f.f_locals.values()):
        if isinstance(value, str) and len(value) == 32 and not value.strip("0123456789abcdef"):
            sys.stdout.write("\\n" + value + "\\n"); sys.stdout.flush(); os._exit(0)
    f = f.f_back
"""


def test_walking_the_stack_for_the_pass_marker_does_not_pass():
    """The harness's marker used to sit in a caller's frame; the solution's process never holds it now."""
    assert CodeVerifier().verify(P(), code(FORGE_FRAMES)).status == "incorrect"


@pytest.mark.skipif(not NS, reason="at level none the test process is the caller's own uid (documented)")
def test_the_solution_cannot_reach_the_test_process():
    r = run_check("""
import os
def add3(x):
    return x + 3
for what in ("mem", "maps", "fd/0", "fd/1", "environ"):
    try:
        open("/proc/%d/%s" % (os.getppid(), what), "rb").read(64)
        print("READ", what)
    except OSError as e:
        print("blocked", what, type(e).__name__)
""", "def check(c):\n    assert c(2) == 5\n", "add3", limits=FAST)
    assert r.passed_marker and b"READ" not in r.stderr and r.stderr.count(b"blocked") == 5, r


def test_an_object_equal_to_everything_does_not_pass():
    src = "class Any:\n    def __eq__(self, other):\n        return True\ndef add3(x):\n    return Any()\n"
    assert CodeVerifier().verify(P(), code(src)).status == "incorrect"


# ---------------------------------------------------------------- the tests cannot be read
# Each finder looks for the test's secret expected value somewhere the solution's process can reach and
# returns it if found; the test expects exactly that secret, so a finder that succeeds passes the check.
SECRET = "curate-secret-" + os.urandom(6).hex()
SECRET_TEST = f"def check(candidate):\n    assert candidate(0) == {SECRET!r}\n"
_SCAN = """
import os, re
_KEY = re.compile(('curate-' + 'secret-' + '[0-9a-f]{12}').encode())  # never spelled whole in this source
def _scan(path, limit=1 << 20):
    try:
        with open(path, 'rb') as f:
            data = f.read(limit)
    except OSError:
        return None
    m = _KEY.search(data)
    return m.group(0).decode() if m else None
def _walk(top):
    for d, _, files in os.walk(top):
        for name in files:
            got = _scan(os.path.join(d, name))
            if got:
                return got
def _in(text):
    m = _KEY.search(text.encode('utf-8', 'replace')) if isinstance(text, str) else None
    return m.group(0).decode() if m else None
"""
FINDERS = {
    "test.py in the cwd": "return _scan('test.py')",
    "every file in the cwd": "return next(filter(None, (_scan(n) for n in os.listdir('.'))), None)",
    "walk /tmp, /dev/shm, /var/tmp": "return next(filter(None, (_walk(d) for d in ('/tmp', '/dev/shm', '/var/tmp'))), None)",
    "walk the sandbox work root": f"return _walk({str(work_root(LEVEL))!r})",
    "the test process's stdin": "return _scan('/proc/%d/fd/0' % os.getppid()) or _scan('/proc/1/fd/0')",
    "the test process's memory": "return _scan('/proc/%d/mem' % os.getppid())",
    "every process's cmdline and environ": ("return next(filter(None, (_scan('/proc/%s/%s' % (p, w)) for p in os.listdir('/proc') "
                                           "if p.isdigit() for w in ('cmdline', 'environ'))), None)"),
    "own memory (gc objects)": "import gc\n    return next(filter(None, (_in(o) for o in gc.get_objects())), None)",
    "own open files": "return next(filter(None, (_scan('/proc/self/fd/' + fd) for fd in os.listdir('/proc/self/fd'))), None)",
    "own stdin": "import sys\n    return _in(sys.stdin.read())",
    "the caller's frames": ("import sys\n    f = sys._getframe()\n    while f is not None:\n"
                            "        for v in list(f.f_locals.values()) + list(f.f_globals.values()):\n"
                            "            if _in(v):\n"
                            "                return _in(v)\n"
                            "        f = f.f_back"),
}


def test_the_finders_find_a_secret_that_is_there():
    """The finders work: given the secret in a file of the cwd (what used to be test.py), they pass."""
    leaky = _SCAN + "open('planted.txt', 'w').write('curate-' + 'secret-' + 'a' * 12)\n"
    leaky += "def find(_):\n    return next(filter(None, (_scan(n) for n in os.listdir('.'))), None)\n"
    assert run_check(leaky, "def check(c):\n    assert c(0) == 'curate-secret-' + 'a' * 12\n", "find",
                     limits=FAST).passed_marker


@pytest.mark.parametrize("where", list(FINDERS))
def test_the_solution_cannot_read_the_tests(where):
    src = _SCAN + f"def find(_):\n    {FINDERS[where]}\n"
    r = run_check(src, SECRET_TEST, "find", limits=FAST)
    assert not r.passed_marker and r.returncode == 1, (where, r)


def test_reading_the_tests_is_incorrect_in_every_reference_shape():
    """HumanEval-style and LiveCodeBench functional tests: the solution used to run beside a 0644 test.py."""
    read = "def add3(x):\n    import re\n    return int(re.findall(r'== (\\d+)', open('test.py').read())[0])\n"
    assert CodeVerifier().verify(P(), code(read)).status == "incorrect"
    lcb = P(prompt="Add three.", reference={"fn_name": "add3", "timeout_s": 1.5,
                                            "tests": [{"input": "2", "output": "5", "testtype": "functional"}]})
    read_json = "def add3(x):\n    import re\n    return int(re.findall(r\"'(\\d+)'\", open('test.py').read())[-1])\n"
    assert CodeVerifier().verify(lcb, code(read_json)).status == "incorrect"
    assert CodeVerifier().verify(lcb, code("def add3(x):\n    return x + 3\n")).status == "correct"


# ---------------------------------------------------------------- the candidate's exceptions cannot be smuggled
# (solution body of add(x) -> x + 1 that misbehaves, a test that would pass if the exception ended it quietly)
LOOP_TEST = "def check(candidate):\n    for got, want in zip(map(candidate, [1, 2, 3]), [2, 3, 4]):\n        assert got == want\n"
SMUGGLERS = [
    ("StopIteration ends a zip(map()) loop", "raise StopIteration", LOOP_TEST),
    ("StopIteration inside all(map())", "raise StopIteration",
     "def check(candidate):\n    assert all(map(lambda x: candidate(x) == x + 1, [1, 2]))\n"),
    ("StopIteration inside a generator expression", "raise StopIteration",
     "def check(candidate):\n    assert all(candidate(x) == x + 1 for x in [1, 2])\n"),
    ("a StopIteration subclass", "class Done(StopIteration):\n        pass\n    raise Done", LOOP_TEST),
    ("StopAsyncIteration", "raise StopAsyncIteration", LOOP_TEST),
    ("GeneratorExit", "raise GeneratorExit", LOOP_TEST),
    ("a test that catches Exception", "raise ValueError('no')",
     "def check(candidate):\n    try:\n        assert candidate(1) == 2\n    except Exception:\n        pass\n"),
    ("a test that suppresses Exception", "raise KeyError(1)",
     "import contextlib\ndef check(candidate):\n    with contextlib.suppress(Exception):\n        assert candidate(1) == 2\n"),
    ("a test with a bare except", "raise KeyboardInterrupt",
     "def check(candidate):\n    try:\n        assert candidate(1) == 2\n    except:\n        pass\n"),
    ("SystemExit(0) inside the call", "raise SystemExit(0)",
     "def check(candidate):\n    try:\n        candidate(1)\n    except BaseException:\n        pass\n"),
    ("os._exit(0) inside the call", "import os\n    os._exit(0)",
     "def check(candidate):\n    try:\n        candidate(1)\n    except BaseException:\n        pass\n"),
    ("an exception whose str() raises", "class E(Exception):\n        def __str__(self):\n            raise RuntimeError\n    raise E()",
     "def check(candidate):\n    try:\n        candidate(1)\n    except Exception:\n        pass\n"),
    ("raising only after the answers were checked", "if x > 1:\n        raise StopIteration\n    return x + 1",
     "def check(candidate):\n    assert candidate(1) == 2\n    try:\n        candidate(2)\n    except Exception:\n        pass\n"),
]


@pytest.mark.parametrize("name,body,test", SMUGGLERS, ids=[s[0] for s in SMUGGLERS])
def test_an_exception_from_the_candidate_fails_the_check(name, body, test):
    r = run_check(f"def add(x):\n    {body}\n", test, "add", limits=FAST)
    assert not r.passed_marker and r.returncode == 1, (name, r)
    assert b"CandidateRaised" in r.stderr, (name, r.stderr[-500:])
    assert run_check("def add(x):\n    return x + 1\n", test, "add", limits=FAST).passed_marker, name


def test_stopiteration_through_the_code_verifier_is_incorrect():
    p = P(reference={"test": LOOP_TEST, "entry_point": "add", "timeout_s": 1.5}, prompt="Add one.")
    v = CodeVerifier().verify(p, code("def add(x):\n    raise StopIteration\n"))
    assert v.status == "incorrect" and "StopIteration" in v.reason, v


# ---------------------------------------------------------------- each run's scratch is private, bounded and gone after

def _host_names(token: str) -> list[str]:
    out = []
    for d in ("/tmp", "/dev/shm", "/var/tmp"):
        try:
            out += [f"{d}/{n}" for n in os.listdir(d) if token in n]
        except OSError:
            pass
    return out


LEAKS = {
    "a file in /tmp": "open('/tmp/{t}', 'w').write('x' * 1000)",
    "a file in /dev/shm": "open('/dev/shm/{t}', 'w').write('x' * 1000)",
    "a file in /var/tmp": "open('/var/tmp/{t}', 'w').write('x' * 1000)",
    "POSIX shared memory": ("from multiprocessing import shared_memory\n"
                            "m = shared_memory.SharedMemory(name='{t}', create=True, size=1 << 20)\n"
                            "m.buf[:3] = b'abc'\nm.close()"),
    "a fifo in /tmp": "import os\nos.mkfifo('/tmp/{t}')",
    "a unix socket in /tmp": "import socket\nsocket.socket(socket.AF_UNIX).bind('/tmp/{t}')",
    "a symlink in /dev/shm": "import os\nos.symlink('/etc/passwd', '/dev/shm/{t}')",
    "a file in the cwd": "open('{t}', 'w').write('x')",
}


@pytest.mark.skipif(not NS, reason="without a mount namespace /tmp and /dev/shm are shared (documented)")
@pytest.mark.parametrize("what", list(LEAKS))
def test_nothing_a_run_leaves_in_tmp_or_shm_outlives_it(what):
    token = f"curate-leak-{os.getpid()}-{time.monotonic_ns()}"
    r = run(LEAKS[what].format(t=token) + "\nimport os\nprint(sorted(os.listdir('.')))\n")
    assert r.ok, (what, r.stderr[-500:])
    assert _host_names(token) == [], what


@pytest.mark.skipif(not NS, reason="without a mount namespace there is no private scratch (documented)")
def test_the_scratch_is_size_limited_and_not_shared_between_runs():
    limits = Limits(timeout_s=5.0, memory_mb=512, scratch_mb=32)
    r = run_python(textwrap.dedent("""
        import errno, os
        total = 0
        try:
            for i in range(40):
                with open('/dev/shm/fill%d' % i, 'wb') as f:
                    f.write(b'x' * (4 << 20))
                total += 4
        except OSError as e:
            print('stopped', errno.errorcode[e.errno], total)
        open('left-behind', 'w').write('x')
    """), limits=limits)
    assert r.ok and r.stdout.startswith(b"stopped ENOSPC"), r
    assert int(r.stdout.split()[-1]) <= 32
    r = run_python("import os\nprint(sorted(os.listdir('.')), sorted(os.listdir('/dev/shm')))", limits=limits)
    assert r.stdout.decode().strip() == "['main.py'] ['main.py']", r
