"""The Ray executor (Ray Data pipelines) on a local 2-CPU Ray: the synthetic backend and the real verifiers give the
same sample ids, texts, verdicts and eval rows as the local executor (also when the server refuses a prompt:
the benchmark is stored incomplete with the same `details.refused`); a worker killed mid-batch (labeling) or right
after writing its shard (generation) is retried with no duplicates and no loss; a self-test failing on a worker
writes only what earlier self-tests confirmed; an actor that dies on every try stops the command with one line
past CURATE_RAY_MAX_REBUILDS, keeping what was stored, and a rerun resumes; prompts a worker's server refuses are
named in the error; a verifier with `max_workers = 1` (the reward model's cap) is judged by one process; a store
the workers cannot see, or a GPU backend on a cluster without GPUs, stops the command with one line. One Ray session serves the whole module (starting Ray takes
~10 s here).

    python -m pytest -q tests/test_ray_executor.py
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from curate.errors import ConfigError, CurateError, InputError, StoreError  # noqa: E402
from curate.generate import SamplingParams, make_backend  # noqa: E402
from curate.generate.runner import RunConfig, run  # noqa: E402
from curate.label import label_store  # noqa: E402
from curate.records import Problem, Sample  # noqa: E402
from curate.scale import ray_executor as X  # noqa: E402
from curate.scale.ray_label import _pieces  # noqa: E402
from curate.store import TraceStore  # noqa: E402
from curate.tasks import iter_problems  # noqa: E402
from tests.helpers import run_cli  # noqa: E402
from tests.helpers import capped_plugin, flaky_plugin  # noqa: E402
from verifiers import registry  # noqa: E402

SAMPLING = SamplingParams(max_tokens=4096)
OPTIONS = {"wrong_share": 0.3}  # some traces reach a wrong answer, so verdicts are not all `correct`


@pytest.fixture(scope="module", autouse=True)
def ray_session(tmp_path_factory):
    # A plugin verifier whose environment can break (see tests/test_label.py), visible to this process and, through
    # the environment Ray's workers inherit, to every verifier worker.
    env = flaky_plugin(tmp_path_factory.mktemp("flaky"))
    capped_plugin(Path(env["PYTHONPATH"].split(":")[-1]))  # and one_copy, a verifier with max_workers, beside it
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    sys.path.append(env["PYTHONPATH"].split(":")[-1])
    registry.clear_cache()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,  # workers get this checkout's sys.path
             _system_config=X.LOCAL_SYSTEM_CONFIG)
    yield
    ray.shutdown()
    sys.path.remove(env["PYTHONPATH"].split(":")[-1])
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    registry.clear_cache()


def _store(path: Path, problems: int = 12) -> TraceStore:
    st = TraceStore(path)
    st.add_problems(list(iter_problems("countdown", {}, problems, 3, "train")))
    return st


def _traces(st: TraceStore) -> list[dict]:
    return st.query("SELECT id, problem_id, sample_index, text, finish_reason FROM traces ORDER BY id").to_pylist()


def _verdicts(st: TraceStore) -> list[dict]:
    return st.query("SELECT sample_id, verifier, version, status, answer FROM verdicts ORDER BY ALL").to_pylist()


def _local(path: Path, cfg: RunConfig) -> TraceStore:
    st = _store(path)
    run(st, make_backend("synthetic", None, SAMPLING, OPTIONS), None, cfg, progress=False)
    _add_math(st)
    label_store(st, workers=2, batch_size=5)
    return st


def _add_math(st: TraceStore) -> None:
    """Two math traces next to the countdown ones, so labeling runs two verifiers (sympy in the workers)."""
    p = Problem("math500", "math", "What is 1/2 + 1/4?", "\\frac{3}{4}")
    st.add_problems([p])
    st.add_samples([Sample(p.id, "<think>1/2 = 2/4</think>So \\boxed{\\frac{3}{4}}", "synthetic", "m"),
                    Sample(p.id, "<think>hmm</think>\\boxed{0.7}", "synthetic", "m", sample_index=1)])


def test_same_ids_texts_and_verdicts_as_the_local_executor_and_a_rerun_does_nothing(tmp_path):
    cfg = RunConfig(n=3, seed=1, sampling=SAMPLING, flush_every=8)
    local = _local(tmp_path / "local", cfg)

    st = _store(tmp_path / "ray")
    rep = X.generate(st, X.BackendSpec("synthetic", None, SAMPLING, OPTIONS), None, cfg, progress=False)
    assert rep.generated == rep.committed == rep.planned == 36
    assert not st.pending_shards()
    again = X.generate(st, X.BackendSpec("synthetic", None, SAMPLING, OPTIONS), None, cfg, progress=False)
    assert again.generated == 0 and again.existing == 36  # resume plans the same ids and finds them stored
    _add_math(st)
    assert _traces(st) == _traces(local)

    lab = X.label_store(st, workers=2, batch_size=5)
    assert lab.labeled == lab.written == 38 and lab.self_tests >= 2 + 38 // 5
    assert set(lab.by_verifier) == {"countdown@1", "math@1"}
    assert _verdicts(st) == _verdicts(local)
    statuses = {v["status"] for v in _verdicts(st)}
    assert statuses == {"correct", "incorrect"}
    assert X.label_store(st, workers=2).labeled == 0  # only what lacks a verdict is judged (and Ray is not needed)


def test_a_labeling_worker_killed_mid_batch_is_retried_with_no_loss_and_no_duplicates(tmp_path, monkeypatch):
    cfg = RunConfig(n=2, seed=5, sampling=SAMPLING)
    local = _local(tmp_path / "local", cfg)
    st = _store(tmp_path / "ray")
    run(st, make_backend("synthetic", None, SAMPLING, OPTIONS), None, cfg, progress=False)
    _add_math(st)
    marker = tmp_path / "killed-once"
    monkeypatch.setenv(X.FAULT_ENV, f"kill_label_once={marker}")
    lab = X.label_store(st, workers=2, batch_size=4)
    assert marker.exists()  # a worker really died mid-batch
    assert lab.labeled == lab.written == 26  # the killed batch's partial work was never counted or written
    assert _verdicts(st) == _verdicts(local)


def test_a_verifier_with_max_workers_is_judged_by_that_many_processes(tmp_path):
    st = _store(tmp_path / "store", problems=4)
    run(st, make_backend("synthetic", None, SAMPLING, OPTIONS), None, RunConfig(n=1, seed=2, sampling=SAMPLING),
        progress=False)
    probs = [Problem("one_copy", "one_copy", f"Say ok ({i}).", "ok") for i in range(8)]
    st.add_problems(probs)
    st.add_samples([Sample(p.id, "ok", "s", "m") for p in probs])
    rep = X.label_store(st, workers=2, batch_size=2)
    assert rep.labeled == rep.written == 12
    assert sum(rep.by_verifier["one_copy@1"].values()) == 8 and sum(rep.by_verifier["countdown@1"].values()) == 4
    pids = st.query("SELECT DISTINCT reason FROM verdicts WHERE verifier = 'one_copy'").to_pylist()
    assert len(pids) == 1  # one process judged all eight, as the local labeler's pool of one would


def test_a_self_test_failing_on_a_worker_writes_only_the_batches_confirmed_before_it(tmp_path):
    flag = Path(os.environ["FLAKY_FLAG"])
    st = TraceStore(tmp_path / "store")
    probs = [Problem("flaky", "flaky", f"Say ok ({i}).", "ok") for i in range(12)]
    st.add_problems(probs)
    st.add_samples([Sample(p.id, "BREAK" if i == 7 else "ok", "s", "m") for i, p in enumerate(probs)])
    flag.touch()  # broken from the start: the actor's first self-test fails and nothing is judged
    with pytest.raises(CurateError, match="'flaky' failed its self-test") as e:
        X.label_store(st, workers=1, batch_size=3)
    assert "'says ok'" in e.value.message and _verdicts(st) == []
    flag.unlink()  # breaks mid-run, at the sample BREAK
    with pytest.raises(CurateError, match="failed its self-test"):
        X.label_store(st, workers=1, batch_size=3)
    rows = _verdicts(st)
    assert len(rows) % 3 == 0 and 0 < len(rows) < 12  # whole batches, each confirmed by a self-test after it
    assert {r["status"] for r in rows} <= {"correct"}  # nothing from the failed batch, nothing wrong
    flag.unlink()


def test_a_missing_shard_skips_its_samples_as_the_local_executor_does(tmp_path):
    st = _store(tmp_path / "ray")
    run(st, make_backend("synthetic", None, SAMPLING, OPTIONS), None, RunConfig(n=2, seed=3, sampling=SAMPLING, flush_every=6),
        progress=False)
    shards = sorted(st.shard_dir.glob("*.parquet"))
    assert len(shards) >= 3
    shards[1].unlink()  # planned from the catalog, unreadable when a worker reads the text: fewer rows than planned
    shutil.copytree(st.path, tmp_path / "local")
    local = TraceStore(tmp_path / "local")
    want = label_store(local, workers=2, batch_size=4)
    got = X.label_store(st, workers=2, batch_size=4)
    assert got.labeled == got.written == want.labeled < 24
    assert _verdicts(st) == _verdicts(local)
    # the same warning `curate verify` prints after labeling, naming the shard and how many samples it skipped
    assert local.warnings and [w.replace(str(local.path), str(st.path)) for w in local.warnings] == st.warnings
    assert str(shards[1]) in st.warnings[0]


def test_a_generation_worker_killed_after_writing_its_shard_leaves_one_row_per_id(tmp_path, monkeypatch):
    cfg = RunConfig(n=2, seed=9, sampling=SAMPLING, flush_every=6)
    local = _store(tmp_path / "local")
    run(local, make_backend("synthetic", None, SAMPLING, OPTIONS), None, cfg, progress=False)
    st = _store(tmp_path / "ray")
    marker = tmp_path / "killed-once"
    monkeypatch.setenv(X.FAULT_ENV, f"kill_generate_once={marker}")
    rep = X.generate(st, X.BackendSpec("synthetic", None, SAMPLING, OPTIONS), None, cfg, progress=False)
    assert marker.exists()
    assert rep.committed == 24 and _traces(st) == _traces(local)  # the retried batch wrote its shard twice


def test_an_actor_that_dies_on_every_try_stops_the_command_with_one_line_and_a_rerun_resumes(tmp_path, monkeypatch):
    spec = X.BackendSpec("synthetic", None, SAMPLING, OPTIONS)
    local = _store(tmp_path / "local", problems=4)
    run(local, make_backend("synthetic", None, SAMPLING, OPTIONS), None, RunConfig(n=2, seed=7, sampling=SAMPLING),
        progress=False)
    store = tmp_path / "ray"
    st = _store(store, problems=4)
    assert X.generate(st, spec, None, RunConfig(n=1, seed=7, sampling=SAMPLING), progress=False).committed == 4
    X.label_store(st, workers=1)
    st.add_samples([Sample(st.problems()[0].id, "<think>2+2</think>\\boxed{4}", "s", "m")])  # one left to label

    # every actor dies on its first batch; Ray rebuilds it, and past the allowed rebuilds the command stops
    faults = {X.FAULT_ENV: "die_generate=1", X.REBUILDS_ENV: "1"}
    address = ray.get_runtime_context().gcs_address
    t0 = time.monotonic()
    gen = run_cli("generate", "--store", str(store), "--n", "2", "--seed", "7", "--max-tokens", "4096", "--option",
                  "wrong_share=0.3", "--executor", "ray", "--ray-address", address, "--no-progress", env=faults,
                  timeout=120)
    assert time.monotonic() - t0 < 60
    assert gen.returncode == 1 and "Traceback" not in gen.stderr, gen.stderr
    errors = [ln for ln in gen.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, gen.stderr
    assert "a Ray generation worker on" in errors[0] and "died 2 times" in errors[0] and "1 rebuilds" in errors[0]
    assert X.REBUILDS_ENV in errors[0] and "worker logs" in gen.stderr, gen.stderr
    assert len(_traces(st)) == 5  # what was committed before is kept
    assert not list(store.glob(".ray-*"))  # the probe and the rebuild counts are cleaned up

    for k, v in {X.FAULT_ENV: "die_label=1", X.REBUILDS_ENV: "0"}.items():
        monkeypatch.setenv(k, v)
    t0 = time.monotonic()
    with pytest.raises(CurateError, match="a Ray labeling worker on .* died 1 times") as e:
        X.label_store(st, workers=1)
    assert time.monotonic() - t0 < 60 and "\n" not in e.value.message and "worker logs" in e.value.hint
    assert len(_verdicts(st)) == 4

    monkeypatch.delenv(X.FAULT_ENV)  # the cause fixed, the same commands resume
    rep = X.generate(st, spec, None, RunConfig(n=2, seed=7, sampling=SAMPLING), progress=False)
    assert (rep.existing, rep.generated) == (4, 4)
    assert X.label_store(st, workers=1).written == 5
    assert [t for t in _traces(st) if t["text"] != "<think>2+2</think>\\boxed{4}"] == _traces(local)


def test_a_bad_rebuild_limit_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv(X.REBUILDS_ENV, "many")
    with pytest.raises(ConfigError, match="CURATE_RAY_MAX_REBUILDS must be a whole number"):
        X.generate(_store(tmp_path / "s", problems=1), X.BackendSpec("synthetic", None, SAMPLING, {}), None,
                   RunConfig(), progress=False)


def test_workers_that_cannot_see_the_store_stop_with_one_line(tmp_path, monkeypatch):
    st = _store(tmp_path / "store")
    _add_math(st)
    monkeypatch.setenv(X.FAULT_ENV, "hide_store=1")
    with pytest.raises(StoreError) as e:
        X.label_store(st, workers=1)
    assert "cannot read the store directory" in e.value.message and "\n" not in e.value.message
    assert "shared filesystem" in e.value.hint
    with pytest.raises(StoreError, match="cannot write to the store directory"):
        X.generate(st, X.BackendSpec("synthetic", None, SAMPLING, {}), None, RunConfig(), progress=False)
    assert not list(st.path.glob(X.PROBE_PREFIX + "*"))  # the probe file is cleaned up


def test_eval_through_ray_gives_the_local_rows(tmp_path):
    from curate.evaluate.command import evaluate_command
    from curate.generate.testserver import TestServer, synthetic_respond
    from curate.store.evals import read_evals
    from curate.generate.testserver import ServerState

    rows = {}
    with TestServer(ServerState(respond=synthetic_respond())) as server:
        for executor in ("local", "ray"):
            st = TraceStore(tmp_path / executor)
            rep = evaluate_command(st, server.base_url, "smoke", model="served", benchmarks=["countdown", "safety"],
                                   workers=1, progress=False, executor=executor)
            assert not rep.incomplete
            rows[executor] = ([(r["benchmark"], r["metric"], r["value"], r["n_samples"])
                               for r in read_evals(st, "kind = 'score'")], _verdicts(st))
    assert rows["ray"] == rows["local"] and rows["ray"][1]


def test_prompts_the_server_refuses_on_ray_workers_give_the_local_incomplete_rows(tmp_path):
    from curate.evaluate.command import evaluate_command
    from curate.generate.testserver import ServerState, TestServer, synthetic_respond
    from curate.store.evals import read_evals

    got = {}
    for executor in ("local", "ray"):
        st = TraceStore(tmp_path / executor)
        # the first prompt (a countdown one) is answered HTTP 400, as a server does for a prompt over its context
        with TestServer(ServerState(respond=synthetic_respond(), fault_queue=["400"])) as server:
            rep = evaluate_command(st, server.base_url, "smoke", model="served", benchmarks=["countdown", "safety"],
                                   workers=1, progress=False, executor=executor)
        rows = []
        for r in read_evals(st, "kind = 'score'"):
            d = json.loads(r["details"]) if isinstance(r["details"], str) else r["details"]
            rows.append((r["benchmark"], r["metric"], r["value"], r["n_samples"], r["complete"],
                         {k: d[k] for k in ("refused", "missing_samples", "status_counts") if k in d}))
        got[executor] = (rows, [i.split(": ", 1)[1] for i in rep.incomplete], rep.refused, len(_verdicts(st)))
    assert got["ray"] == got["local"]
    rows, incomplete, refused, _ = got["ray"]
    by_bench = {r[0]: r for r in rows}
    assert by_bench["countdown"][2] is None and not by_bench["countdown"][4]  # incomplete: no value
    assert by_bench["countdown"][5]["refused"]["samples"] == 1 and "HTTP 400" in by_bench["countdown"][5]["refused"]["reasons"][0]
    assert by_bench["safety"][4] and by_bench["safety"][2] is not None  # the next benchmark was evaluated
    assert refused == 1 and incomplete and "the server refused 1 samples" in incomplete[0]


def test_a_generate_run_names_the_prompts_ray_workers_servers_refused(tmp_path):
    from curate.errors import BackendError
    from curate.generate.testserver import ServerState, TestServer, synthetic_respond

    st = _store(tmp_path / "store", problems=3)
    refused: list = []
    with TestServer(ServerState(respond=synthetic_respond(), fault_queue=["400"])) as server:
        spec = X.BackendSpec("openai", "served", SAMPLING, {"base_url": server.base_url, "concurrency": 1})
        with pytest.raises(BackendError) as e:
            X.generate(st, spec, None, RunConfig(n=1), progress=False, refused=refused)
    assert "returned no result for 1 requests: the server refused them (HTTP 400" in e.value.message
    assert "refused again" in e.value.hint and "rerun the same command" not in e.value.hint
    assert len(refused) == 1 and len(_traces(st)) == 2


def test_cli_executor_flags(tmp_path):
    bad = run_cli("verify", "--store", str(tmp_path / "s"), "--executor", "spark")
    assert bad.returncode == 2 and "--executor must be one of local, ray" in bad.stderr
    lonely = run_cli("generate", "--store", str(tmp_path / "s"), "--ray-address", "auto")
    assert lonely.returncode == 2 and "--ray-address needs --executor ray" in lonely.stderr
    fanned = run_cli("eval", str(tmp_path / "run"), "--store", str(tmp_path / "s"), "--executor", "ray", "--jobs", "2")
    assert fanned.returncode == 2 and "use --jobs 1" in fanned.stderr


def test_cli_on_a_running_cluster_and_a_store_it_cannot_see(tmp_path):
    address = ray.get_runtime_context().gcs_address  # this module's cluster, not whatever else runs here
    store = tmp_path / "store"
    _store(store, problems=4)
    gen = run_cli("generate", "--store", str(store), "--n", "2", "--executor", "ray", "--ray-address", address,
                  "--no-progress", "--json", timeout=180)
    assert gen.returncode == 0, gen.stderr
    assert '"generated": 8' in gen.stdout
    hidden = run_cli("verify", "--store", str(store), "--executor", "ray", "--ray-address", address,
                     env={X.FAULT_ENV: "hide_store=1"}, timeout=180)
    assert hidden.returncode != 0 and "Traceback" not in hidden.stderr
    # Ray's own log lines (its core worker warns about every Ray Data actor pool) may come first; ours is one line
    errors = [ln for ln in hidden.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "cannot read the store directory" in errors[0], hidden.stderr


def test_a_gpu_backend_on_a_cluster_without_gpus_stops_with_one_line(tmp_path):
    st = _store(tmp_path / "store", problems=2)
    spec = X.BackendSpec("vllm", "org/model", SAMPLING, {"tensor_parallel_size": 2})
    with pytest.raises(ConfigError, match="needs 2 GPU\\(s\\) per engine and the Ray cluster has 0"):
        X.generate(st, spec, None, RunConfig(), progress=False)


def test_a_backend_error_on_a_worker_is_the_local_executor_s_error(tmp_path):
    st = _store(tmp_path / "store", problems=2)
    st.add_problems([Problem("math500", "math", "What is 2+2?", "4")])
    with pytest.raises(InputError, match="writes Countdown and chain-sum traces") as e:  # exit code 2, as locally
        X.generate(st, X.BackendSpec("synthetic", None, SAMPLING, {}), None, RunConfig(), progress=False)
    assert "rerun the same command to resume" in e.value.message


def test_labeling_pieces_are_bounded_and_hold_every_planned_sample_once(tmp_path):
    base = tmp_path / "store"
    probs = {f"p{i}": Problem("s", "math", f"q{i}", "1") for i in range(3)}
    plan = [(base / "shards" / f"{k}.parquet", [(f"{k}-{r}", f"p{r % 3}", r) for r in range(size)])
            for k, size in (("a", 7), ("b", 2), ("c", 1))]
    pieces, paths = _pieces([("math", plan, probs), ("code", plan[1:], probs)], 4, base, base.resolve())
    decoded = [pickle.loads(p) for p in pieces]
    sizes = [sum(len(items) for _, _, items in slices) for slices, _ in decoded]
    assert sizes == [4, 4, 4, 1]  # the 7-row shard is split; small shards and verifiers share a piece
    seen = [(name, shard, sid, row) for slices, _ in decoded for name, shard, items in slices for sid, _, row in items]
    assert len(seen) == len(set(seen)) == 13
    for slices, problems in decoded:  # each piece carries exactly the problems of its samples
        assert set(problems) == {pid for _, _, items in slices for _, pid, _ in items}
    assert paths[("code", str(base.resolve() / "shards" / "b.parquet"))] == (3, plan[1][0])
