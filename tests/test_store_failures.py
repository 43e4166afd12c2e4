"""Failing to write is an error, never a quarantine: a full disk and a read-only store, through the real CLI.

Full-disk tests mount a 5 MB tmpfs and so run only as root (skipped otherwise). Each failure must be one
`error:` line naming the store and the cause with a non-zero exit, must set nothing aside in quarantine/,
and a rerun of the same command on a healthy disk must end equal to a clean run.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import pytest

from curate.store import TraceStore
from curate.tasks import add_problems
from tests.helpers import ROOT_ONLY, one_error_line, read_only, tmpfs


def contents(store: Path) -> dict:
    st = TraceStore(store)
    return {
        "samples": st.query("SELECT id, md5(text) AS t FROM traces ORDER BY id").to_pylist(),
        "verdicts": st.query("SELECT sample_id, status FROM verdicts ORDER BY sample_id").to_pylist(),
        "problems": st.query("SELECT id FROM problems ORDER BY id").to_pylist(),
    }


GEN = ["generate", "--backend", "synthetic", "--n", "4", "--no-progress"]


@ROOT_ONLY
def test_full_disk_during_generate_is_an_error_and_a_rerun_completes(tmp_path, cli):
    with tmpfs(tmp_path / "disk") as disk:
        store = disk / "s"
        add_problems(TraceStore(store), "countdown", {}, size=3000, seed=0, split="train")
        r = cli(*GEN, "--store", str(store))
        one_error_line(r, str(store), "No space left on device")
        assert "generated" not in r.stdout
        assert not (store / "quarantine").exists()
        healthy = tmp_path / "healthy"
        shutil.copytree(store, healthy)
    r = cli(*GEN, "--store", str(healthy))
    assert r.returncode == 0, r.stderr
    clean = tmp_path / "clean"
    add_problems(TraceStore(clean), "countdown", {}, size=3000, seed=0, split="train")
    assert cli(*GEN, "--store", str(clean)).returncode == 0
    assert contents(healthy) == contents(clean)
    assert TraceStore(healthy).counts()["samples"] == 12000


@ROOT_ONLY
def test_full_disk_during_import_and_verify(tmp_path, cli):
    src = tmp_path / "data.jsonl"
    with open(src, "w") as f:
        for i in range(5000):  # random text: it does not compress below the disk's size
            f.write(json.dumps({"prompt": f"Question {i}: what is {i} + {i}?", "response": os.urandom(1000).hex(),
                                "answer": str(2 * i)}) + "\n")
    with tmpfs(tmp_path / "disk") as disk:
        store = disk / "s"
        r = cli("import", str(src), "--store", str(store))
        one_error_line(r, str(store), "No space left on device")
        assert not (store / "quarantine").exists()
        healthy = tmp_path / "healthy"
        shutil.copytree(store, healthy)
    assert cli("import", str(src), "--store", str(healthy)).returncode == 0
    clean = tmp_path / "clean"
    assert cli("import", str(src), "--store", str(clean)).returncode == 0
    assert contents(healthy) == contents(clean)

    with tmpfs(tmp_path / "disk2", size="3m") as disk:
        store = disk / "v"
        add_problems(TraceStore(store), "countdown", {}, size=300, seed=0, split="train")
        assert cli("generate", "--backend", "synthetic", "--n", "2", "--no-progress", "--store", str(store)).returncode == 0
        filler = disk / "filler"
        with open(filler, "wb") as f:  # leave almost nothing free
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
        r = cli("verify", "--store", str(store), "--batch-size", "50", "--workers", "1")
        one_error_line(r, str(store), "No space left on device")
        filler.unlink()
        r = cli("verify", "--store", str(store), "--batch-size", "50", "--workers", "1")
        assert r.returncode == 0, r.stderr
        assert TraceStore(store).counts()["verdicts"] == 600


def test_read_only_store_fails_fast_for_generate_import_and_verify(tmp_path, cli):
    store = tmp_path / "s"
    add_problems(TraceStore(store), "countdown", {}, size=200, seed=0, split="train")
    assert cli("generate", "--backend", "synthetic", "--no-progress", "--store", str(store), "--limit", "50").returncode == 0
    before = contents(store)
    src = tmp_path / "data.jsonl"
    src.write_text(json.dumps({"prompt": "Q?", "response": "a", "answer": "1"}) + "\n")
    with read_only(store, tmp_path) as ro:
        r = cli(*GEN, "--store", str(ro))
        line = one_error_line(r, str(ro))
        assert "Read-only file system" in line or "Permission denied" in line
        assert "generated" not in r.stdout
        one_error_line(cli("import", str(src), "--store", str(ro)), str(ro))
        one_error_line(cli("verify", "--store", str(ro), "--workers", "1"), str(ro))
        assert cli("sql", "SELECT count(*) AS n FROM samples", "--store", str(ro)).returncode == 0  # reading still works
        assert not (ro / "quarantine").exists()
    assert contents(store) == before


def test_pending_shard_on_a_read_only_store_is_not_quarantined(tmp_path):
    from curate.errors import StoreError
    from tests.store_workers import samples_for

    store = tmp_path / "s"
    st = TraceStore(store).init()
    shard = st.write_shard(samples_for(0, 0, 20))[0]
    with read_only(store, tmp_path) as ro:
        with pytest.raises(StoreError, match=r"cannot write to the store .*(Read-only file system|Permission denied)"):
            TraceStore(ro).commit_pending()
        assert not (ro / "quarantine").exists()
    assert shard.exists()
    assert st.commit_pending() == 20


@ROOT_ONLY
def test_a_checkpoint_cut_by_a_full_disk_keeps_its_rows_in_the_wal_until_the_next_write(tmp_path, cli):
    """Room for the commit but not for the checkpoint: the committed verdicts stay in catalog.duckdb.wal,
    readers see them, and the next write on a healthy disk checkpoints the WAL away."""
    from tests.helpers import fill

    clean = tmp_path / "clean"
    add_problems(TraceStore(clean), "countdown", {}, size=300, seed=0, split="train")
    assert cli("generate", "--backend", "synthetic", "--n", "2", "--no-progress", "--store", str(clean)).returncode == 0
    with tmpfs(tmp_path / "disk", size="3m") as disk:
        store = disk / "v"
        shutil.copytree(clean, store)
        assert cli("verify", "--store", str(clean), "--batch-size", "50", "--workers", "1").returncode == 0
        filler = fill(disk)
        wal = store / "catalog.duckdb.wal"
        for _ in range(8):  # free a little at a time until a commit fits but its checkpoint does not
            os.truncate(filler, filler.stat().st_size - 128 * 1024)
            r = cli("verify", "--store", str(store), "--batch-size", "50", "--workers", "1")
            if wal.exists():
                break
        line = one_error_line(r, str(store), "No space left on device", "catalog.duckdb.wal until the next write")
        assert "FATAL" not in line and not list(store.glob(".tmp-probe-*"))
        kept = json.loads(cli("sql", "SELECT count(*) AS n FROM verdicts", "--store", str(store), "--json").stdout)[0]["n"]
        assert kept > 0  # committed before the checkpoint failed, and readable while the WAL is there
        filler.unlink()
        r = cli("verify", "--store", str(store), "--batch-size", "50", "--workers", "1")
        assert r.returncode == 0, r.stderr
        assert not wal.exists()
        assert contents(store) == contents(clean)
