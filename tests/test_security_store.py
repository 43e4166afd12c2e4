"""Hostile stores: a catalog or a shards folder someone else made, opened as a user would.

Each case builds a real store, then tampers with it the way an attacker handing it over could: a catalog
that names shards outside the store, shard files that are symlinks to host files, persistent macros and
views that replace DuckDB's own functions, triggers. Reading it through `python -m curate` must end with
one `error:` line (or a warning and the host file left out), never with host data in the output.
Run: python -m pytest -q tests/test_security_store.py
"""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.errors import StoreError
from curate.records import Problem, Sample
from curate.store import TraceStore
from curate.store.connection import BASE_CONFIG
from tests.helpers import ROOT

SECRET = "HOSTSECRET-51c2e8"


def _store(base: Path) -> TraceStore:
    st = TraceStore(base / "store")
    probs = [Problem(source="unit", domain="math", prompt=f"question {i}", reference=str(i)) for i in range(3)]
    st.add_problems(probs)
    st.add_samples([Sample(problem_id=p.id, text=f"trace {i}", backend="synthetic", model="m", params={}, sample_index=0,
                           finish_reason="stop") for i, p in enumerate(probs)])
    return st


@pytest.fixture
def world(tmp_path):
    """A store, and a host Parquet file (the shape of a shard) holding a secret, outside it."""
    host = tmp_path / "host"
    host.mkdir()
    pq.write_table(pa.table({"id": ["x"], "text": [SECRET]}), host / "private.parquet")
    (host / "secret.txt").write_text(SECRET + "\n")
    return {"store": _store(tmp_path), "host": host, "cwd": tmp_path}


def curate(world, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CURATE_STORE": str(world["store"].path), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "curate", *args], capture_output=True, text=True, timeout=120,
                          cwd=world["cwd"], env=env)


def refused(r: subprocess.CompletedProcess, *needles: str) -> str:
    both = r.stdout + r.stderr
    assert r.returncode != 0, both
    assert "Traceback" not in both and SECRET not in both, both
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines[0].startswith("error:") and len(lines) <= 2, both
    for n in needles:
        assert n in lines[0], both
    return lines[0]


def tamper(store: TraceStore, *sql: str, params=None) -> None:
    con = duckdb.connect(str(store.db_path))
    for q in sql:
        con.execute(q, params)
    con.close()


# ---------------------------------------------------------------- shard names and files
@pytest.mark.parametrize("name", ["../../host/private", "{host}/private", "..", "s-1/../../../host/private"])
def test_catalog_naming_a_shard_outside_the_store_is_refused(world, name):
    st = world["store"]
    name = name.format(host=world["host"])
    tamper(st, "UPDATE shard_rows SET name = ?", params=[name])
    for sql in ("SELECT text FROM traces", f"SELECT text FROM read_parquet('{world['host'] / 'private.parquet'}')"):
        refused(curate(world, "sql", sql), "not a shard file name")
    tamper(st, "UPDATE sample_rows SET shard = ?", params=[name])
    with pytest.raises(StoreError, match="not a shard file name"):
        st.unlabeled_plan("math", "1")


def test_committed_shard_linked_to_a_host_file_is_left_out(world):
    st = world["store"]
    shard = next(st.shard_dir.glob("*.parquet"))
    shard.unlink()
    shard.symlink_to(world["host"] / "private.parquet")
    r = curate(world, "sql", "SELECT text FROM traces")
    assert r.returncode == 0 and SECRET not in r.stdout + r.stderr, r.stdout + r.stderr
    assert "missing or damaged" in r.stderr
    refused(curate(world, "sql", f"SELECT text FROM read_parquet('{world['host'] / 'private.parquet'}')"), "Permission")
    plan, _ = st.unlabeled_plan("math", "1")
    assert st.shard_texts(plan[0][0], [0]) is None  # the verifier's reader refuses the link too


def test_pending_shard_linked_to_a_host_file_is_quarantined_not_committed(world):
    st = world["store"]
    link = st.shard_dir / "s-planted.parquet"
    link.symlink_to(world["host"] / "private.parquet")
    fifo = st.shard_dir / "s-fifo.parquet"
    os.mkfifo(fifo)
    with pytest.warns(UserWarning, match="not a regular file"):
        assert st.commit_pending() == 0
    assert not link.is_symlink() and not fifo.exists()
    assert (st.path / "quarantine" / link.name).is_symlink()
    assert SECRET not in str(st.query("SELECT text FROM traces").to_pylist())
    assert (world["host"] / "private.parquet").is_file()  # the target is untouched


def test_pending_file_whose_name_is_no_shard_name_is_quarantined(world):
    st = world["store"]
    pq.write_table(pa.table({"id": ["x"]}), st.shard_dir / "-x'.parquet")
    with pytest.warns(UserWarning, match="not a shard file name"):
        st.commit_pending()
    st.query("SELECT text FROM traces")  # the store still opens


# ---------------------------------------------------------------- catalog objects
HOSTILE_OBJECTS = [
    ("CREATE MACRO read_parquet(x, filename := false, file_row_number := false) AS TABLE "
     "SELECT content AS text FROM read_text('{secret}')", "table macro read_parquet"),
    ("CREATE MACRO md5(x) AS 'forged'", "macro md5"),
    ("CREATE VIEW planted AS SELECT content FROM read_text('{secret}')", "view planted"),
    ("ALTER TABLE shard_rows RENAME TO kept_shard_rows; CREATE VIEW shard_rows AS "
     "SELECT content AS name, 1 AS shard_no, 1 AS rows FROM read_text('{secret}')", "view shard_rows"),
    ("CREATE TABLE planted AS SELECT 'x' AS note", "table planted"),
    ("ALTER TABLE problem_rows ADD COLUMN note VARCHAR DEFAULT 'planted'", "column expression problem_rows.note"),
]


@pytest.mark.parametrize("sql, needle", HOSTILE_OBJECTS)
def test_catalog_with_macros_views_or_triggers_is_refused_by_readers_and_writers(world, sql, needle):
    st = world["store"]
    tamper(st, *sql.format(secret=world["host"] / "secret.txt").split("; "))
    refused(curate(world, "sql", "SELECT count(*) FROM problems"), "holds objects curate never creates", needle)
    refused(curate(world, "stats"), needle)
    refused(curate(world, "tasks", "add", "countdown", "--size", "2"), needle)  # a writer
    with pytest.raises(StoreError, match="never creates"):
        st.snapshot()  # the snapshot id could otherwise be forged with a macro md5
    r = curate(world, "doctor")
    assert r.returncode == 1 and needle in r.stdout + r.stderr and SECRET not in r.stdout + r.stderr


@pytest.mark.parametrize("sql, needle", [
    ("CREATE SCHEMA other; CREATE TABLE other.problem_rows (id VARCHAR)", "table other.problem_rows"),
    ("CREATE TYPE JSON AS VARCHAR", "type JSON"),
    ("CREATE INDEX planted ON problem_rows (id)", "index planted"),
    ("DROP TABLE import_progress; CREATE TABLE import_progress (source_key VARCHAR, twice VARCHAR AS (source_key || 'x'))",
     "column expression import_progress.twice"),
])
def test_catalog_with_foreign_schema_objects_is_refused_in_process(world, sql, needle):
    st = world["store"]
    tamper(st, *sql.split("; "))
    with pytest.raises(StoreError, match="never creates") as e:
        st.counts()
    assert needle in e.value.message
    with pytest.raises(StoreError, match="never creates"):
        st.add_problems([Problem(source="unit", domain="math", prompt="another", reference="1")])


def test_a_newer_curates_store_says_so_before_naming_its_new_tables(world):
    from curate.errors import StoreVersionError

    tamper(world["store"], "CREATE TABLE future_rows (x INTEGER)", "INSERT INTO curate_migrations VALUES ('9999_future', now())")
    with pytest.raises(StoreVersionError, match="newer curate .unknown migrations: 9999_future"):
        world["store"].counts()
    tamper(world["store"], "CREATE VIEW planted AS SELECT 1")  # anything but tables: refused before reading a row
    with pytest.raises(StoreError, match="never creates"):
        world["store"].counts()


def test_every_migration_level_holds_only_known_tables(tmp_path):
    """A store written at any earlier migration level still opens: each prefix of the migrations, run on an
    empty catalog, creates only tables the catalog check allows, and together they create all of them."""
    from types import SimpleNamespace

    from curate.store.connection import _foreign_objects
    from curate.store.migrations import MIGRATIONS, TABLES

    con = duckdb.connect(str(tmp_path / "catalog.duckdb"))
    con.execute("CREATE TABLE curate_migrations (name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)")
    seen = set()
    for name, step in MIGRATIONS:
        step(con, SimpleNamespace(shard_dir=tmp_path / "shards")) if callable(step) else con.execute(step)
        assert _foreign_objects(con) == [], name
        seen |= {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()}
    con.close()
    assert seen == TABLES


def test_doctor_rebuild_replaces_a_tampered_catalog(world):
    st = world["store"]
    tamper(st, "CREATE MACRO md5(x) AS 'forged'")
    r = curate(world, "doctor", "--rebuild")
    assert r.returncode == 0, r.stdout + r.stderr
    assert st.counts()["samples"] == 3 and len(st.snapshot()["id"]) == 16


def test_triggers_are_refused_when_duckdb_has_them(world):
    st = world["store"]
    try:
        tamper(st, "CREATE TRIGGER t AFTER INSERT ON problem_rows FOR EACH ROW DELETE FROM sample_rows")
    except duckdb.Error:
        pytest.skip("this DuckDB has no persistent triggers")
    refused(curate(world, "sql", "SELECT 1"), "trigger t")


def test_a_clean_catalog_is_checked_once_per_state(world, monkeypatch):
    from curate.store import connection

    st = world["store"]
    seen = []
    real = connection.check_catalog
    monkeypatch.setattr(connection, "_trusted", set())
    monkeypatch.setattr(connection, "check_catalog", lambda con, p: (seen.append(p), real(con, p))[1])
    st.query("SELECT 1")
    assert len(connection._trusted) == 1
    st.query("SELECT 1")
    st.add_problems([Problem(source="unit", domain="math", prompt="another", reference="1")])  # a writer keeps it trusted
    st.query("SELECT count(*) FROM problems")
    assert len(seen) == 4 and len(connection._trusted) >= 2
    tamper(st, "CREATE MACRO md5(x) AS 'forged'")  # someone else's write changes the file's identity
    with pytest.raises(StoreError, match="macro md5"):
        st.query("SELECT 1")


def test_writer_connections_load_no_extensions():
    con = duckdb.connect(":memory:", config=BASE_CONFIG)
    settings = dict(con.execute("SELECT name, value FROM duckdb_settings() WHERE name IN "
                                "('autoinstall_known_extensions', 'autoload_known_extensions', "
                                "'allow_community_extensions', 'python_enable_replacements')").fetchall())
    assert set(settings.values()) == {"false"}, settings


def test_a_duckdb_without_triggers_still_checks_views_and_macros(world, monkeypatch):
    from curate.store import connection

    monkeypatch.setattr(connection, "_TRIGGERS", "\n    UNION ALL SELECT 'x' FROM no_such_function_here()")
    monkeypatch.setattr(connection, "_has_triggers", [True])
    monkeypatch.setattr(connection, "_trusted", set())
    st = world["store"]
    assert st.counts()["samples"] == 3 and connection._has_triggers == [False]
    tamper(st, "CREATE MACRO md5(x) AS 'forged'")
    with pytest.raises(StoreError, match="macro md5"):
        st.counts()


# ---------------------------------------------------------------- links in the store folder
def test_a_catalog_that_is_a_symlink_is_refused(world, tmp_path):
    st = world["store"]
    elsewhere = tmp_path / "other-app.duckdb"
    st.db_path.rename(elsewhere)
    st.db_path.symlink_to(elsewhere)
    before = elsewhere.read_bytes()
    refused(curate(world, "sql", "SELECT 1"), "is a symlink")
    refused(curate(world, "tasks", "add", "countdown", "--size", "2"), "is a symlink")
    assert elsewhere.read_bytes() == before


def test_a_lock_file_linked_elsewhere_creates_nothing_there(world, tmp_path):
    st = world["store"]
    target = tmp_path / "host" / "created-by-curate"
    (st.path / ".lock").unlink(missing_ok=True)
    (st.path / ".lock").symlink_to(target)
    refused(curate(world, "sql", "SELECT 1"), "cannot write to the store")
    assert not target.exists()


def test_records_linked_to_host_files_are_not_rebuilt_into_the_catalog(world):
    st = world["store"]
    link = st.records_dir / "problems" / "00000000000000000000-planted.parquet"
    pq.write_table(pa.table({"id": ["p"], "source": [SECRET], "domain": ["math"], "prompt": ["q"], "reference": ["1"],
                             "metadata": ["{}"], "split": ["train"]}), world["host"] / "problems.parquet")
    link.symlink_to(world["host"] / "problems.parquet")
    assert link not in [p for _, p in st.record_files()]
    r = curate(world, "doctor", "--rebuild")
    assert r.returncode == 0, r.stdout + r.stderr
    assert SECRET not in str(st.query("SELECT source FROM problems").to_pylist())


@pytest.mark.parametrize("name, target", [("catalog.duckdb.wal", "secret.txt"), ("catalog.duckdb.tmp", "/")])
def test_a_wal_or_temp_folder_linked_elsewhere_is_refused(world, name, target):
    st = world["store"]
    (st.path / name).symlink_to(world["host"] / target if target != "/" else "/")
    secret = world["host"] / "secret.txt"
    refused(curate(world, "sql", f"SELECT content FROM read_text('{secret}')"), "is a symlink")
    refused(curate(world, "generate", "--problems", f"id IN (SELECT content FROM '{secret}')"), "is a symlink")


@pytest.mark.parametrize("pred, needle", [
    ("id IN (SELECT content FROM '{secret}')", "secret.txt"),
    ("id IN (SELECT id FROM '{private}')", "private.parquet"),
    ("EXISTS (SELECT 1 FROM duckdb_databases WHERE path LIKE '%x%')", "duckdb_databases"),
    ("EXISTS (SELECT 1 FROM duckdb_settings WHERE value LIKE '/%')", "duckdb_settings"),
    ("id IN (SELECT id FROM main.problem_rows)", "main.problem_rows"),
])
def test_predicates_read_only_the_store_views(world, pred, needle):
    pred = pred.format(secret=world["host"] / "secret.txt", private=world["host"] / "private.parquet")
    refused(curate(world, "generate", "--problems", pred, "--dry-run"), "may read only the store's views", needle)


def test_predicates_with_ctes_over_the_views_still_work(world):
    st = world["store"]
    got = st.problems("id IN (WITH t AS (SELECT problem_id FROM traces WHERE text_chars > 0) SELECT problem_id FROM t)")
    assert len(got) == 3


# ---------------------------------------------------------------- shards that are Parquet but not shards
def test_a_shard_without_a_text_column_is_one_line_or_left_out(world):
    st = world["store"]
    st.add_samples([Sample(problem_id=st.problems()[0].id, text="second shard", backend="synthetic", model="m", params={},
                           sample_index=5, finish_reason="stop")])
    first, second = [st.shard_dir / f"{name}.parquet" for name in _shard_names(st)]
    pq.write_table(pa.table({"id": ["x"]}), second)
    r = curate(world, "sql", "SELECT text FROM traces")  # the view binds on the first file: the second fails reading
    refused(r, second.name)
    recipe = world["cwd"] / "r.yaml"
    recipe.write_text("name: t\nseed: 1\nsize: 3\nsources: [{name: a, where: \"domain = 'math'\"}]\n"
                      "selection: {per_problem: any}\n")
    refused(curate(world, "mix", str(recipe), "--out", str(world["cwd"] / "mixed")), second.name)
    pq.write_table(pa.table({"id": ["x"]}), first)  # both lack text: the view leaves them out with a warning each
    r = curate(world, "sql", "SELECT count(text) AS n FROM traces", "--json")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "has no text column" in r.stderr and '"n": 0' in r.stdout
    plan, _ = st.unlabeled_plan("math", "1")
    assert all(st.shard_texts(path, [row for _, _, row in items]) is None for path, items in plan)
    r = curate(world, "verify", "--workers", "1")
    assert "Traceback" not in r.stdout + r.stderr and "samples skipped" in r.stderr, r.stdout + r.stderr


def _shard_names(st: TraceStore) -> list[str]:
    con = duckdb.connect(str(st.db_path), read_only=True)
    try:
        return [n for (n,) in con.execute("SELECT name FROM shard_rows ORDER BY shard_no").fetchall()]
    finally:
        con.close()


# ---------------------------------------------------------------- what describes the host, not the store
@pytest.mark.parametrize("sql, needle", [
    ("SELECT name, value FROM duckdb_settings()", "duckdb_settings"),
    ("SELECT path FROM duckdb_databases", "duckdb_databases"),
    ("SELECT * FROM traces WHERE id IN (SELECT path FROM duckdb_databases())", "duckdb_databases"),
    ("SELECT current_setting('secret_directory')", "current_setting('secret_directory')"),
    ("SELECT current_setting('allowed_paths')", "current_setting('allowed_paths')"),
    ("SELECT current_setting(lower('TEMP_DIRECTORY'))", "computed name"),
    ("SELECT * FROM duckdb_extensions()", "duckdb_extensions"),
])
def test_sql_that_describes_the_host_is_refused(world, sql, needle):
    r = curate(world, "sql", sql)
    line = refused(r, "describes this machine", needle)
    assert str(Path.home()) not in line and str(world["store"].path) not in line.split(": ", 2)[-1].split("SELECT")[0]


def test_settings_and_schema_queries_keep_working(world):
    st = world["store"]
    assert st.query("SELECT current_setting('threads') AS t").num_rows == 1
    assert st.query("DESCRIBE traces").num_rows > 10
    assert "problem_rows" in {r["table_name"] for r in st.query("SELECT table_name FROM duckdb_tables()").to_pylist()}


# ---------------------------------------------------------------- memory and disk of one query
BIG = "SELECT repeat('x', 1000) || range AS s FROM range(2000000)"  # ~2 GB as Python objects


def _peak_rss_mb(world, *args: str) -> tuple[subprocess.CompletedProcess, int]:
    """Run `curate ARGS` in a child with CURATE_SQL_MEMORY=256MB, stdout to /dev/null unless a table: its peak RSS.
    Read from VmHWM (this process image's own high-water mark): ru_maxrss keeps the peak of the image exec
    replaced, i.e. the test runner's, which reaches a gigabyte in a full run."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CURATE_STORE": str(world["store"].path), "COLUMNS": "200",
           "CURATE_SQL_MEMORY": "256MB"}
    code = ("import resource, sys\nfrom curate.cli import main\nsys.argv = ['curate', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
            "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM:')][0].split()[1]\n"
            "print('RSS', int(hwm) // 1024, file=sys.stderr)\nsys.exit(code)")
    table = not {"--json", "--csv"} & set(args)
    r = subprocess.run([sys.executable, "-c", code, *args], stdout=subprocess.PIPE if table else subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, timeout=600, env=env, cwd=world["cwd"])
    assert r.returncode == 0 and "RSS" in r.stderr, (r.stdout or "")[-500:] + r.stderr[-2000:]
    return r, int(r.stderr.split("RSS")[-1])


def test_a_table_fetches_only_the_rows_it_shows(world):
    r, rss = _peak_rss_mb(world, "sql", BIG)
    assert "more than 50 rows (showing 50)" in r.stdout, r.stdout[-500:]
    assert rss < 1500, f"{rss} MB"  # the whole result is ~2 GB as Python objects (4.8 GB RSS when it was built)


@pytest.mark.parametrize("fmt", ["--json", "--csv"])
def test_json_and_csv_are_written_batch_by_batch(world, fmt):
    # 120 MB of strings: built whole, the result alone (Arrow, then Python rows) outgrew the bound; streamed,
    # the child stays near what the interpreter, pyarrow and DuckDB take before the first row (~180 MB)
    _, rss = _peak_rss_mb(world, "sql", fmt, "SELECT repeat('x', 2000) || range AS s FROM range(60000)")
    assert rss < 300, f"{rss} MB"


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["--json", "--csv"])
def test_a_2gb_result_prints_as_json_or_csv_in_bounded_memory(world, fmt):
    _, rss = _peak_rss_mb(world, "sql", fmt, "SELECT repeat('x', 2000) || range AS s FROM range(1000000)")
    assert rss < 400, f"{rss} MB"


def test_streamed_json_and_csv_print_what_a_whole_result_printed(world):
    from tests.helpers import invoke

    sql = ("SELECT range AS i, CASE WHEN range % 2 = 0 THEN NULL ELSE 'a' || chr(27) || ',\"' END AS s, "
           "[range, 1] AS l FROM range(5000)")
    rows = world["store"].query(sql).to_pylist()
    out = invoke("sql", "--json", sql, "--store", str(world["store"].path)).stdout
    assert json.loads(out) == rows and "\x1b" not in out and out.count("\n") == 1
    csv_rows = list(csv.reader(io.StringIO(invoke("sql", "--csv", sql, "--store", str(world["store"].path)).stdout)))
    assert csv_rows[0] == ["i", "s", "l"] and len(csv_rows) == 5001
    assert csv_rows[2] == ["1", "a\\x1b,\"", "[1, 1]"] and csv_rows[1][1] == ""
    for fmt, empty in (("--json", "[]\n"), ("--csv", "i,s,l\r\n")):
        assert invoke("sql", fmt, sql + " WHERE false", "--store", str(world["store"].path)).stdout == empty


def test_spilling_is_capped(world, monkeypatch):
    monkeypatch.setenv("CURATE_SQL_SPILL", "3MB")
    assert world["store"].query("SELECT current_setting('max_temp_directory_size') AS s").to_pylist()[0]["s"].startswith("2.")
    monkeypatch.setenv("CURATE_SQL_SPILL", "lots")
    with pytest.raises(StoreError, match="CURATE_SQL_SPILL must be a size"):
        world["store"].query("SELECT 1")


def test_writer_connections_reach_only_the_store_folders(world):
    st = world["store"]
    with pytest.raises(StoreError, match="Permission|file system operations are disabled"):
        with st._write() as con:
            con.execute(f"SELECT * FROM read_text('{world['host'] / 'secret.txt'}')").fetchall()
    with st._write() as con:  # its own shards stay readable
        assert con.execute(f"SELECT count(*) FROM read_parquet('{st.shard_dir}/*.parquet')").fetchone()[0] == 3
        with pytest.raises(duckdb.Error, match="locked"):
            con.execute("SET enable_external_access = true")
