"""A target that is not there fails in a second with one line, and nothing is written to the store: a mistyped
run folder (`runs/nope` while `runs/` exists) is not taken for a hub id, and a hub id that is neither cached nor
reachable is refused before any sample is planned. `--revision` pins a hub-id target (served here from a local
Hugging Face cache holding a tiny model) and is refused for a local folder. Real `python -m curate` processes, no
network needed."""
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


def _cached_hub_model(tmp_path, repo: str, revision: str) -> dict:
    """A tiny local model put into a fresh Hugging Face cache as hub repo REPO at REVISION (a ref to a commit), the
    way a download leaves it; returns the environment that loads it offline."""
    import shutil

    r = run_cli("study", "tiny-model", str(tmp_path / "tiny"), timeout=120)
    assert r.returncode == 0, r.stderr
    commit = "0123456789abcdef0123456789abcdef01234567"
    cache = tmp_path / "hf" / "hub" / f"models--{repo.replace('/', '--')}"
    shutil.copytree(tmp_path / "tiny", cache / "snapshots" / commit)
    (cache / "refs").mkdir()
    (cache / "refs" / revision).write_text(commit)
    return {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}


def test_revision_pins_a_hub_id_and_is_refused_for_a_local_folder(tmp_path):
    """The revision loads the hub model at that ref, goes into the samples' revision and the recorded identity
    (`ID@REVISION` as run, checkpoint and model), a rerun finds everything stored; an unknown revision and a local
    folder with a revision are one-line errors that write nothing."""
    from curate.store import TraceStore

    env = _cached_hub_model(tmp_path, "local/tiny", "v1")
    st = tmp_path / "st"
    args = ["--suite", "smoke", "--benchmark", "countdown", "--limit", "1", "--max-tokens", "4", "--backend", "hf",
            "--store", str(st), "--no-progress"]
    r = run_cli("eval", "local/tiny", "--revision", "v1", *args, env=env, timeout=180)
    assert r.returncode == 0, r.stderr
    assert "1 samples generated" in r.stdout, r.stdout
    store = TraceStore(st)
    [row] = store.query("SELECT run, checkpoint, model, value FROM evals WHERE kind = 'score'").to_pylist()
    assert (row["run"], row["checkpoint"], row["model"]) == ("local/tiny@v1",) * 3 and row["value"] is not None
    assert store.query("SELECT model, revision FROM samples").to_pylist() == [{"model": "local/tiny@v1", "revision": "v1"}]
    r = run_cli("eval", "local/tiny", "--revision", "v1", *args, env=env, timeout=180)
    assert r.returncode == 0 and "0 samples generated" in r.stdout, r.stdout + r.stderr

    r = run_cli("eval", "local/tiny", "--revision", "nope", *args, env=env, timeout=60)
    _one_line(r, "local/tiny: no such folder here, and not in the Hugging Face cache at revision nope")
    r = run_cli("eval", str(tmp_path / "tiny"), "--revision", "v1", *args, env=env, timeout=60)
    _one_line(r, f"--revision v1: {tmp_path / 'tiny'} is a local folder")
    assert store.query("SELECT count(*) AS n FROM samples").to_pylist() == [{"n": 1}]


def test_an_endpoint_revision_labels_the_served_model():
    from curate.evaluate.targets import resolve_targets

    [t], _ = resolve_targets("http://127.0.0.1:9/v1", model="served", revision="r1")
    assert (t.run, t.identity, t.checkpoint, t.revision) == ("served@r1", "served@r1", "http://127.0.0.1:9/v1", "r1")
    [t], _ = resolve_targets("org/model", revision="main", run="mine")
    assert (t.run, t.identity, t.checkpoint, t.model_ref) == ("mine", "org/model@main", "org/model@main", "org/model")
