"""`curate mix` onto a full or read-only output disk: one `error:` line naming the output and the cause, no
traceback, nothing left at --out, and a rerun on a healthy disk writes the same bytes as a clean run.
Disks that fail need root (a tmpfs, a read-only bind mount); these tests skip without it.
Run: python -m pytest -q tests/test_mix_failures.py
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import fixture_store
import pytest
import yaml

from tests.helpers import ROOT_ONLY, fill, one_error_line, read_only, tmpfs

RECIPE = {"name": "t", "seed": 7, "size": 20,
          "sources": [{"name": "qwen", "where": "domain = 'math' AND model ILIKE '%qwen3-32b%'"}],
          "filters": {"no_truncation": True}, "decontaminate": {"n": 8}}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixfail")
    fixture_store.build(root / "store")
    (root / "r.yaml").write_text(yaml.safe_dump(RECIPE))
    return root


def _mix(cli, setup: Path, out: Path, *extra: str):
    return cli("mix", str(setup / "r.yaml"), "--store", str(setup / "store"), "--out", str(out), *extra)


def _hashes(d: Path) -> dict:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def clean(setup):
    from tests.helpers import run_cli

    r = _mix(run_cli, setup, setup / "clean")
    assert r.returncode == 0, r.stderr
    return _hashes(setup / "clean")


@ROOT_ONLY
def test_full_output_disk_is_one_line_and_a_rerun_matches_a_clean_run(setup, clean, tmp_path, cli):
    with tmpfs(tmp_path / "disk", size="2m") as disk:
        filler = fill(disk)
        out = disk / "mix"
        r = _mix(cli, setup, out)
        one_error_line(r, f"cannot write the mixture to {out}", "No space left on device")
        assert not out.exists() and [p.name for p in disk.iterdir()] == ["filler"]  # no partial folder left
        filler.unlink()
        r = _mix(cli, setup, out)
        assert r.returncode == 0, r.stderr
        assert _hashes(out) == clean


def test_read_only_output_disk_is_one_line(setup, clean, tmp_path, cli):
    target = tmp_path / "outdisk"
    target.mkdir()
    with read_only(target, tmp_path) as ro:
        out = ro / "mix"
        line = one_error_line(_mix(cli, setup, out), f"cannot write the mixture to {out}")
        assert "Read-only file system" in line or "Permission denied" in line
        assert not out.exists()
    out = target / "mix"
    assert _mix(cli, setup, out).returncode == 0
    assert _hashes(out) == clean
