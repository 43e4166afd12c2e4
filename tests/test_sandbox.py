"""Containment corpus for the code sandbox: each attack must not escape, leave no process behind and never
pass. Short timeouts keep the whole file to a few seconds."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from verifiers.code import CodeVerifier
from verifiers.sandbox import NOBODY, OUTPUT_CAP, Limits, isolation, run_python

FAST = Limits(timeout_s=1.5, memory_mb=512)
LEVEL, _PY = isolation()
NS = LEVEL in ("root-ns", "user-ns")
# Without namespaces (level "none") some attacks would really hurt the machine running the tests: a fork bomb
# as root (RLIMIT_NPROC does not bind root) or a program killing the test process. Those run only where
# the sandbox contains them; the fallback level is documented as not containing them.
NPROC_BINDS = LEVEL == "root-ns" or os.geteuid() != 0


def leftovers() -> list[str]:
    """Processes that belong to a sandbox run: cmdline or cwd in a curate-sbx- dir, or uid nobody."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            uid = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")  # zygote-forked programs keep the zygote's cmdline
        except OSError:
            cwd = ""
        if b"curate-sbx-" in cmd or "curate-sbx-" in cwd or (LEVEL == "root-ns" and uid == NOBODY):
            out.append(f"{pid} uid={uid} {cmd[:80]!r}")
    return out


@pytest.fixture(autouse=True)
def no_leftovers():
    yield
    deadline = time.monotonic() + 2.0
    while leftovers() and time.monotonic() < deadline:  # namespace teardown is asynchronous
        time.sleep(0.05)
    assert leftovers() == []


def run(src: str, **kw) -> "RunResult":  # noqa: F821
    return run_python(textwrap.dedent(src), limits=kw.pop("limits", FAST), **kw)


def test_a_normal_program_runs_and_sees_a_clean_world():
    r = run("""
        import os, sys
        print(input().upper())
        print(sorted(os.environ))
        print(os.getcwd())
    """, stdin="hi\n")
    assert r.ok, r
    lines = r.stdout.decode().splitlines()
    assert lines[0] == "HI"
    assert set(eval(lines[1])) <= {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "PYTHONHASHSEED",
                                   "PYTHONDONTWRITEBYTECODE", "PYTHONIOENCODING"}
    assert "curate-sbx-" in lines[2] and not Path(lines[2]).exists()  # work dir removed afterwards


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
    t0 = time.monotonic()
    r = run("x = bytearray(8 << 30)\nprint('allocated')")
    assert not r.ok and b"allocated" not in r.stdout and b"MemoryError" in r.stderr
    assert time.monotonic() - t0 < 1.5


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


CHECK_TEST = "def check(f):\n    assert f(2) == 5, 'wrong'\n"


@dataclass
class P:
    prompt: str = "def add3(x):\n    \"\"\"Add three.\"\"\"\n"
    reference: dict = field(default_factory=lambda: {"test": CHECK_TEST, "entry_point": "add3", "timeout_s": 1.5})
    metadata: dict = field(default_factory=dict)


def code(body: str) -> str:
    return "<think>hm</think>\n```python\n" + textwrap.dedent(body) + "\n```"


@pytest.mark.parametrize("exit_call", ["import sys; sys.exit(0)", "import os; os._exit(0)", "raise SystemExit(0)",
                                       "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
def test_exiting_before_the_asserts_is_not_a_pass(exit_call):
    v = CodeVerifier().verify(P(), code(f"def add3(x):\n    return x\n{exit_call}\n"))
    assert v.status == "incorrect", v


def test_a_real_solution_passes_and_a_wrong_one_fails():
    assert CodeVerifier().verify(P(), code("def add3(x):\n    return x + 3\n")).status == "correct"
    assert CodeVerifier().verify(P(), code("def add3(x):\n    return x + 4\n")).status == "incorrect"


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
    marker = f"/tmp/curate-daemon-{os.getpid()}-{time.monotonic_ns()}"
    r = run(f"""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(1.0)
                open({marker!r}, 'w').write('alive')
                time.sleep(30)
            os._exit(0)
        print('parent done')
    """)
    assert r.ok
    time.sleep(1.3)
    assert not os.path.exists(marker)


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


def test_timeout_inside_the_code_verifier_is_its_own_status():
    p = P(reference={"tests": [{"input": "1\n", "output": "2\n"}], "timeout_s": 1})
    assert CodeVerifier().verify(p, code("while True: pass")).status == "timeout"


def test_fallback_level_none_still_runs_and_reports_itself():
    """Where namespaces are not allowed the sandbox degrades to process-group kill + rlimits (documented)."""
    env = {**os.environ, "CURATE_SANDBOX_ISOLATION": "none", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run(
        [sys.executable, "-c", "from verifiers.sandbox import run_python as r, Limits as L; x = r('print(6*7)', limits=L(timeout_s=2)); print(x.isolation, x.stdout)"],
        capture_output=True, text=True, env=env, timeout=30)
    assert out.stdout.strip() == "none b'42\\n'", out.stderr


@pytest.mark.skipif(os.environ.get("CURATE_SANDBOX_ZYGOTE") == "0", reason="already the fallback run")
def test_fallback_path_without_the_zygote_contains_the_same_attacks():
    """The same corpus subset through a fresh `unshare`d interpreter per program (no pre-forked zygote)."""
    env = {**os.environ, "CURATE_SANDBOX_ZYGOTE": "0", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    sel = "daemon or network or infinite_loop or killing_the_parent or memory_bomb or exiting_before or environment"
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", sel],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:]
