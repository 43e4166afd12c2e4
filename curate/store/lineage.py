"""Lineage: what a study recorded about each training run (`study_run_rows`) and the `lineage` view that
joins every eval row with it, so one query walks from a score back to its checkpoint, run config,
mixture (fingerprint and manifest), recipe (file and hash) and the store snapshot the mixture came from.

    SELECT run, step, benchmark, value, condition, recipe_file, recipe_hash, manifest FROM lineage
The table is created by migration 0004_study_runs; `create_lineage_view` is called by views.create_views.
Study records and run renames leave write-ahead records (journal.py), so a rebuilt catalog keeps them.
Test: tests/test_study.py.
"""
from __future__ import annotations

import pyarrow as pa

from curate.store.journal import RENAME_SCHEMA, discard_record, stamped

STUDY_RUN_SCHEMA = pa.schema([
    ("run", pa.string()), ("study", pa.string()), ("study_file", pa.string()), ("cell", pa.string()),
    ("condition", pa.string()), ("base_model", pa.string()), ("seed", pa.int64()), ("run_dir", pa.string()),
    ("train_config", pa.string()), ("config_hash", pa.string()), ("mixture", pa.string()), ("mixture_dir", pa.string()),
    ("manifest", pa.string()), ("mixture_fingerprint", pa.string()), ("recipe_name", pa.string()),
    ("recipe_file", pa.string()), ("recipe_hash", pa.string()), ("store_snapshot", pa.string()), ("node_key", pa.string()),
])
STUDY_RUN_COLUMNS = [f.name for f in STUDY_RUN_SCHEMA]

TABLE_SQL = """
CREATE TABLE study_run_rows (
    run VARCHAR NOT NULL, study VARCHAR NOT NULL, study_file VARCHAR, cell VARCHAR, condition VARCHAR,
    base_model VARCHAR, seed BIGINT, run_dir VARCHAR, train_config VARCHAR, config_hash VARCHAR, mixture VARCHAR,
    mixture_dir VARCHAR, manifest VARCHAR, mixture_fingerprint VARCHAR, recipe_name VARCHAR, recipe_file VARCHAR,
    recipe_hash VARCHAR, store_snapshot VARCHAR, node_key VARCHAR, recorded_at TIMESTAMP NOT NULL
);
"""

VIEW_DOC = ("Every eval row with what a study recorded about its run: checkpoint -> run config -> mixture -> recipe -> store.", [
    ("run, checkpoint, step, suite, benchmark, metric, value, ci_low, ci_high", "as in `evals`"),
    ("run_id, config_hash, mixture_fingerprint, recipe_hash, store_snapshot", "lineage the checkpoint itself carries (from `evals`)"),
    ("study, cell, condition, base_model, seed", "the study cell that trained the run (NULL when no study did)"),
    ("run_dir, train_config, study_config_hash", "the run folder, the training config file and the hash of the run's resolved config"),
    ("mixture, mixture_dir, manifest", "the training mixture, its folder and its manifest.json"),
    ("study_mixture_fingerprint, recipe_name, recipe_file, study_recipe_hash, study_store_snapshot",
     "the mixture's fingerprint, its resolved recipe file and hash, and the store snapshot it was built from, as the study recorded them"),
    ("consistent", "false when the checkpoint's lineage disagrees with the study's record (NULL when either side is unknown)"),
])


def create_lineage_view(con) -> None:
    con.execute(
        """CREATE OR REPLACE TEMP VIEW lineage AS
        SELECT e.run, e.checkpoint, e.step, e.suite, e.benchmark, e.metric, e.kind, e.value, e.ci_low, e.ci_high,
               e.settings_hash, e.provenance, e.run_id, e.config_hash, e.mixture_fingerprint, e.recipe_hash, e.store_snapshot,
               s.study, s.cell, s.condition, s.base_model, s.seed, s.run_dir, s.train_config,
               s.config_hash AS study_config_hash, s.mixture, s.mixture_dir, s.manifest,
               s.mixture_fingerprint AS study_mixture_fingerprint, s.recipe_name, s.recipe_file,
               s.recipe_hash AS study_recipe_hash, s.store_snapshot AS study_store_snapshot,
               CASE WHEN s.run IS NULL OR (e.recipe_hash IS NULL AND e.mixture_fingerprint IS NULL) THEN NULL
                    ELSE coalesce(e.recipe_hash = s.recipe_hash, true)
                         AND coalesce(e.mixture_fingerprint = s.mixture_fingerprint, true) END AS consistent
        FROM eval_rows e LEFT JOIN study_run_rows s ON s.run = e.run"""
    )


def record_run(store, row: dict) -> None:
    """Insert or replace what a study knows about one training run (keyed by run name)."""
    record_run_table(store, pa.Table.from_pylist([{c: row.get(c) for c in STUDY_RUN_COLUMNS}], schema=STUDY_RUN_SCHEMA))


def record_run_table(store, table: pa.Table) -> None:
    """The replace itself, from a one-row table (also how `curate doctor --rebuild` replays records)."""
    table = stamped(table, "recorded_at")
    with store._write() as con:
        record = store._write_record("study_runs", table)  # a durable copy first: a rebuilt catalog keeps it
        con.register("new_run", table)

        def replace() -> None:
            con.execute("DELETE FROM study_run_rows WHERE run IN (SELECT run FROM new_run)")
            con.execute(f"INSERT INTO study_run_rows SELECT {', '.join(STUDY_RUN_COLUMNS)}, recorded_at FROM new_run")

        try:
            store._transaction(con, replace)
        except BaseException:
            discard_record(record)
            raise
        finally:
            con.unregister("new_run")


def retire_run(store, run: str, new_name: str, suite: str | None = None) -> int:
    """Rename a run's eval rows (one suite's, or all) and its study record, so results of a superseded
    config stay queryable under `new_name` and never mix with the rerun. Returns eval rows renamed."""
    if not store.exists:
        return 0
    where = "run = $1" + (" AND suite = $3" if suite else "")
    params = [run, new_name] + ([suite] if suite else [])
    with store._write() as con:
        record = store._write_record("renames", pa.table({"run": [run], "new_name": [new_name], "suite": [suite]},
                                                         schema=RENAME_SCHEMA))

        def rename() -> int:
            n = con.execute(f"UPDATE eval_rows SET run = $2 WHERE {where}", params).fetchone()[0]
            con.execute(f"UPDATE eval_sample_rows SET run = $2 WHERE {where}", params)
            if suite is None:
                con.execute("UPDATE study_run_rows SET run = $2 WHERE run = $1", [run, new_name])
            return int(n)

        try:
            return store._transaction(con, rename)
        except BaseException:
            discard_record(record)
            raise


def read_lineage(store, run: str) -> list[dict]:
    return store.query("SELECT * FROM lineage WHERE run = $1 ORDER BY step NULLS FIRST, suite, benchmark, metric",
                       [run]).to_pylist()


def read_study_run(store, run: str) -> dict | None:
    rows = store.query("SELECT * FROM study_run_rows WHERE run = $1", [run]).to_pylist()
    return rows[0] if rows else None
