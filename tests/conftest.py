"""Shared fixtures: temporary stores and a CLI runner that goes through the real error mapping."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.helpers import run_cli

# small importable fixtures (a tiny model builder, a fixture store, regression tables) for every test module
for _folder in ("train", "mix", "verifiers"):
    sys.path.insert(0, str(Path(__file__).parent / "fixtures" / _folder))


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store"
