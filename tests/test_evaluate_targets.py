"""A target that is not there fails in a second with one line, and nothing is written to the store: a mistyped
run folder (`runs/nope` while `runs/` exists) is not taken for a hub id, and a hub id that is neither cached nor
reachable is refused before any sample is planned. Real `python -m curate` processes, no network needed."""
from __future__ import annotations

import time

import pytest

from tests.helpers import run_cli


def _one_line(r, text: str) -> None:
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.splitlines()[0].startswith("error:") and text in r.stderr.splitlines()[0], r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2  # the error and at most its hint


def test_a_mistyped_run_folder_is_not_a_hub_id(tmp_path):
    (tmp_path / "runs" / "math-cot").mkdir(parents=True)
    t0 = time.monotonic()
    r = run_cli("eval", "runs/nope", "--store", "st", "--backend", "hf", cwd=tmp_path, timeout=60)
    _one_line(r, "runs/nope: no such checkpoint or run directory")
    assert time.monotonic() - t0 < 20 and not (tmp_path / "st").exists()
    r = run_cli("eval", "runs/math-cot/", "--store", "st", "--backend", "hf", cwd=tmp_path, timeout=60)
    assert r.returncode == 2 and not (tmp_path / "st").exists()


@pytest.mark.parametrize("offline", ["1", "0"])
def test_an_unknown_hub_id_writes_nothing(tmp_path, offline):
    env = {"HF_HUB_OFFLINE": offline, "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9"}
    r = run_cli("eval", "nobody/no-such-model", "--store", str(tmp_path / "st"), "--backend", "hf", env=env, timeout=60)
    _one_line(r, "nobody/no-such-model: no such folder here")
    assert not (tmp_path / "st").exists()
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)  # a run with no checkpoint yet: only the base to do
    r = run_cli("eval", str(tmp_path / "run"), "--base", "nobody/no-such-base", "--store", str(tmp_path / "st"),
                "--backend", "hf", env=env, timeout=60)
    _one_line(r, "nobody/no-such-base: no such folder here")
    assert not (tmp_path / "st").exists()
