"""Lineage: what a study recorded about each training run (`study_run_rows`) and the `lineage` view that
joins every eval row with it, so one query walks from a score back to its checkpoint, run config,
mixture (fingerprint and manifest), recipe (file and hash) and the store snapshot the mixture came from.

    SELECT run, step, benchmark, value, condition, recipe_file, recipe_hash, manifest FROM lineage
The table is created by migration 0004_study_runs (0006 adds the run id it is joined on);
`create_lineage_view` is called by views.create_views. Study records and run renames leave write-ahead records
(journal.py), so a rebuilt catalog keeps them.
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
    ("run_id", pa.string()),
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
# Migration 0006: the training run's id (curate.train.layout.run_lineage), the key eval rows are joined on.
ADD_RUN_ID_SQL = "ALTER TABLE study_run_rows ADD COLUMN run_id VARCHAR;"

# Columns about what the run was trained on: empty on step-0 rows, which score the base model.
_TRAINED_ON = {"train_config": "s.train_config", "study_config_hash": "s.config_hash", "mixture": "s.mixture",
               "mixture_dir": "s.mixture_dir", "manifest": "s.manifest", "study_mixture_fingerprint": "s.mixture_fingerprint",
               "recipe_name": "s.recipe_name", "recipe_file": "s.recipe_file", "study_recipe_hash": "s.recipe_hash",
               "study_store_snapshot": "s.store_snapshot"}

VIEW_DOC = ("Every eval row with what a study recorded about its run: checkpoint -> run config -> mixture -> recipe -> store.", [
    ("run, checkpoint, step, suite, benchmark, metric, value, ci_low, ci_high", "as in `evals`"),
    ("run_id, config_hash, mixture_fingerprint, recipe_hash, store_snapshot", "lineage the checkpoint itself carries (from `evals`)"),
    ("study, cell, condition, base_model, seed", "the study cell that trained the run (NULL when no study did)"),
    ("run_dir, train_config, study_config_hash", "the run folder, the training config file and the hash of the run's resolved config"),
    ("mixture, mixture_dir, manifest", "the training mixture, its folder and its manifest.json"),
    ("study_mixture_fingerprint, recipe_name, recipe_file, study_recipe_hash, study_store_snapshot",
     "the mixture's fingerprint, its resolved recipe file and hash, and the store snapshot it was built from, as the study recorded them"),
    ("consistent", "false when the checkpoint's lineage disagrees with the study's record (NULL when either side is unknown, "
                   "and on step-0 rows)"),
])


def create_lineage_view(con) -> None:
    """Eval rows join the study's record on the training run id (two studies in one store may both have a cell
    `math-cot`); a row or record without a run id (an import, a record from before run ids) joins on the name.
    Step-0 rows score the base model: they keep the study cell but none of what the run was trained on."""
    trained_on = ", ".join(f"CASE WHEN e.step = 0 THEN NULL ELSE {expr} END AS {name}" for name, expr in _TRAINED_ON.items())
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW lineage AS
        SELECT e.run, e.checkpoint, e.step, e.suite, e.benchmark, e.metric, e.kind, e.value, e.ci_low, e.ci_high,
               e.settings_hash, e.provenance, e.run_id, e.config_hash, e.mixture_fingerprint, e.recipe_hash, e.store_snapshot,
               s.study, s.cell, s.condition, s.base_model, s.seed, s.run_dir, {trained_on},
               CASE WHEN s.run IS NULL OR e.step = 0 OR (e.recipe_hash IS NULL AND e.mixture_fingerprint IS NULL) THEN NULL
                    ELSE coalesce(e.recipe_hash = s.recipe_hash, true)
                         AND coalesce(e.mixture_fingerprint = s.mixture_fingerprint, true) END AS consistent
        FROM eval_rows e LEFT JOIN study_run_rows s
          ON CASE WHEN e.run_id IS NOT NULL AND s.run_id IS NOT NULL THEN s.run_id = e.run_id ELSE s.run = e.run END"""
    )


def record_run(store, row: dict) -> None:
    """Insert or replace what a study knows about one training run (keyed by its run id, else by study and run)."""
    record_run_table(store, pa.Table.from_pylist([{c: row.get(c) for c in STUDY_RUN_COLUMNS}], schema=STUDY_RUN_SCHEMA))


def record_run_table(store, table: pa.Table) -> None:
    """The replace itself, from a one-row table (also how `curate doctor --rebuild` replays records)."""
    table = stamped(table, "recorded_at")
    cols = ", ".join(STUDY_RUN_COLUMNS)
    with store._write() as con:
        record = store._write_record("study_runs", table)  # a durable copy first: a rebuilt catalog keeps it
        con.register("new_run", table)

        def replace() -> None:
            con.execute("""DELETE FROM study_run_rows s USING new_run n WHERE
                           CASE WHEN n.run_id IS NOT NULL THEN s.run_id = n.run_id OR (s.run_id IS NULL AND s.run = n.run AND s.study = n.study)
                                ELSE s.run = n.run AND s.study = n.study END""")
            con.execute(f"INSERT INTO study_run_rows ({cols}, recorded_at) SELECT {cols}, recorded_at FROM new_run")

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
