"""`curate eval` end to end on CPU: a tiny model trained with `curate train` on a Countdown mixture, its
checkpoints evaluated on the smoke suite with the hf backend, results in the `evals` table; reruns generate
nothing; a killed eval resumes to the same table; bad targets, suites and endpoints give one line."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import tiny  # noqa: E402

from curate.store import TraceStore  # noqa: E402
from curate.store.evals import read_evals  # noqa: E402
from tests.helpers import ROOT, run_cli  # noqa: E402

ENV = {"OMP_NUM_THREADS": "1"}
FAST = ["--backend", "hf", "--max-tokens", "16", "--no-progress", "--workers", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A Countdown store and mixture (the demo's pipeline, small), and a 2-step run with checkpoints at 1 and 2."""
    import torch

    from curate.demo import DemoConfig, run_demo
    from curate.train import train_from_config

    root = tmp_path_factory.mktemp("eval")
    run_demo(root / "store", root / "out", DemoConfig(problems=40, samples_per_problem=2, mixture_size=16, workers=1),
             say=lambda s: None)
    tiny.make_tokenizer(root / "tok")
    cfg = tiny.write_config(root / "train.yaml", root / "tok", root / "out" / "mixtures" / "verified", root / "run",
                            data={"max_length": 1024, "max_prompt_length": 256, "max_response_length": 768,
                                  "truncation": "truncate", "micro_batch_size": 4},
                            train={"global_batch_size": 8, "epochs": 1, "max_steps": 2, "lr": 1e-3, "warmup_ratio": 0.0, "seed": 7},
                            checkpoint={"steps": [1, 2], "every": None})
    torch.set_num_threads(1)
    train_from_config(cfg, [], echo=lambda *a: None)
    return root


def _evals(store: Path, where: str = "kind = 'score'") -> list[dict]:
    return read_evals(TraceStore(store), where)


def test_eval_run_dir_writes_one_row_per_checkpoint_and_benchmark_then_reruns_nothing(trained):
    store = trained / "store"
    r = run_cli("eval", str(trained / "run"), "--suite", "smoke", "--store", str(store), *FAST, "--json", env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["targets"] == 2 and rep["generated"] == 2 * (4 + 2 + 3)
    rows = _evals(store, "kind = 'score' AND suite = 'smoke'")
    got = sorted((row["step"], row["benchmark"], row["metric"]) for row in rows)
    assert got == sorted((s, b, m) for s in (1, 2) for b, m in
                         (("countdown", "avg@1"), ("humaneval", "avg@1"), ("safety", "asr")))
    manifest = json.loads((trained / "out" / "mixtures" / "verified" / "manifest.json").read_text())
    for row in rows:
        assert row["complete"] and 0 <= row["value"] <= 100 and row["ci_low"] <= row["value"] <= row["ci_high"]
        assert row["n_problems"] == {"countdown": 4, "humaneval": 2, "safety": 3}[row["benchmark"]]
        assert row["recipe_hash"] == manifest["recipe_hash"] and row["store_snapshot"] == manifest["store"]["id"]
        assert row["run"] == "run" and row["provenance"] == "curate"
    # behaviour sits next to the scores: response length and truncation per checkpoint and benchmark
    beh = _evals(store, "kind = 'behaviour' AND metric = 'mean_tokens'")
    assert len(beh) == 6 and all(0 < b["value"] <= 16 for b in beh)
    # the eval traces are ordinary stored samples, tied to their checkpoint and step
    n = TraceStore(store).query("SELECT count(*) AS n FROM eval_samples e JOIN samples s ON s.id = e.sample_id "
                                "WHERE e.step = 2").to_pylist()[0]["n"]
    assert n == 9
    again = run_cli("eval", str(trained / "run"), "--suite", "smoke", "--store", str(store), *FAST, "--json", env=ENV, timeout=300)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["generated"] == 0 and json.loads(again.stdout)["labeled"] == 0
    assert _evals(store, "kind = 'score' AND suite = 'smoke'") == rows
    table = run_cli("evals", "--store", str(store), "--json")
    wide = json.loads(table.stdout)
    assert {(w["run"], w["step"]) for w in wide if w["suite"] == "smoke"} == {("run", 1), ("run", 2)}
    assert all("countdown" in w and "mean_tokens" in w for w in wide)


def test_overrides_enter_the_settings_hash(trained):
    store = trained / "store"
    base = ["eval", str(trained / "run" / "checkpoints" / "step-000002"), "--suite", "smoke", "-b", "safety",
            "--store", str(store), *FAST]
    assert run_cli(*base, env=ENV, timeout=300).returncode == 0
    assert run_cli(*base, "--set", "sampling.temperature=0", env=ENV, timeout=300).returncode == 0
    rows = _evals(store, "benchmark = 'safety' AND step = 2 AND kind = 'score'")
    assert len({r["settings_hash"] for r in rows}) == 2


def _resumable_args(trained) -> list[str]:
    """Greedy, one sequence per batch: the text of a sample does not depend on what else was generated."""
    return ["eval", str(trained / "run" / "checkpoints" / "step-000001"), "--suite", "smoke", "-b", "countdown",
            "--set", "sampling.temperature=0", "--set", "countdown.auto_add.size=10", "--option", "batch_size=1",
            "--flush-every", "2", *FAST]


def _kill_after_two_shards(args: list[str], store) -> None:
    """Start `curate ARGS --store STORE` and SIGKILL its process group once two shards are written."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **ENV}
    proc = subprocess.Popen([sys.executable, "-m", "curate", *args, "--store", str(store)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((store / "shards").glob("[!.]*.parquet"))) < 2 and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_killed_eval_resumes_to_the_same_table(trained, tmp_path):
    args = _resumable_args(trained)
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert run_cli(*args, "--store", str(clean), env=ENV, timeout=300).returncode == 0
    _kill_after_two_shards(args, killed)
    assert not _evals(killed), "a killed eval must not have written a score"
    r = run_cli(*args, "--store", str(killed), "--json", env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["generated"] < 10  # what was flushed before the kill was kept

    def comparable(rows):
        return sorted((x["benchmark"], x["metric"], x["value"], x["n_samples"], x["complete"]) for x in rows)

    assert comparable(_evals(killed, "true")) == comparable(_evals(clean, "true"))


def _traces(store: Path) -> dict:
    return {r["id"]: (r["model"], r["text"]) for r in TraceStore(store).query("SELECT id, model, text FROM traces").to_pylist()}


def test_moved_run_and_killed_sampled_eval_give_the_same_ids_and_traces(trained, tmp_path):
    """Sample ids hold no absolute path (a model is its folder name and content hash) and sampling at T=0.6 is
    seeded per sample: the run evaluated in place, and a copy in another folder evaluated with a kill in the
    middle and a resume, store the same samples with the same texts."""
    import shutil

    from curate.evaluate.targets import resolve_targets

    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(trained / "run", moved)
    here, there = resolve_targets(str(trained / "run"))[0], resolve_targets(str(moved))[0]
    assert [t.identity for t in here] == [t.identity for t in there]
    assert all(str(tmp_path) not in t.identity and str(trained) not in t.identity for t in here + there)
    assert here[0].identity.startswith("run/step-000001@")

    def args(run: Path) -> list[str]:
        return ["eval", str(run / "checkpoints" / "step-000001"), "--suite", "smoke", "-b", "countdown",
                "--set", "countdown.auto_add.size=10", "--option", "batch_size=4", "--flush-every", "2", *FAST]

    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert run_cli(*args(trained / "run"), "--store", str(clean), env=ENV, timeout=300).returncode == 0
    _kill_after_two_shards(args(moved), killed)
    r = run_cli(*args(moved), "--store", str(killed), "--json", env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    a, b = _traces(clean), _traces(killed)
    assert len(a) == 10 and a == b


# ------------------------------------------------------------------ bad input: one line, non-zero exit


def _one_line_error(r, *needles: str) -> None:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    err = r.stderr.strip()
    assert err.startswith("error:"), err
    for n in needles:
        assert n in err, err


def test_checkpoint_without_weights_and_one_still_being_written(tmp_path):
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "config.json").write_text("{}")
    _one_line_error(run_cli("eval", str(ck), "--store", str(tmp_path / "s")), "no model weights")
    run = tmp_path / "run"
    (run / "checkpoints" / "step-000004.tmp").mkdir(parents=True)
    _one_line_error(run_cli("eval", str(run), "--store", str(tmp_path / "s")), "no complete checkpoint")
    _one_line_error(run_cli("eval", str(tmp_path / "nope"), "--store", str(tmp_path / "s")), "no such checkpoint")


def test_bad_suites_name_file_line_and_field(tmp_path, trained):
    ck = str(trained / "run" / "checkpoints" / "step-000001")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nbenchmarks:\n  - name: x\n    task: countdown\n    verifier: countdown\n    temprature: 1\n")
    _one_line_error(run_cli("eval", ck, "--suite", str(bad), "--store", str(tmp_path / "s")),
                    f"{bad}:6: benchmarks.0.temprature: unknown key")
    bad.write_text("name: bad\nbenchmarks:\n  - {name: x, task: countdown, verifier: nosuch, auto_add: {size: 2}}\n")
    _one_line_error(run_cli("eval", ck, "--suite", str(bad), "--store", str(tmp_path / "s"), *FAST), "nosuch")
    bad.write_text("name: bad\nbenchmarks:\n  - {name: x, task: countdown, verifier: countdown, n: 1, metrics: [pass@3]}\n")
    _one_line_error(run_cli("eval", ck, "--suite", str(bad), "--store", str(tmp_path / "s")), "needs n >= 3")
    _one_line_error(run_cli("eval", ck, "--suite", "nosuite", "--store", str(tmp_path / "s")), "no suite named 'nosuite'")


def test_benchmark_without_problems_names_the_tasks_add_command(tmp_path, trained):
    ck = str(trained / "run" / "checkpoints" / "step-000001")
    r = run_cli("eval", ck, "--suite", "math", "--store", str(tmp_path / "s"), *FAST)
    _one_line_error(r, "math500", "no eval-split problems")
    assert "curate tasks add math500" in r.stderr


def test_endpoint_that_does_not_answer(tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run_cli("eval", f"http://127.0.0.1:{port}/v1", "--model", "m", "--suite", "smoke", "-b", "safety",
                "--store", str(tmp_path / "s"), "--option", "max_retries=0", "--no-progress", timeout=120)
    _one_line_error(r, f"127.0.0.1:{port}")
    assert not _evals(tmp_path / "s", "true")


def test_jobs_evaluate_checkpoints_side_by_side_with_the_same_rows(trained, tmp_path):
    """--jobs 2: one `curate eval RUN --steps S` process per checkpoint; rows equal a sequential run's."""
    args = ["eval", str(trained / "run"), "--suite", "smoke", "-b", "safety", "--set", "sampling.temperature=0", *FAST]
    seq, par = tmp_path / "seq", tmp_path / "par"
    assert run_cli(*args, "--store", str(seq), env=ENV, timeout=300).returncode == 0
    r = run_cli(*args, "--store", str(par), "--jobs", "2", env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr

    def comparable(rows):
        return sorted((x["step"], x["benchmark"], x["metric"], x["value"], x["settings_hash"], x["run_id"]) for x in rows)

    assert comparable(_evals(par, "true")) == comparable(_evals(seq, "true"))
    assert {x["step"] for x in _evals(par)} == {1, 2}
