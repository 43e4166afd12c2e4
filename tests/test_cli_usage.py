"""The command line itself: usage errors, unknown options and missing arguments are one line and exit 2;
`curate --version` prints the installed version. These run in-process through the real entry point
(tests/helpers.invoke); one check runs the installed entry point as a user would.
Run: python -m pytest -q tests/test_cli_usage.py
"""
from __future__ import annotations

from importlib.metadata import version

import pytest

from tests.helpers import invoke, run_cli


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"curate {version('curate')}"


@pytest.mark.parametrize("args, needle", [
    (["stats", "--bogus"], "No such option: --bogus"),
    (["sql"], "Missing argument 'query'"),
    (["nosuchcommand"], "No such command 'nosuchcommand'"),
    (["verify", "--workers", "many"], "'--workers'"),
    (["recipes", "validate"], "Missing argument"),
    (["--bogus"], "No such option: --bogus"),
])
def test_usage_errors_are_one_line_exit_2(args, needle):
    r = invoke(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], r.stderr
    assert "--help" in lines[0]


@pytest.mark.parametrize("args", [["tasks", "add", "countdown"], ["verify", "--verifier", "nope"]])
def test_an_error_behind_a_progress_bar_is_the_first_thing_printed(tmp_path, args):
    """Into a pipe a progress bar draws nothing, so nothing (rich's blank line on stopping) comes before the error."""
    run_cli("tasks", "add", "countdown", "--size", "2", "--store", str(tmp_path / "store"))
    r = run_cli(*args, "--store", str(tmp_path / "store"))
    assert r.returncode != 0 and r.stderr.startswith("error:"), r.stderr


def test_piped_tables_do_not_wrap_at_80_columns():
    """A table printed into a pipe keeps each row on one line (rich would wrap at 80 columns without a terminal)."""
    import os
    import subprocess
    import sys

    from tests.helpers import ROOT

    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["PYTHONPATH"] = str(ROOT)
    r = subprocess.run([sys.executable, "-m", "curate", "verifiers", "list"], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith("│")]
    names = [ln.split("│")[1].strip() for ln in rows]
    assert "math" in names and "countdown" in names, r.stdout
    assert all(n for n in names), "a wrapped row leaves an empty name cell"
    assert max(len(ln) for ln in rows) > 80


@pytest.mark.parametrize("hours, text", [(12800.4, "12,800 GPU-hours"), (3.25, "3.25 GPU-hours"), (0.5, "30 GPU-minutes"),
                                         (6.21e-07, "under a GPU-minute")])
def test_study_plan_states_gpu_time_readably(hours, text):
    from curate.cli.study import gpu_time

    assert gpu_time(hours) == text


def test_hints_name_curate_the_way_it_was_started(tmp_path, monkeypatch):
    """`make demo` runs .venv/bin/curate, which is not on PATH: its hints must say so, not a bare `curate`."""
    import sys

    from curate.cli.common import invocation

    exe = tmp_path / "venv" / "bin" / "curate"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr(sys, "argv", [str(exe), "demo"])
    assert invocation() == str(exe)
    monkeypatch.setenv("PATH", f"{exe.parent}:/usr/bin")
    assert invocation() == "curate"
    monkeypatch.setattr(sys, "argv", ["/x/curate/__main__.py", "demo"])
    assert invocation() == "python -m curate"


def test_study_subcommands_the_readme_uses_are_listed_in_help():
    """`curate study --help` lists every `curate study X` the README walks through (tiny-model builds the CPU
    stand-in's base model), each with its one-line help."""
    import re

    from tests.helpers import ROOT

    used = set(re.findall(r"^curate study ([a-z-]+)", (ROOT / "README.md").read_text(), flags=re.M))
    assert "tiny-model" in used
    r = invoke("study", "--help")
    assert r.returncode == 0, r.stderr
    listed = {m.group(1): m.group(2) for m in re.finditer(r"^│ ([a-z-]+) +(\S.*?)\s*│$", r.stdout, flags=re.M)}
    assert used <= set(listed), r.stdout
    assert listed["tiny-model"].startswith("Build a tiny random base model"), r.stdout
