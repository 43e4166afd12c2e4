"""The command line itself: usage errors, unknown options and missing arguments are one line and exit 2;
`curate --version` prints the installed version. Run: python -m pytest -q tests/test_cli_usage.py
"""
from __future__ import annotations

from importlib.metadata import version

import pytest

from tests.helpers import run_cli


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
    r = run_cli(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], r.stderr
    assert "--help" in lines[0]
