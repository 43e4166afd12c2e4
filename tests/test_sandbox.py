"""The code sandbox's behaviour as callers rely on it: a clean run, a verdict per outcome, values crossing the
function-call boundary, the fallback isolation level, a configured interpreter, work roots, and
set-up trouble judged `error`, never `incorrect`. Every run must leave no process behind. The attack corpus
(fork bombs, disk fillers, escapes, daemons, reading the tests, forging the pass marker, smuggled exceptions,
scratch leaks) is tests/test_sandbox_hostile.py. Run: `python -m pytest -q tests/test_sandbox.py`."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.sandbox_cases import FAST, LEVEL, NS, P, code, run
from tests.sandbox_cases import no_leftovers  # noqa: F401 (autouse: every test here leaves no process behind)
from verifiers.code import CodeVerifier
from verifiers._launch import HARNESS_MAIN, HARNESS_PATH
from verifiers.sandbox import (ENV_EXIT, PYTHON_ENV, ROOT_ENV, SETUP_EXIT, RunResult, SandboxUnavailable,
                               run_check, work_root)



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
    if NS:  # the run's private scratch: a tmpfs on /tmp that vanishes with its namespace
        assert lines[2] == "/tmp"
    else:
        assert "curate-sbx-" in lines[2] and not Path(lines[2]).exists()  # work dir removed afterwards


def test_a_real_solution_passes_and_a_wrong_one_fails():
    assert CodeVerifier().verify(P(), code("def add3(x):\n    return x + 3\n")).status == "correct"
    assert CodeVerifier().verify(P(), code("def add3(x):\n    return x + 4\n")).status == "incorrect"


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


# ---------------------------------------------------------------- values across the function-call boundary

def test_values_cross_the_boundary_with_their_types():
    src = ("def f(x):\n    if x == 'big':\n        return 'y' * 300000\n"
           "    return [x, (1, 2.5), {'k': {3, 4}}, None, True, b'\\x00', 10 ** 30, float('inf'), 1j]\n")
    test = ("def check(c):\n    got = c({'a': (1,)})\n"
            "    assert got == [{'a': (1,)}, (1, 2.5), {'k': {3, 4}}, None, True, b'\\x00', 10 ** 30, float('inf'), 1j]\n"
            "    assert type(got[1]) is tuple and got[4] is True\n"
            "    assert c('big') == 'y' * 300000\n")
    r = run_check(src, test, "f", limits=FAST)
    assert r.passed_marker, r.stderr[-2000:]


# ---------------------------------------------------------------- could not judge: error, never incorrect

def test_a_missing_module_is_error_not_incorrect():
    v = CodeVerifier().verify(P(), code("import curate_no_such_module\ndef add3(x):\n    return x + 3\n"))
    assert v.status == "error" and "curate_no_such_module" in v.reason, v
    p = P(reference={"tests": [{"input": "1\n", "output": "4\n"}], "timeout_s": 1.5})
    v = CodeVerifier().verify(p, code("def f():\n    import curate_no_such_module\nf()\n"))
    assert v.status == "error" and "missing module" in v.reason, v


STDIN_P = P(reference={"tests": [{"input": "1\n", "output": "4\n"}], "timeout_s": 1.5})
STDIN_OK = code("print(int(input()) + 3)")


def test_a_closed_tmpdir_does_not_turn_correct_into_incorrect(tmp_path, monkeypatch):
    """TMPDIR as `mktemp -d` makes it (mode 700, owned by the caller): the sandbox uses its own work root."""
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(closed))
    assert CodeVerifier().verify(P(), code("def add3(x):\n    return x + 3\n")).status == "correct"
    assert CodeVerifier().verify(STDIN_P, STDIN_OK).status == "correct"


@pytest.mark.skipif(LEVEL != "root-ns", reason="only the nobody user can be shut out of a directory")
def test_an_unusable_work_root_is_one_line_and_error(tmp_path, monkeypatch):
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    monkeypatch.setenv(ROOT_ENV, str(closed / "root"))
    with pytest.raises(SandboxUnavailable, match=r"is closed to nobody.*chmod o\+x the directories above"):
        work_root(LEVEL)
    v = CodeVerifier().verify(STDIN_P, STDIN_OK)
    assert v.status == "error" and str(closed) in v.reason and "\n" not in v.reason, v


def _sandbox_python_env(python: str) -> dict:
    return {**os.environ, PYTHON_ENV: python, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


PROBE = """
from dataclasses import dataclass, field
from verifiers.code import CodeVerifier
from verifiers.sandbox import isolation
@dataclass
class P:
    reference: dict = field(default_factory=lambda: {"tests": [{"input": "", "output": "42 65534"}], "timeout_s": 3})
    prompt: str = ""
    metadata: dict = field(default_factory=dict)
v = CodeVerifier().verify(P(), "```python\\nimport os, curate_probe_pkg\\nprint(curate_probe_pkg.VALUE, os.getuid())\\n```")
print(isolation()[0], v.status, v.reason)
"""


@pytest.mark.skipif(LEVEL != "root-ns", reason="the nobody user exists only at level root-ns")
def test_a_configured_interpreter_brings_its_packages_and_keeps_the_isolation():
    venv = Path(tempfile.mkdtemp(prefix="curate-test-venv-", dir="/tmp"))
    try:
        os.chmod(venv, 0o755)
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
        site = next(venv.glob("lib/python3*/site-packages"))
        (site / "curate_probe_pkg.py").write_text("VALUE = 42\n")
        out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60,
                             env=_sandbox_python_env(str(venv / "bin" / "python")))
        assert out.stdout.split()[:2] == ["root-ns", "correct"], out.stdout + out.stderr
        env = {k: v for k, v in _sandbox_python_env("").items() if k != PYTHON_ENV}
        out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, env=env)
        assert out.stdout.split()[:2] == ["root-ns", "error"] and "curate_probe_pkg" in out.stdout, out.stdout
    finally:
        shutil.rmtree(venv, ignore_errors=True)


@pytest.mark.skipif(LEVEL != "root-ns", reason="the refusal guards the uid change of level root-ns")
def test_an_interpreter_nobody_cannot_run_is_refused_not_run_as_root(tmp_path):
    hidden = tmp_path / "private"  # under pytest's mode-700 tmp root
    hidden.mkdir()
    (hidden / "python3").symlink_to("/usr/bin/python3")
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60,
                         env=_sandbox_python_env(str(hidden / "python3")))
    assert out.returncode != 0 and "SandboxUnavailable" in out.stderr and "cannot be run by the sandbox user" in out.stderr
    assert "correct" not in out.stdout


def test_the_harness_reports_its_own_set_up_failure_apart_from_the_program(tmp_path):
    """The sandbox's own file unreadable: exit SETUP_EXIT with one `curate-sandbox:` line, judged `error`."""
    src = HARNESS_PATH.read_text() + HARNESS_MAIN
    out = subprocess.run([sys.executable, "-I", "-c", src, "{}", "script", str(tmp_path / "missing" / "main.py")],
                         capture_output=True, timeout=30)
    assert out.returncode == SETUP_EXIT and b"curate-sandbox: set-up failed: cannot read" in out.stderr
    r = RunResult(returncode=out.returncode, stderr=out.stderr)
    assert "set-up failed" in r.could_not_judge
    v = CodeVerifier()._judge([r], "print(1)", 1, check_mode=False)
    assert v.status == "error" and "could not run" in v.reason
    assert RunResult(returncode=1, stderr=b"Traceback\nValueError: x").could_not_judge is None  # the program's own crash
    assert RunResult(returncode=ENV_EXIT, stderr=b"").could_not_judge.startswith("missing module")
