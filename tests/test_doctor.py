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


# ---------------------------------------------------------------- everything the catalog holds is rebuilt

WHOLE = {
    "problems": "SELECT * EXCLUDE (pkey) FROM problem_rows ORDER BY id",
    "samples": "SELECT * EXCLUDE (skey, pkey, created_at) FROM sample_rows ORDER BY id",
    "verdicts": "SELECT * EXCLUDE (skey) FROM verdict_rows ORDER BY sample_id, verifier, version",
    "evals": "SELECT * FROM eval_rows ORDER BY ALL",
    "eval_samples": "SELECT * FROM eval_sample_rows ORDER BY ALL",
    "study_runs": "SELECT * FROM study_run_rows ORDER BY run",
    "lineage": "SELECT * FROM lineage ORDER BY ALL",
}


def whole(st) -> dict:
    """Every row the catalog holds (created_at included; sample and shard times excepted, as documented)."""
    return {k: st.query(q).to_pylist() for k, q in WHOLE.items()}


def make_study_store(path):
    """make_store plus eval results, planned eval samples, three study run records and a retired run."""
    from curate.store.evals import plan_samples, write_evals
    from curate.store.lineage import record_run, retire_run

    st = make_store(path)
    for n, run in enumerate(("a", "b", "c")):
        write_evals(st, [{"run": run, "checkpoint": f"/x/{run}/step-2", "step": 2, "suite": "smoke", "benchmark": "cd",
                          "metric": "avg@1", "value": 10.0 * n, "settings_hash": "h", "provenance": "curate"}])
        plan_samples(st, [{"run": run, "checkpoint": f"/x/{run}/step-2", "step": 2, "suite": "smoke", "benchmark": "cd",
                           "settings_hash": "h", "sample_id": f"s{n}", "problem_id": "p", "sample_index": 0}])
        record_run(st, {"run": run, "study": "toy", "cell": f"cell-{run}", "condition": "verified", "mixture": f"m-{run}",
                        "recipe_file": "/r/verified.yaml", "recipe_hash": "rh", "mixture_fingerprint": "mf"})
    assert retire_run(st, "c", "c@old") == 1
    # the rerun of c after it was retired: its new rows keep the name, the retired ones stay renamed
    write_evals(st, [{"run": "c", "checkpoint": "/x/c/step-2", "step": 2, "suite": "smoke", "benchmark": "cd",
                      "metric": "avg@1", "value": 99.0, "settings_hash": "h", "provenance": "curate"}])
    record_run(st, {"run": "c", "study": "toy", "cell": "cell-c", "condition": "verified", "mixture": "m-c2"})
    return st


def test_a_corrupted_catalog_is_rebuilt_whole_with_lineage_and_times(tmp_path, cli):
    st = make_study_store(tmp_path / "s")
    before = whole(st)
    assert len(before["study_runs"]) == 4 and {r["run"] for r in before["evals"]} == {"a", "b", "c", "c@old"}
    assert all(r["study"] == "toy" for r in before["lineage"])
    with open(st.db_path, "r+b") as f:  # corrupt it: blocks past the end
        f.truncate(st.db_path.stat().st_size // 2)
    r = cli("doctor", "--store", str(st.path), "--rebuild")
    assert r.returncode == 0, r.stderr + r.stdout
    assert whole(TraceStore(st.path)) == before


def test_a_missing_catalog_is_rebuilt_and_said_so(tmp_path, cli):
    st = make_study_store(tmp_path / "s")
    before = whole(st)
    st.db_path.unlink()
    r = cli("doctor", "--store", str(st.path), "--rebuild")
    assert r.returncode == 0, r.stderr + r.stdout
    assert "there was no catalog before" in r.stdout and "None" not in r.stdout
    assert whole(TraceStore(st.path)) == before


def test_the_rebuild_opens_the_new_catalog_once(tmp_path, monkeypatch):
    from curate.store import access

    st = make_study_store(tmp_path / "s")
    assert len(st.record_files()) > 10
    opened = []
    real = access.connect
    monkeypatch.setattr(access, "connect", lambda path, **kw: opened.append(path) or real(path, **kw))
    rebuild(st)
    assert len(opened) == 1, opened


def test_doctor_compacts_records_and_the_rebuild_stays_exact(tmp_path, cli):
    import shutil

    st = make_study_store(tmp_path / "s")
    ids = [r["id"] for r in st.query("SELECT id FROM samples ORDER BY id").to_pylist()]
    for k in range(8):  # many small verdict batches, then a relabel of some
        st.add_verdicts([Verdict(status="correct", verifier=f"w{k}", version="1", score=1.0, sample_id=i) for i in ids])
    st.add_verdicts([Verdict(status="incorrect", verifier="w0", version="1", score=0.0, sample_id=i) for i in ids[:9]],
                    replace=True)
    before = whole(st)
    old = st.path / "old-records"
    shutil.copytree(st.records_dir, old)
    n_before = len(st.record_files())
    r = cli("doctor", "--store", str(st.path))
    assert r.returncode == 0, r.stderr + r.stdout
    assert f"{n_before - 5} record files replaced by one per kind" in r.stdout or "compacted" in r.stdout
    kinds = [k for k, _ in st.record_files()]
    assert len(kinds) == len(set(kinds)) == 5  # one file per kind (renames are folded into the rows)
    assert cli("doctor", "--store", str(st.path)).stdout.count("compacted") == 0  # nothing left to compact
    assert whole(st) == before
    rebuild(st)
    assert whole(st) == before
    # a kill after the compacted records were written but before the old ones were removed leaves both
    for p in old.rglob("*.parquet"):
        shutil.copy2(p, st.records_dir / p.relative_to(old))
    rebuild(st)
    assert whole(st) == before
