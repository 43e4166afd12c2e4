"""Killing `curate train` with real torchrun ranks (gloo, CPU, tiny model): torchrun starts its ranks in their
own sessions, so these check that no rank survives the launcher for more than a few seconds, that a second
`curate train` on the same output_dir is refused while the run is alive, and that the run then resumes to
the uninterrupted losses. Each run pauses after a step (a test hook) so the kill lands mid-run.
Process checks only look at the processes this test starts. The torch-free version of every kill is in
tests/test_train_guard.py."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import tiny  # noqa: E402

from tests.helpers import ROOT, run_cli  # noqa: E402
from tests.helpers import alive, descendants, wait_gone  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and flock")
ENV = {"OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("shutdown")
    tiny.make_tokenizer(root / "tok")
    tiny.write_jsonl(root / "data.jsonl", tiny.rows(48, seed=11))
    return root


def _metrics(out: Path) -> list[dict]:
    p = out / "metrics.jsonl"
    return [json.loads(ln) for ln in p.read_text().splitlines()] if p.exists() else []


def _train_here(cfg: Path, *sets: str, resume: bool = False, echo=lambda *a: None) -> dict:
    from curate.train import train_from_config

    torch.set_num_threads(1)
    return train_from_config(cfg, list(sets), resume=resume, echo=echo)


def _launch_paused(cfg: Path, out: Path, step: int, tmp: Path) -> tuple[subprocess.Popen, set[int]]:
    """`curate train` with 2 ranks in its own process group, paused after `step`; returns it and its tree."""
    env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT), "CURATE_TRAIN_PAUSE_AT_STEP": str(step)}
    log = open(tmp / f"{out.name}.log", "w")
    launcher = subprocess.Popen([sys.executable, "-m", "curate", "train", str(cfg)], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300
    while len(_metrics(out)) < step:
        assert launcher.poll() is None, (tmp / f"{out.name}.log").read_text()
        assert time.monotonic() < deadline, "the run never reached its pause"
        time.sleep(0.2)
    tree = descendants(launcher.pid)
    assert len(tree) >= 3, tree  # torchrun and two ranks (each in its own session)
    return launcher, tree


def test_killing_the_launchers_group_stops_every_rank_and_resume_matches(setup, tmp_path):
    ref = _train_here(tiny.write_config(tmp_path / "ref.yaml", setup / "tok", setup / "data.jsonl", tmp_path / "ref"))
    out = tmp_path / "killed"
    cfg = tiny.write_config(tmp_path / "k.yaml", setup / "tok", setup / "data.jsonl", out, launch={"nproc_per_node": 2})
    launcher, tree = _launch_paused(cfg, out, 3, tmp_path)
    try:
        second = run_cli("train", str(cfg), "--resume", env=ENV, timeout=120)
        assert second.returncode == 2 and "Traceback" not in second.stderr
        assert f"is in use by a running `curate train` (pid {launcher.pid}" in second.stderr
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait(timeout=30)
        survivors: list[set] = []
        watcher = threading.Thread(target=lambda: survivors.append(wait_gone(tree, 10.0)))
        watcher.start()
        said: list[str] = []
        # At once, as a user would: the new launcher waits for the dying ranks, never reads a half-deleted state.
        _train_here(cfg, "launch.nproc_per_node=1", resume=True, echo=said.append)
        watcher.join()
        assert survivors == [set()]  # every rank was gone within 10 s of the kill
    finally:
        for p in tree:
            if alive(p):
                os.kill(p, signal.SIGKILL)
    assert any("resuming from step 2 of 6" in s for s in said), said
    got, want = _metrics(out), _metrics(Path(ref["output_dir"]))
    assert [g["step"] for g in got] == [1, 2, 3, 4, 5, 6]
    for g, e in zip(got, want):  # 2 ranks then 1 rank vs 1 rank throughout: the same numbers up to reduction order
        assert g["loss"] == pytest.approx(e["loss"], rel=1e-5, abs=1e-6), g["step"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_signal_to_the_launcher_alone_stops_every_rank(setup, tmp_path, sig):
    out = tmp_path / "alone"
    cfg = tiny.write_config(tmp_path / "a.yaml", setup / "tok", setup / "data.jsonl", out, launch={"nproc_per_node": 2})
    launcher, tree = _launch_paused(cfg, out, 1, tmp_path)
    try:
        os.kill(launcher.pid, sig)
        rc = launcher.wait(timeout=120)
        assert wait_gone(tree, 10.0) == set()
    finally:
        for p in tree:
            if alive(p):
                os.kill(p, signal.SIGKILL)
    if sig == signal.SIGTERM:
        log = (tmp_path / "alone.log").read_text()
        assert rc == 128 + sig and "error: training stopped by SIGTERM; every rank has exited" in log, log
