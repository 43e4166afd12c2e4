"""`curate study run` for real: nodes run as subprocesses, the runner is killed mid-way and rerun.

Default (bounded): prepare the store and build two mixtures, killing the runner twice; nothing that
finished runs again and the rerun completes. Slow: a tiny CPU study (2 conditions x 1 tiny model,
2 training steps, the smoke suite with --limit 1) end to end, killed at several points, compared with
an uninterrupted run: the same evals table, and lineage from each eval row back to its recipe.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curate.study import build_plan
from curate.study import state as st
from tests.helpers import ROOT

STUDY = """\
name: tiny-test
output: {out}
prepare:
  - tasks add countdown --size 30 --seed 0
  - generate --backend synthetic --n 2 --problems "source = 'countdown' AND split = 'train'" --option wrong_share=0.3 --no-progress
  - verify --workers 1
conditions:
  - name: verified
    recipe: countdown-toy
    overrides: {{size: 12}}
  - name: no-thinking
    recipe: countdown-toy
    overrides: {{size: 12, quality.strip_thinking: true}}
models:
  - {{name: tiny, path: tiny}}
train:
  config: debug
  set: {{data.max_length: 1024, data.max_prompt_length: 256, data.max_response_length: 768, data.micro_batch_tokens: 1024,
        train.global_batch_size: 4, train.max_steps: 2, logging.progress: false}}
eval:
  suite: smoke
  steps: [2]
  backend: hf
  max_tokens: 8
  limit: 1
  set: {{sampling.temperature: 0}}  # greedy: a resumed eval batches differently, and sampling is seeded per batch
report: false
"""


def _study(tmp_path: Path, out: str = "out") -> Path:
    p = tmp_path / f"{out}.yaml"
    p.write_text(STUDY.format(out=tmp_path / out))
    return p


def _runner(path: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "curate", "study", "run", str(path), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _kill_when_started(path: Path, out: Path, node: str, *args: str, timeout: float = 600) -> None:
    """Start the runner, SIGKILL it once `node` has started (its child dies with it)."""
    proc = _runner(path, *args)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e["node"] == node and e["event"] == "start" for e in st.read_journal(out)):
            time.sleep(1.0)  # let the node get some work done before the kill
            break
        if proc.poll() is not None:
            pytest.fail(f"runner ended before {node} started: {proc.stdout.read()}")
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def _finish(path: Path, *args: str, timeout: float = 1800) -> str:
    proc = _runner(path, *args)
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def _assert_nothing_finished_ran_again(out: Path) -> None:
    done: set[str] = set()
    for e in st.read_journal(out):
        if e["event"] == "start":
            assert e["node"] not in done, f"{e['node']} ran again after it finished"
        elif e["event"] == "done":
            done.add(e["node"])


def test_killed_runner_resumes_without_redoing_finished_nodes(tmp_path):
    path = _study(tmp_path)
    out = tmp_path / "out"
    _kill_when_started(path, out, "prepare/2-generate", "--until", "mix")
    _kill_when_started(path, out, "mix/verified", "--until", "mix")
    log = _finish(path, "--until", "mix")
    assert "0 to run" not in log
    _assert_nothing_finished_ran_again(out)
    plan = build_plan(path)
    states = st.node_states(plan)
    assert all(states[n].state == "done" for n in plan.nodes if n.split("/")[0] in ("prepare", "model", "mix"))
    assert all(states[n].state == "pending" for n in plan.nodes if n.startswith(("train/", "eval/")))
    for m in plan.mixtures.values():
        assert json.loads((m.dir / "manifest.json").read_text())["rows"] == 12
    # a finished study stage is skipped on the next run
    assert "0 to run" in _finish(path, "--until", "mix")
    # a node that fails is retried on the next run, with its error shown
    bad = tmp_path / "bad.yaml"
    bad.write_text(path.read_text().replace("size: 12}", "size: 12, sources: [{name: c, where: 'no_such_column = 1'}]}", 1))
    proc = _runner(bad, "--until", "mix", "--rerun-stale")
    text, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1 and "FAILED mix/verified" in text and "error:" in text, text
    proc = _runner(bad, "--until", "mix")
    text, _ = proc.communicate(timeout=600)
    assert "retrying mix/verified, which failed before: error:" in text, text


@pytest.mark.slow
def test_tiny_study_end_to_end_with_kills_matches_an_uninterrupted_run(tmp_path):
    from curate.store import TraceStore
    from curate.store.evals import read_evals

    def table(out: Path) -> list[tuple]:
        rows = read_evals(TraceStore(out / "store"))
        return sorted((r["run"], r["step"], r["suite"], r["benchmark"], r["metric"], r["value"], r["n_samples"])
                      for r in rows)

    ref = _study(tmp_path, "ref")
    _finish(ref)
    path = _study(tmp_path, "out")
    out = tmp_path / "out"
    for node in ("mix/no-thinking", "train/verified-tiny", "eval/verified-tiny", "eval/no-thinking-tiny"):
        _kill_when_started(path, out, node)
    _finish(path)
    _assert_nothing_finished_ran_again(out)
    assert table(out) and [r[1:] for r in table(out)] == [r[1:] for r in table(tmp_path / "ref")]
    status = json.loads(subprocess.run([sys.executable, "-m", "curate", "study", "status", str(path), "--json"], cwd=ROOT,
                                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout)
    assert {c["state"] for c in status["cells"]} == {"done"}
    # lineage: every eval row of a cell leads back to the resolved recipe of its condition
    store = TraceStore(out / "store")
    rows = store.query("SELECT run, step, condition, recipe_file, study_recipe_hash, recipe_hash, consistent FROM lineage").to_pylist()
    assert rows and all(r["consistent"] for r in rows)
    plan = build_plan(path)
    for r in rows:
        m = plan.mixtures[plan.cell(r["run"]).mixture]
        assert r["recipe_file"] == str(m.recipe_path) and r["study_recipe_hash"] == m.recipe.hash() == r["recipe_hash"]
        assert r["condition"] == plan.cell(r["run"]).condition
