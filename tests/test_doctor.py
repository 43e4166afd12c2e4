"""`curate doctor`: one line per integrity problem, and a rebuilt catalog equal to the one that was lost."""
from __future__ import annotations

import os
from pathlib import Path

from curate.records import Verdict
from curate.store import TraceStore
from curate.store.doctor import check, rebuild
from curate.tasks import add_problems
from tests.store_workers import samples_for


def make_store(path):
    st = TraceStore(path)
    add_problems(st, "countdown", {}, size=40, seed=0, split="train")
    from curate.generate import RunConfig, SamplingParams, generate

    generate(st, None, "synthetic", None, sampling=SamplingParams(), run_config=RunConfig(n=2, flush_every=25),
             progress=False)
    ids = [r["id"] for r in st.query("SELECT id FROM samples ORDER BY id").to_pylist()]
    st.add_verdicts([Verdict(status="correct", verifier="v", version="1", score=1.0, sample_id=i) for i in ids])
    # a relabel overrides half of them: a rebuild must keep the newer verdicts
    st.add_verdicts([Verdict(status="incorrect", verifier="v", version="1", score=0.0, sample_id=i) for i in ids[:40]],
                    replace=True)
    return st


def snapshot(st):
    q = {
        "problems": "SELECT id, source, prompt, reference, metadata, split FROM problems ORDER BY id",
        "samples": "SELECT * EXCLUDE (created_at) FROM samples ORDER BY id",
        "features": "SELECT * FROM features ORDER BY sample_id",
        "texts": "SELECT id, text FROM traces ORDER BY id",
        "verdicts": "SELECT * EXCLUDE (created_at) FROM verdicts ORDER BY sample_id, verifier",
    }
    return {k: st.query(v).to_pylist() for k, v in q.items()}


def test_healthy_store_passes(tmp_path, cli):
    st = make_store(tmp_path / "s")
    rep = check(st)
    assert rep.ok, rep.problems
    assert rep.counts["sample_rows"] == 80 and rep.counts["verdict_rows"] == 80
    r = cli("doctor", "--store", str(st.path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok:")


def test_missing_shard_and_orphans_are_one_line_each(tmp_path, cli):
    st = make_store(tmp_path / "s")
    shard = sorted(st.shard_dir.glob("*.parquet"))[0]
    shard.unlink()
    st.write_shard(samples_for(0, 0, 5))  # pending (not a problem), but its problem is unknown once committed
    rep = check(st)
    assert len(rep.problems) == 1 and f"shard {shard}: missing" in rep.problems[0]
    assert any("not committed yet" in n for n in rep.notes)
    st.commit_pending()
    rep = check(st)
    assert any("samples whose problem is not stored (5)" in p for p in rep.problems)
    r = cli("doctor", "--store", str(st.path))
    assert r.returncode == 1
    assert r.stdout.count("problem:") == 2 and "integrity problems" in r.stderr


def test_rebuild_recovers_a_destroyed_catalog(tmp_path, cli):
    st = make_store(tmp_path / "s")
    before = snapshot(st)
    size = st.db_path.stat().st_size
    with open(st.db_path, "r+b") as f:  # cut the catalog short, as the corruption did: blocks past the end
        f.truncate(size // 2)
    rep = check(st)
    assert not rep.ok and all("\n" not in p for p in rep.problems)
    r = cli("doctor", "--store", str(st.path), "--rebuild")
    assert r.returncode == 0, r.stderr + r.stdout
    assert "rebuilt" in r.stdout and "old catalog kept" in r.stdout
    assert snapshot(TraceStore(st.path)) == before
    assert [p.name for p in st.path.iterdir() if p.name.startswith("catalog.duckdb.damaged-")]
    assert check(TraceStore(st.path)).ok


def test_rebuild_of_a_healthy_store_changes_nothing(tmp_path):
    st = make_store(tmp_path / "s")
    before = snapshot(st)
    shards = sorted(os.listdir(st.shard_dir))
    built = rebuild(st)
    assert (built.problems, built.samples, built.verdicts) == (40, 80, 80)
    assert snapshot(st) == before and sorted(os.listdir(st.shard_dir)) == shards


def test_rebuild_keeps_evaluation_results(tmp_path):
    """Eval results and planned eval samples leave records too, so a rebuilt catalog still has every score."""
    from curate.evaluate.results import import_results
    from curate.store import TraceStore
    from curate.store.doctor import rebuild
    from curate.store.evals import plan_samples, read_evals

    st = TraceStore(tmp_path / "store")
    import_results(st, Path(__file__).parent / "fixtures" / "evals" / "paper_curves.csv")
    key = {"run": "r", "checkpoint": "c", "step": 1, "suite": "smoke", "benchmark": "b", "settings_hash": "h"}
    assert plan_samples(st, [{**key, "sample_id": "s1", "problem_id": "p1", "sample_index": 0}]) == 1
    assert plan_samples(st, [{**key, "sample_id": "s1", "problem_id": "p1", "sample_index": 0}]) == 0  # no new record
    before = read_evals(st)
    import_results(st, Path(__file__).parent / "fixtures" / "evals" / "paper_curves.csv")  # identical: nothing rewritten
    assert read_evals(st) == before
    rebuild(st)
    assert read_evals(st) == before
    assert st.query("SELECT sample_id FROM eval_samples").to_pylist() == [{"sample_id": "s1"}]
