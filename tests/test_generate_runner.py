"""The resumable runner on a real store: resume after SIGKILL (no duplicate, no gap), --shard i/n,
growing --n, partial progress kept when a backend fails, prompts the server refuses named in the error (with no
promise that a rerun helps), and the CLI's dry run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curate.errors import BackendError, InputError
from curate.generate import RunConfig, SamplingParams, generate, make_backend
from curate.generate.runner import run
from curate.generate.testserver import ServerState, TestServer
from curate.records import Problem
from curate.store import TraceStore
from curate.tasks import add_problems
from tests.helpers import default_signals

ROOT = Path(__file__).resolve().parents[1]
WHERE = "source = 'countdown'"


@pytest.fixture
def store(tmp_path) -> TraceStore:
    st = TraceStore(tmp_path / "store")
    add_problems(st, "countdown", {"max_numbers": 4}, size=30, seed=1)
    return st


def synth(**opts):
    return make_backend("synthetic", None, SamplingParams(), opts)


def counts(st: TraceStore) -> tuple[int, int, int]:
    row = st.query("SELECT count(*) AS n, count(DISTINCT id) AS d, "
                   "count(DISTINCT problem_id || ':' || sample_index) AS k FROM samples").to_pylist()[0]
    return row["n"], row["d"], row["k"]


def test_run_stores_everything_once_and_resumes_as_noop(store):
    r = run(store, synth(), WHERE, RunConfig(n=3), progress=False)
    assert (r.problems, r.planned, r.generated, r.existing) == (30, 90, 90, 0)
    assert counts(store) == (90, 90, 90)
    row = store.query("SELECT backend, model, revision, params, finish_reason, completion_tokens, run_id, latency_s "
                      "FROM samples LIMIT 1").to_pylist()[0]
    params = json.loads(row["params"])
    assert row["backend"] == "synthetic" and row["finish_reason"] == "stop" and row["run_id"] == r.run_id
    assert params["temperature"] == 0.6 and params["wrong_share"] == 0.0 and "template" in params
    assert row["completion_tokens"] > 0 and row["latency_s"] is not None
    again = run(store, synth(), WHERE, RunConfig(n=3), progress=False)
    assert (again.existing, again.generated) == (90, 0) and counts(store) == (90, 90, 90)


def test_resume_check_reads_the_catalog_only(store):
    """Planning a resume opens no committed shard file: a lost one is neither read nor warned about, and its
    samples still count as stored (their rows are in the catalog)."""
    import warnings

    run(store, synth(), WHERE, RunConfig(n=2), progress=False)
    for shard in store.shard_dir.glob("*.parquet"):
        shard.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = run(TraceStore(store.path), synth(), WHERE, RunConfig(n=2), progress=False)
    assert (again.existing, again.generated) == (60, 0)


def test_plan_opens_the_catalog_once_and_lets_writers_in_while_hashing_a_large_plan(store, monkeypatch):
    """A small plan reads problems and stored ids on one catalog open; a large one lets go of the store while it
    hashes its ids (other jobs' commits would wait for it), with the same result."""
    from curate.generate import runner
    from curate.generate.spec import BackendIdentity
    from curate.store import connection

    run(store, synth(), WHERE, RunConfig(n=2, limit=10), progress=False)
    opens, real = [], connection.duckdb.connect
    monkeypatch.setattr(connection.duckdb, "connect", lambda *a, **k: opens.append(1) or real(*a, **k))
    ident = BackendIdentity.of(synth())
    small = runner.plan(store, WHERE, ident, RunConfig(n=2))
    assert len(opens) == 1
    monkeypatch.setattr(runner, "SHARED_PLAN", 10)
    large = runner.plan(store, WHERE, ident, RunConfig(n=2))
    assert len(opens) == 3
    assert [r.id for r in small[0]] == [r.id for r in large[0]] and len(small[0]) == 40
    assert small[1].existing == large[1].existing == 20


def test_growing_n_and_changed_knob(store):
    trial = run(store, synth(), WHERE, RunConfig(n=2, limit=5), progress=False)
    assert (trial.problems, trial.generated) == (5, 10)  # --limit: a trial run on the first problems
    run(store, synth(), WHERE, RunConfig(n=2), progress=False)
    r = run(store, synth(), WHERE, RunConfig(n=4), progress=False)
    assert (r.existing, r.generated) == (60, 60)  # the trial's 10 were reused, not regenerated
    r = run(store, synth(wrong_share=0.5), WHERE, RunConfig(n=1), progress=False)
    assert r.generated == 30  # a different generator config is a different sample identity
    assert counts(store)[0] == 150


def test_shards_partition_the_work(store):
    a = run(store, synth(), WHERE, RunConfig(n=2, shard=(0, 3)), progress=False)
    b = run(store, synth(), WHERE, RunConfig(n=2, shard=(1, 3)), progress=False)
    c = run(store, synth(), WHERE, RunConfig(n=2, shard=(2, 3)), progress=False)
    assert a.problems + b.problems + c.problems == 30 and min(a.problems, b.problems, c.problems) > 0
    assert counts(store) == (60, 60, 60)
    assert run(store, synth(), WHERE, RunConfig(n=2), progress=False).generated == 0


def test_truncation_is_stored_and_marked(store):
    r = generate(store, WHERE, "synthetic", None, sampling=SamplingParams(max_tokens=16), run_config=RunConfig(n=1),
                 progress=False)
    assert r.truncated == 30
    rows = store.query("SELECT s.finish_reason, f.truncated FROM samples s JOIN features f ON f.sample_id = s.id").to_pylist()
    assert all(x["finish_reason"] == "length" and x["truncated"] for x in rows)


def test_backend_failure_keeps_partial_progress(tmp_path):
    st = TraceStore(tmp_path / "s")
    add_problems(st, "countdown", {"max_numbers": 3}, size=20, seed=0)
    state = ServerState()
    served = {"n": 0}

    def fault():  # the server dies (HTTP 503 forever) after 12 answers
        served["n"] += 1
        return "503" if served["n"] > 12 else None

    state.next_fault = fault
    with TestServer(state) as srv:
        opts = {"base_url": srv.base_url, "concurrency": 1, "max_retries": 2, "backoff_s": 0.0}
        with pytest.raises(BackendError, match="rerun the same command"):
            generate(st, WHERE, "openai", "test-model", sampling=SamplingParams(max_tokens=64), options=opts,
                     run_config=RunConfig(n=1), progress=False)
    assert counts(st)[0] == 12
    with TestServer() as srv:
        opts["base_url"] = srv.base_url
        r = generate(st, WHERE, "openai", "test-model", sampling=SamplingParams(max_tokens=64), options=opts,
                     run_config=RunConfig(n=1), progress=False)
    assert (r.existing, r.generated) == (12, 8) and counts(st) == (20, 20, 20)


def test_prompts_the_server_refuses_are_named_and_a_rerun_is_not_promised(tmp_path):
    st = TraceStore(tmp_path / "s")
    add_problems(st, "countdown", {"max_numbers": 3}, size=5, seed=0)
    # a server that answers HTTP 400 (as for a prompt over its context length) to the first two prompts
    with TestServer(ServerState(fault_queue=["400", "400"])) as srv:
        opts = {"base_url": srv.base_url, "concurrency": 1, "backoff_s": 0.0}
        with pytest.raises(BackendError) as e:
            generate(st, WHERE, "openai", "test-model", sampling=SamplingParams(max_tokens=64), options=opts,
                     run_config=RunConfig(n=1), progress=False)
    msg = e.value.message
    assert msg.startswith("backend openai returned no result for 2 requests: the server refused them (HTTP 400"), msg
    assert "\n" not in msg and "rerun the same command" not in e.value.hint and "refused again" in e.value.hint
    assert counts(st)[0] == 3  # the answered prompts are stored


def test_empty_prompt_is_named(tmp_path):
    st = TraceStore(tmp_path / "s")
    st.add_problems([Problem(source="countdown", domain="game", prompt="   ", reference={"numbers": [1, 2], "target": 3})])
    with pytest.raises(InputError, match="empty prompt"):
        run(st, synth(), None, RunConfig(), progress=False)


def _cli(*args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "curate", *args], cwd=ROOT, env=env, preexec_fn=default_signals,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_sigkill_mid_run_then_rerun_no_duplicate_no_gap(tmp_path):
    path = tmp_path / "store"
    st = TraceStore(path)
    add_problems(st, "countdown", {"max_numbers": 4}, size=200, seed=2)
    args = ["generate", "--store", str(path), "--problems", WHERE, "--n", "8", "--flush-every", "25",
            "--no-progress", "--json"]
    proc = _cli(*args)
    incoming = st.shard_dir
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:  # wait for the first shards, then kill hard
        if incoming.exists() and len(list(incoming.glob("*.parquet"))) >= 3:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be killed; make it bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stored_before = counts(st)[0]
    assert stored_before < 1600
    out, err = _cli(*args).communicate(timeout=120)
    report = json.loads(out.strip().splitlines()[-1])
    assert report["existing"] > 0 and report["existing"] + report["generated"] == 1600, err
    assert counts(st) == (1600, 1600, 1600)


def test_ctrl_c_says_what_was_kept_and_readers_see_it(tmp_path):
    """SIGINT mid-run: one line saying how many samples are stored, exit 130, and `curate sql` counts them
    at once (the interrupted run commits its shards instead of leaving them to the next write)."""
    path = tmp_path / "store"
    st = TraceStore(path)
    add_problems(st, "countdown", {"max_numbers": 4}, size=200, seed=2)
    proc = _cli("generate", "--store", str(path), "--problems", WHERE, "--n", "8", "--flush-every", "25", "--no-progress")
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if st.shard_dir.exists() and len(list(st.shard_dir.glob("*.parquet"))) >= 3:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be interrupted; make it bigger"
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    line = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(line) == 1 and "interrupted: the" in line[0] and "samples this run generated are stored" in line[0], err
    kept = int(line[0].split("interrupted: the ")[1].split()[0])
    assert 0 < kept < 1600 and "Traceback" not in err
    assert TraceStore(path).pending_shards() == []
    assert TraceStore(path).query("SELECT count(*) AS n FROM samples").to_pylist()[0]["n"] == kept


def test_cli_dry_run_generates_nothing(tmp_path, cli):
    path = tmp_path / "store"
    assert cli("tasks", "add", "countdown", "--store", str(path), "--size", "5").returncode == 0
    r = cli("generate", "--store", str(path), "--n", "4", "--dry-run")
    assert r.returncode == 0 and "samples planned 20" in r.stdout and "Numbers:" in r.stdout
    assert TraceStore(path).query("SELECT count(*) AS n FROM samples").to_pylist()[0]["n"] == 0
    real = cli("generate", "--store", str(path), "--n", "2")
    assert real.returncode == 0 and "generated 10 samples" in real.stdout
    assert "samples/s" in real.stdout and "tok/s" in real.stdout  # the progress bar's rates
    bad = cli("generate", "--store", str(path), "--shard", "3/2")
    assert bad.returncode != 0 and "--shard" in bad.stderr


def test_cli_openai_backend_against_local_server(tmp_path, cli):
    path = tmp_path / "store"
    assert cli("tasks", "add", "countdown", "--store", str(path), "--size", "6", "--set", "max_numbers=3").returncode == 0
    with TestServer(ServerState(fault_queue=["429", "500", "malformed"])) as srv:
        r = cli("generate", "--store", str(path), "--backend", "openai", "--base-url", srv.base_url, "--model",
                "test-model", "--n", "2", "--max-tokens", "64", "--option", "backoff_s=0.01", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["generated"] == 12 and report["backend"] == "openai"
    rows = TraceStore(path).query("SELECT model, finish_reason, completion_tokens, params FROM samples").to_pylist()
    assert len(rows) == 12 and all(x["model"] == "test-model" and x["finish_reason"] == "stop" for x in rows)
    assert json.loads(rows[0]["params"])["endpoint"] == "chat"
    down = cli("generate", "--store", str(path), "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
               "--model", "m", "--n", "3", "--option", "max_retries=1", "--option", "backoff_s=0")
    assert down.returncode != 0 and "request failed after 2 attempts" in down.stderr and "Traceback" not in down.stderr
