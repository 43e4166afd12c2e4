"""Shared fixtures: temporary stores and a CLI runner that goes through the real error mapping."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict | None = None, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python -m curate ARGS` in a subprocess, exactly as a user would, and capture its output."""
    import os

    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "curate", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT, env=full_env
    )


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store"
