"""Hostile stores: a catalog or a shards folder someone else made, opened as a user would.

Each case builds a real store, then tampers with it the way an attacker handing it over could: a catalog
that names shards outside the store, shard files that are symlinks to host files, persistent macros and
views that replace DuckDB's own functions, triggers. Reading it through `python -m curate` must end with
one `error:` line (or a warning and the host file left out), never with host data in the output.
Run: python -m pytest -q tests/test_security_store.py
"""
from __future__ import annotations

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
