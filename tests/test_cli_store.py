"""The store's CLI as a user runs it (subprocess): output formats and one-line errors with non-zero exits."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curate.store.views import schema_markdown
from tests.helpers import ROOT, run_cli

FIX = Path(__file__).parent / "fixtures" / "import"


@pytest.fixture
def filled(tmp_path):
    store = tmp_path / "store"
    r = run_cli("import", str(FIX / "openr1.jsonl"), "--preset", "openr1_math", "--store", str(store))
    assert r.returncode == 0, r.stderr
    assert "2 new problems, 3 new samples, 3 new labels" in r.stdout
    return store


def assert_one_line_error(r, *needles):
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert lines[0].startswith("error:"), r.stderr
    assert len(lines) <= 2  # the error, and at most one hint
    for n in needles:
        assert n in r.stderr, r.stderr


def test_sql_json_and_csv(filled):
    r = run_cli("sql", "SELECT status, count(*) AS n FROM traces GROUP BY status ORDER BY status", "--store", str(filled), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"status": "correct", "n": 2}, {"status": "incorrect", "n": 1}]
    r = run_cli("sql", "SELECT status, count(*) AS n FROM traces GROUP BY status ORDER BY status", "--store", str(filled), "--csv")
    assert list(csv.reader(io.StringIO(r.stdout))) == [["status", "n"], ["correct", "2"], ["incorrect", "1"]]


def test_store_from_environment(filled):
    r = run_cli("sql", "SELECT count(*) AS n FROM problems", "--json", env={"CURATE_STORE": str(filled)})
    assert json.loads(r.stdout) == [{"n": 2}]


def test_stats_json(filled):
    r = run_cli("stats", "--store", str(filled), "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["samples"][0]["samples"] == 3 and data["samples"][0]["truncated"] == 1
    assert {(v["status"], v["verdicts"]) for v in data["verdicts"]} == {("correct", 2), ("incorrect", 1)}
    r = run_cli("stats", "--store", str(filled))
    assert "openr1" in r.stdout and "import:math_verify" in r.stdout


def test_sql_syntax_error_and_unknown_column(filled):
    assert_one_line_error(run_cli("sql", "SELEC * FROM traces", "--store", str(filled)), "Parser Error")
    assert_one_line_error(run_cli("sql", "SELECT nope FROM traces", "--store", str(filled)), '"nope"')


def test_store_path_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("hello")
    assert_one_line_error(run_cli("sql", "SELECT 1", "--store", str(f)), "is a file")


def test_missing_store(tmp_path):
    assert_one_line_error(run_cli("stats", "--store", str(tmp_path / "none")), "no store")


def test_import_bad_rows(tmp_path):
    assert_one_line_error(run_cli("import", str(FIX / "malformed.jsonl"), "--store", str(tmp_path / "s")), "malformed.jsonl:2")
    assert_one_line_error(run_cli("import", str(FIX / "non_utf8.jsonl"), "--store", str(tmp_path / "s")), "UTF-8")
    assert_one_line_error(
        run_cli("import", str(FIX / "generic.jsonl"), "--map", "response=generation", "--store", str(tmp_path / "s")),
        "no column 'generation'")
    r = run_cli("import", str(FIX / "empty_response.jsonl"), "--skip-bad", "--store", str(tmp_path / "s"))
    assert r.returncode == 0 and "skipped:" in r.stderr and "row 2" in r.stderr


def test_locked_store_gives_a_clear_message(filled):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(30)",
         str(filled / "catalog.duckdb")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t = time.monotonic()
        r = run_cli("sql", "SELECT 1", "--store", str(filled), env={"CURATE_LOCK_TIMEOUT": "1"})
        assert time.monotonic() - t < 20
        assert_one_line_error(r, "busy", "CURATE_LOCK_TIMEOUT")
    finally:
        holder.kill()
        holder.wait()
    assert run_cli("sql", "SELECT 1", "--store", str(filled)).returncode == 0


def test_schema_outputs_and_readme_table_in_sync():
    r = run_cli("schema", "--markdown")
    assert r.returncode == 0 and r.stdout == schema_markdown()
    readme = (ROOT / "README.md").read_text()
    assert schema_markdown() in readme, "README schema table is stale: regenerate it with `curate schema --markdown`"
    r = run_cli("schema", "--json")
    assert set(json.loads(r.stdout)) == {"problems", "samples", "verdicts", "features", "traces", "evals", "eval_samples", "lineage"}


def test_readme_queries_run(filled):
    import re

    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Querying the store", 1)[1].split("### Schema", 1)[0]
    queries = re.findall(r"```sql\n(.*?)```", section, re.S)
    assert len(queries) >= 3
    for q in queries:
        r = run_cli("sql", q, "--store", str(filled), "--json")
        assert r.returncode == 0, (q, r.stderr)
        assert json.loads(r.stdout), q
