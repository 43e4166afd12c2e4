"""TraceStore on real DuckDB files: migrations, idempotent ingest, views, verdicts, damaged shards."""
from __future__ import annotations

import warnings

import duckdb
import pytest

from curate.errors import InputError, StoreError, StoreVersionError
from curate.records import Problem, Sample, Verdict
from curate.store import TraceStore
from curate.store import migrations


def make(n_problems=3, per=2, text=lambda i, k: f"<think>step {i}.{k}</think> \\boxed{{{i}}}"):
    probs = [Problem(source="unit", domain="math", prompt=f"question {i}", reference=str(i)) for i in range(n_problems)]
    samples = [
        Sample(problem_id=p.id, text=text(i, k), backend="synthetic", model="m", params={"t": 0.6}, sample_index=k,
               finish_reason="stop", completion_tokens=10)
        for i, p in enumerate(probs) for k in range(per)
    ]
    return probs, samples


def test_fresh_store_records_every_migration(store_path):
    st = TraceStore(store_path).init()
    names = [r["name"] for r in st.query("SELECT name FROM curate_migrations ORDER BY name").to_pylist()]
    assert names == [n for n, _ in migrations.MIGRATIONS]


def test_older_store_is_migrated_on_open(store_path, monkeypatch):
    TraceStore(store_path).init()
    extra = ("0002_test_extra", "CREATE TABLE extra_rows (x INTEGER)")
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS + [extra])
    monkeypatch.setattr(migrations, "KNOWN", migrations.KNOWN | {extra[0]})
    from curate.store import access

    monkeypatch.setattr(access, "MIGRATIONS", migrations.MIGRATIONS)
    monkeypatch.setattr(access, "KNOWN", migrations.KNOWN)
    from curate.store import connection

    monkeypatch.setattr(connection, "TABLES", migrations.TABLES | {"extra_rows"})
    monkeypatch.setattr(connection, "_trusted", set())
    st = TraceStore(store_path)
    # a read-only query triggers the pending migration first
    assert st.query("SELECT count(*) AS n FROM extra_rows").to_pylist() == [{"n": 0}]
    names = [r["name"] for r in st.query("SELECT name FROM curate_migrations").to_pylist()]
    assert "0002_test_extra" in names


def test_newer_store_is_refused(store_path):
    TraceStore(store_path).init()
    con = duckdb.connect(str(store_path / "catalog.duckdb"))
    con.execute("INSERT INTO curate_migrations VALUES ('9999_from_the_future', now())")
    con.close()
    with pytest.raises(StoreVersionError, match="newer curate"):
        TraceStore(store_path).query("SELECT 1")


def test_ingest_is_idempotent(store_path):
    st = TraceStore(store_path)
    probs, samples = make()
    assert st.add_problems(probs) == 3
    assert st.add_problems(probs) == 0
    assert st.add_samples(samples) == 6
    assert st.add_samples(samples) == 0
    assert st.add_samples(samples[:2] + samples[:2]) == 0
    verdicts = [Verdict(status="correct", verifier="math", version="1", sample_id=s.id) for s in samples]
    assert st.add_verdicts(verdicts) == 6
    assert st.add_verdicts(verdicts) == 0
    assert st.counts()["samples"] == 6 and st.counts()["verdicts"] == 6
    dup = st.query("SELECT count(*) - count(DISTINCT id) AS d FROM traces").to_pylist()[0]["d"]
    assert dup == 0


def test_traces_view_joins_text_problem_features_and_latest_verdict(store_path):
    st = TraceStore(store_path)
    probs, samples = make(n_problems=1, per=1)
    st.add_problems(probs)
    st.add_samples(samples)
    sid = samples[0].id
    st.add_verdicts([Verdict(status="incorrect", verifier="math", version="1", sample_id=sid)])
    st.add_verdicts([Verdict(status="correct", verifier="math", version="2", sample_id=sid)])
    row = st.query("SELECT * FROM traces").to_pylist()[0]
    assert row["text"] == samples[0].text
    assert row["prompt"] == "question 0" and row["source"] == "unit"
    assert row["think_closed"] is True and row["boxed_count"] == 1
    assert row["status"] == "correct" and row["verifier_version"] == "2"
    assert st.problems("prompt = 'question 0'")[0] == probs[0]


def test_relabel_replaces_a_verdict(store_path):
    st = TraceStore(store_path)
    probs, samples = make(n_problems=1, per=1)
    st.add_problems(probs)
    st.add_samples(samples)
    v = Verdict(status="error", verifier="math", version="1", sample_id=samples[0].id, reason="worker died")
    st.add_verdicts([v])
    st.add_verdicts([Verdict(status="correct", verifier="math", version="1", sample_id=samples[0].id)], replace=True)
    assert st.query("SELECT status FROM verdicts").to_pylist() == [{"status": "correct"}]


def test_unlabeled_yields_only_missing_batches(store_path):
    st = TraceStore(store_path)
    probs, samples = make(n_problems=5, per=3)
    st.add_problems(probs)
    st.add_samples(samples[:7])
    st.add_samples(samples[7:])
    batches = list(st.unlabeled("math", "1", batch_size=4))
    assert [len(b) for b in batches] == [4, 4, 4, 3]
    got = [(p.id, sid, text) for b in batches for p, sid, text in b]
    assert sorted(sid for _, sid, _ in got) == sorted(s.id for s in samples)
    by_id = {s.id: s for s in samples}
    assert all(by_id[sid].text == text and by_id[sid].problem_id == pid for pid, sid, text in got)
    st.add_verdicts([Verdict(status="correct", verifier="math", version="1", sample_id=sid) for _, sid, _ in got[:10]])
    assert sum(len(b) for b in st.unlabeled("math", "1")) == 5
    assert sum(len(b) for b in st.unlabeled("math", "2")) == 15
    assert sum(len(b) for b in st.unlabeled("math", "1", relabel=True)) == 15
    labelled = {sid for _, sid, _ in got[:10]}  # which ten depends on shard order (random shard names)
    first = {s.id for s in samples if s.sample_index == 0} - labelled
    assert {sid for b in st.unlabeled("math", "1", where="sample_index = 0") for _, sid, _ in b} == first


def test_sample_ids_reports_what_is_stored(store_path):
    st = TraceStore(store_path)
    probs, samples = make()
    st.add_problems(probs)
    st.add_samples(samples[:2])
    assert st.sample_ids([s.id for s in samples]) == {samples[0].id, samples[1].id}


def test_reads_in_one_reading_block_share_a_catalog_open(store_path, monkeypatch):
    """A generation plan reads problems, then stored ids: inside `reading()` that is one DuckDB open, with the
    same answers as two; a read that needs the text views there opens its own and sees the text."""
    st = TraceStore(store_path)
    probs, samples = make()
    st.add_problems(probs)
    st.add_samples(samples[:2])
    alone = (st.problems(), st.sample_ids([s.id for s in samples]))
    from curate.store import connection

    opens = []
    real = connection.duckdb.connect
    monkeypatch.setattr(connection.duckdb, "connect", lambda *a, **k: opens.append(a) or real(*a, **k))
    with st.reading():
        shared = (st.problems(), st.sample_ids([s.id for s in samples]), st.sample_ids([samples[2].id]))
        assert len(opens) == 1
        texts = st.query("SELECT text FROM traces ORDER BY text").column("text").to_pylist()
        assert len(opens) == 2
        assert st.problems() == alone[0] and len(opens) == 2  # reopened for both: the first read's views stay
    assert shared == (*alone, set())
    assert texts == sorted(s.text for s in samples[:2])
    st.sample_ids([samples[0].id])  # after the block, reads open their own connection again
    assert len(opens) == 3


def test_store_path_that_is_a_file(tmp_path):
    f = tmp_path / "not-a-dir"
    f.write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        TraceStore(f)


def test_missing_store_and_empty_query(store_path):
    with pytest.raises(StoreError, match="no store"):
        TraceStore(store_path).query("SELECT 1")
    TraceStore(store_path).init()
    with pytest.raises(InputError):
        TraceStore(store_path).query("  ")


def test_sql_errors_are_one_line(store_path):
    st = TraceStore(store_path).init()
    with pytest.raises(StoreError, match="SQL error: Parser Error") as e:
        st.query("SELEC 1")
    assert "\n" not in str(e.value)
    with pytest.raises(StoreError, match="nope"):
        st.query("SELECT nope FROM traces")
    with pytest.raises(StoreError, match="read-only"):
        st.query("DELETE FROM sample_rows")


def test_truncated_committed_shard_is_named_and_the_rest_works(store_path):
    st = TraceStore(store_path)
    probs, samples = make(n_problems=2, per=2)
    st.add_problems(probs)
    st.add_samples(samples[:2])
    st.add_samples(samples[2:])
    shard = sorted((store_path / "shards").glob("*.parquet"))[0]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    st2 = TraceStore(store_path)
    with pytest.warns(UserWarning, match=shard.name):
        rows = st2.query("SELECT id, text FROM traces").to_pylist()
    assert len(rows) == 4  # metadata is intact for all samples
    assert sum(r["text"] is not None for r in rows) == 2  # text from the healthy shard only
    assert st2.query("SELECT count(*) AS n FROM problems").to_pylist() == [{"n": 2}]
    assert any(shard.name in w for w in st2.warnings)
    shard.unlink()  # a query that names no text opens no shard: no warning, the same answer
    st3 = TraceStore(store_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert st3.query("SELECT count(*) AS n, sum(text_chars) > 0 AS chars FROM traces").to_pylist() == [{"n": 4, "chars": True}]
    assert st3.warnings == []


def test_damaged_pending_shard_is_quarantined_not_blocking(store_path):
    st = TraceStore(store_path)
    probs, samples = make(n_problems=2, per=2)
    st.add_problems(probs)
    [good] = st.write_shard(samples[:2])
    [bad] = st.write_shard(samples[2:])
    bad.write_bytes(b"PAR1 this is not parquet at all PAR1")
    with pytest.warns(UserWarning, match="unreadable"):
        assert st.commit_pending() == 2
    assert (store_path / "quarantine" / bad.name).exists()
    assert st.counts()["samples"] == 2
    assert good.exists()


def test_large_and_unicode_text_round_trips(store_path):
    st = TraceStore(store_path)
    big = "<think>" + ("数学 reasoning " * 400_000) + "</think>\\boxed{1}"  # ~5 MB
    probs, samples = make(n_problems=1, per=1, text=lambda i, k: big)
    st.add_problems(probs)
    st.add_samples(samples)
    row = st.query("SELECT text, text_chars, non_ascii_ratio FROM traces").to_pylist()[0]
    assert row["text"] == big and row["text_chars"] == len(big)
    assert 0.1 < row["non_ascii_ratio"] < 0.3


def test_large_batches_split_into_parallel_shards(store_path, monkeypatch):
    from curate.store import writes

    monkeypatch.setattr(writes, "SHARD_ROWS", 4)
    st = TraceStore(store_path)
    probs, samples = make(n_problems=5, per=2)
    st.add_problems(probs)
    paths = st.write_shard(samples)
    assert len(paths) == 3 and all(p.exists() for p in paths)
    assert st.commit_pending() == 10
    assert st.query("SELECT count(*) AS n, count(text) AS t FROM traces").to_pylist() == [{"n": 10, "t": 10}]


def test_pending_shards_sharing_ids_commit_once(store_path):
    st = TraceStore(store_path)
    probs, samples = make(n_problems=3, per=2)
    st.add_problems(probs)
    st.write_shard(samples[:4])
    st.write_shard(samples[2:])  # rows 2-3 are in both pending shards
    assert st.commit_pending() == 6
    row = st.query("SELECT count(*) AS n, count(DISTINCT id) AS d, count(text) AS t FROM traces").to_pylist()[0]
    assert row == {"n": 6, "d": 6, "t": 6}
    assert st.query("SELECT count(*) AS n FROM features").to_pylist()[0]["n"] == 6


def test_snapshot_changes_with_content(store_path):
    st = TraceStore(store_path)
    probs, samples = make()
    st.add_problems(probs)
    st.add_samples(samples)
    a = st.snapshot()
    assert st.snapshot() == a
    st.add_verdicts([Verdict(status="correct", verifier="math", version="1", sample_id=samples[0].id)])
    assert st.snapshot()["id"] != a["id"]
