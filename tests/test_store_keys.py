"""The keyed catalog layout: the in-place conversion of an older store, keys kept right whatever order
problems, samples and verdicts arrive in, `traces` joining only what a query names, and the snapshot id."""
from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.errors import StoreError
from curate.records import Problem, Sample, Verdict
from curate.store import TraceStore
from curate.store.doctor import check
from curate.store.sqlcheck import referenced_names

FIXTURE = Path(__file__).parent / "fixtures" / "store_v1"


def rows(store: TraceStore, sql: str) -> list[dict]:
    return json.loads(json.dumps(store.query(sql).to_pylist(), default=str))


@pytest.fixture
def old_store(tmp_path) -> TraceStore:
    """A store written by curate before integer keys (see fixtures/store_v1/make_fixture.py)."""
    with tarfile.open(FIXTURE / "store.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    return TraceStore(tmp_path / "store")


def recorded() -> list[dict]:
    with gzip.open(FIXTURE / "answers.json.gz", "rt") as f:
        return json.load(f)


def test_old_store_is_converted_in_place_and_answers_as_before(old_store):
    con = duckdb.connect(str(old_store.db_path), read_only=True)
    before = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    con.close()
    assert "feature_rows" in before  # really the old layout
    answers = recorded()
    assert len(answers) >= 10 and any("problem_id < '8'" in a["sql"] for a in answers)
    for a in answers:  # the first query converts the catalog; every one must answer as the old curate did
        assert rows(old_store, a["sql"]) == a["rows"], a["sql"]
    applied = {r["name"] for r in old_store.query("SELECT name FROM curate_migrations").to_pylist()}
    assert "0005_surrogate_keys" in applied
    tables = {r["table_name"] for r in old_store.query("SELECT table_name FROM duckdb_tables()").to_pylist()}
    assert "feature_rows" not in tables and not any(t.startswith("old_") for t in tables)
    keys = old_store.query("SELECT count(DISTINCT skey) AS s, count(*) FILTER (skey > 0) AS placed, count(pkey) AS p "
                           "FROM sample_rows").to_pylist()[0]
    assert keys == {"s": 48, "placed": 48, "p": 48}
    assert check(old_store).ok


def test_converted_store_keeps_taking_writes(old_store):
    before = old_store.counts()
    p = Problem(source="countdown", domain="game", prompt="new one", reference="3")
    old_store.add_problems([p])
    s = Sample(problem_id=p.id, text="<think>wait</think> \\boxed{3}", backend="synthetic", model="toy")
    assert old_store.add_samples([s]) == 1
    old_store.add_verdicts([Verdict(sample_id=s.id, verifier="countdown", version="1", status="correct", score=1.0)])
    after = old_store.counts()
    assert after["samples"] == before["samples"] + 1 and after["problems"] == before["problems"] + 1
    got = rows(old_store, f"SELECT source, status, backtrack_count FROM traces WHERE id = '{s.id}'")
    assert got == [{"source": "countdown", "status": "correct", "backtrack_count": 1}]
    assert old_store.query("SELECT max(skey) AS m FROM sample_rows").column("m")[0].as_py() == 4 << 32  # 4th shard, row 0
    assert check(old_store).ok


def test_conversion_interrupted_leaves_the_old_catalog(old_store, monkeypatch):
    from curate.store import keys
    from curate.store import access

    def broken(con, store):
        con.execute("ALTER TABLE sample_rows RENAME TO old_sample_rows")
        raise duckdb.IOException("disk went away")

    monkeypatch.setattr(access, "MIGRATIONS", [(n, broken if f is keys.convert else f) for n, f in access.MIGRATIONS])
    with pytest.raises(StoreError, match="disk went away"):
        old_store.counts()
    monkeypatch.undo()
    for a in recorded()[:3]:  # the failed conversion rolled back; a later open converts and answers as before
        assert rows(old_store, a["sql"]) == a["rows"]


def test_keys_follow_any_arrival_order(store_path):
    st = TraceStore(store_path)
    late = Problem(source="math500", domain="math", prompt="late problem", reference="1")
    early = Problem(source="countdown", domain="game", prompt="early problem", reference="2")
    st.add_problems([early])
    a = Sample(problem_id=late.id, text="<think>x</think> 1", backend="synthetic", model="m")
    b = Sample(problem_id=early.id, text="<think>y</think> 2", backend="synthetic", model="m")
    # a verdict may arrive before its sample, and a sample before its problem
    st.add_verdicts([Verdict(sample_id=a.id, verifier="math", version="1", status="incorrect", score=0.0)])
    st.add_samples([a, b])
    st.add_problems([late])
    st.add_verdicts([Verdict(sample_id=b.id, verifier="math", version="1", status="correct", score=1.0)])
    got = {r["id"]: r for r in rows(st, "SELECT id, source, status, verifier FROM traces")}
    assert got[a.id] == {"id": a.id, "source": "math500", "status": "incorrect", "verifier": "math"}
    assert got[b.id] == {"id": b.id, "source": "countdown", "status": "correct", "verifier": "math"}
    # a newer verifier's verdict becomes the latest; a relabel replaces it in place
    st.add_verdicts([Verdict(sample_id=a.id, verifier="strict", version="2", status="correct", score=1.0)])
    assert rows(st, f"SELECT status, verifier FROM traces WHERE id = '{a.id}'") == [{"status": "correct", "verifier": "strict"}]
    st.add_verdicts([Verdict(sample_id=a.id, verifier="strict", version="2", status="error", score=0.0)], replace=True)
    assert rows(st, f"SELECT status FROM latest_verdicts WHERE sample_id = '{a.id}'") == [{"status": "error"}]
    assert check(st).ok


def test_traces_joins_only_what_a_query_names(store_path):
    st = TraceStore(store_path)
    p = Problem(source="countdown", domain="game", prompt="q", reference="1")
    st.add_problems([p])
    st.add_samples([Sample(problem_id=p.id, text=f"<think>t{i}</think>", backend="synthetic", model="m", sample_index=i)
                    for i in range(5)])

    def plan(sql):
        with st.connect(referenced_names(sql)) as con:
            return "\n".join(r[1] for r in con.execute("EXPLAIN " + sql).fetchall())

    assert "READ_PARQUET" not in plan("SELECT count(*) FROM traces")
    assert "READ_PARQUET" not in plan("SELECT source, status, count(*) FROM traces GROUP BY ALL")
    assert "problem_rows" not in plan("SELECT status, count(*) FROM traces GROUP BY ALL")
    assert "READ_PARQUET" in plan("SELECT count(*) FROM traces WHERE text LIKE '%t1%'")
    # the answers are those of the full view
    for sql in ("SELECT count(*) AS n FROM traces", "SELECT count(*) AS n FROM traces WHERE text LIKE '%t1%'",
                "SELECT * FROM traces ORDER BY id", "SELECT t FROM traces t ORDER BY t.id", "SELECT #1 FROM traces ORDER BY 1"):
        with st.connect() as con:
            full = json.loads(json.dumps(con.sql(sql).to_arrow_table().to_pylist(), default=str))
        assert rows(st, sql) == full, sql


@pytest.mark.parametrize("sql, names", [
    ("SELECT count(*) FROM traces", {"traces"}),
    ("SELECT source, count(*) AS n FROM traces GROUP BY 1 ORDER BY n", {"source", "n", "traces"}),
    ("SELECT t.status FROM traces t JOIN problems p USING (domain)", {"t", "status", "domain", "traces", "problems", "p"}),
    ("FROM traces SELECT count(*) WHERE text LIKE '%wait%'", {"text", "traces"}),
    ("SELECT count(*) FROM texts", {"texts"}),
    ("SELECT * FROM traces", None),
    ("FROM traces", None),
    ("SELECT COLUMNS('.*_chars') FROM traces", None),
    ("SELECT #2 FROM traces", None),
    ("SELECT to_json(t) FROM traces t", None),
    ("SELECT traces FROM traces", None),
    ("SELECT count(*) FROM traces NATURAL JOIN problems", None),
    ("WITH x AS (SELECT id FROM traces) SELECT x FROM x", None),
    ("DESCRIBE traces", None),
    ("SELECT t.* FROM problems p JOIN traces t ON t.problem_id = p.id", None),
    ("SELECT (SELECT max(#1) FROM traces) AS m", None),
    # a wildcard over a CTE that names its columns needs only those
    ("WITH c AS (SELECT id, status FROM traces) SELECT *, 1 AS one FROM c", {"id", "status", "traces", "c"}),
])
def test_referenced_names(sql, names):
    assert referenced_names(sql) == names


def test_snapshot_id_is_md5_of_the_content(store_path):
    """Computed here from the stored ids with hashlib: the id depends on content, not on DuckDB's hash()."""
    st = TraceStore(store_path)
    p = Problem(source="countdown", domain="game", prompt="q", reference="1")
    st.add_problems([p])
    samples = [Sample(problem_id=p.id, text=f"t{i}", backend="synthetic", model="m", sample_index=i) for i in range(3)]
    st.add_samples(samples)
    st.add_verdicts([Verdict(sample_id=samples[0].id, verifier="math", version="1", status="correct", score=1.0)])

    def xor(values):
        out = 0
        for v in values:
            out ^= int(hashlib.md5(v.encode()).hexdigest()[:16], 16)
        return out

    parts = [1, xor([p.id]), 3, xor(s.id for s in samples), 1, xor(["\x1f".join([samples[0].id, "math", "1", "correct"])])]
    from curate.records import canonical_json

    want = hashlib.sha256(canonical_json([str(x) for x in parts]).encode()).hexdigest()[:16]
    assert st.snapshot() == {"id": want, "problems": 1, "samples": 3, "verdicts": 1}


def test_doctor_names_a_stale_latest_verdict(store_path):
    st = TraceStore(store_path)
    p = Problem(source="countdown", domain="game", prompt="q", reference="1")
    st.add_problems([p])
    s = Sample(problem_id=p.id, text="t", backend="synthetic", model="m")
    st.add_samples([s])
    st.add_verdicts([Verdict(sample_id=s.id, verifier="math", version="1", status="correct", score=1.0)])
    with st._write() as con:
        con.execute("UPDATE sample_rows SET v_status = 'incorrect'")
    assert any("latest verdict is out of date" in line for line in check(st).problems)


def test_label_plan_points_at_each_sample_row(store_path):
    """unlabeled_plan names a shard file and row per sample; the text found there is that sample's, also in a
    shard whose other rows were already stored (a rerun after a kill), and labelled samples drop out."""
    st = TraceStore(store_path)
    p = Problem(source="countdown", domain="game", prompt="q", reference="1")
    st.add_problems([p])
    samples = [Sample(problem_id=p.id, text=f"<think>text {i}</think>", backend="synthetic", model="m", sample_index=i)
               for i in range(6)]
    st.add_samples(samples[:4])
    st.add_samples(samples[2:])  # rows 0-1 of this shard were stored from the first one
    st.add_verdicts([Verdict(sample_id=samples[0].id, verifier="math", version="1", status="correct", score=1.0)])
    plan, problems = st.unlabeled_plan("math", "1")
    assert set(problems) == {p.id} and len(plan) == 2
    found = {}
    for path, items in plan:
        texts = TraceStore.shard_texts(path, [row for _, _, row in items])
        found.update({sid: text for (sid, _, _), text in zip(items, texts)})
    assert found == {s.id: s.text for s in samples[1:]}
    assert [len(items) for _, items in plan] == [3, 2] and plan[1][1][0][2] == 2


def test_shard_texts_reads_rows_spread_over_row_groups(tmp_path):
    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"text": [f"t{i}" for i in range(300)]}), path, row_group_size=64)
    rows = [0, 63, 64, 65, 190, 191, 299]  # first and last rows of groups, groups skipped in between
    assert TraceStore.shard_texts(path, rows) == [f"t{r}" for r in rows]
    assert TraceStore.shard_texts(tmp_path / "gone.parquet", rows) is None


def test_an_old_store_keeps_its_snapshot_id_and_rebuilds_from_its_old_records(old_store):
    """The previous release's store: its snapshot id, computed with hashlib from the rows as that release
    wrote them, is the one the migrated store reports; and its records (written before records carried
    created_at) rebuild the migrated catalog's content, each row dated by its record's name."""
    from curate.records import canonical_json
    from curate.store.doctor import rebuild

    con = duckdb.connect(str(old_store.db_path), read_only=True)
    pids = [r[0] for r in con.execute("SELECT id FROM problem_rows").fetchall()]
    sids = [r[0] for r in con.execute("SELECT id FROM sample_rows").fetchall()]
    vs = ["\x1f".join(r) for r in con.execute("SELECT sample_id, verifier, version, status FROM verdict_rows").fetchall()]
    con.close()

    def xor(values):
        out = 0
        for v in values:
            out ^= int(hashlib.md5(v.encode()).hexdigest()[:16], 16)
        return out

    parts = [len(pids), xor(pids), len(sids), xor(sids), len(vs), xor(vs)]
    want = hashlib.sha256(canonical_json([str(x) for x in parts]).encode()).hexdigest()[:16]
    assert old_store.snapshot()["id"] == want  # the first open migrates it in place
    content = {"problems": "SELECT id, source, domain, prompt, reference, metadata, split FROM problems ORDER BY id",
               "traces": "SELECT * EXCLUDE (created_at) FROM traces ORDER BY id",
               "verdicts": "SELECT * EXCLUDE (created_at) FROM verdicts ORDER BY ALL"}
    before = {k: rows(old_store, q) for k, q in content.items()}
    rebuild(old_store)
    assert {k: rows(old_store, q) for k, q in content.items()} == before
    assert old_store.snapshot()["id"] == want
    import datetime

    names = [p.name for p in (old_store.records_dir / "problems").glob("*.parquet")]
    stamps = {str(datetime.datetime.fromtimestamp(int(n[:20]) / 1e9)) for n in names}
    dated = {r["t"] for r in rows(old_store, "SELECT DISTINCT created_at AS t FROM problem_rows")}
    assert dated and dated <= stamps, (dated, stamps)
