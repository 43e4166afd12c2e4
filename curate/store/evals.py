"""The store's evaluation tables: results (`eval_rows`, the `evals` view) and planned samples (`eval_sample_rows`).

An evaluation result is keyed by (run, checkpoint, step, suite, benchmark, metric, settings_hash); writing a
key again replaces its row, so re-evaluating never duplicates. Imported rows have an empty checkpoint and the
settings hash `imported`, so their key is (run, step, suite, benchmark, metric), and an import written with
`replace=True` first drops every row an earlier import of the same file left (a step deleted from the file
disappears from the table). The samples an evaluation
planned are recorded before they are generated, so "which samples belong to this checkpoint's MATH500 run,
and which of them are still missing" is one join, and a half-finished benchmark is visible as such.

    from curate.store.evals import write_evals, read_evals
Test: tests/test_evaluate.py.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

import pyarrow as pa

from curate.errors import InputError
from curate.store.queries import literal
from curate.store.sqlcheck import check_predicate
from curate.store.journal import discard_record, stamped

EVAL_KEY = ("run", "checkpoint", "step", "suite", "benchmark", "metric", "settings_hash")
EVAL_SCHEMA = pa.schema([
    ("run", pa.string()), ("checkpoint", pa.string()), ("step", pa.int32()), ("suite", pa.string()),
    ("benchmark", pa.string()), ("metric", pa.string()), ("kind", pa.string()), ("value", pa.float64()),
    ("ci_low", pa.float64()), ("ci_high", pa.float64()), ("n_problems", pa.int32()), ("n_samples", pa.int32()),
    ("complete", pa.bool_()), ("settings_hash", pa.string()), ("model", pa.string()), ("run_id", pa.string()),
    ("config_hash", pa.string()), ("mixture_fingerprint", pa.string()), ("recipe_hash", pa.string()),
    ("store_snapshot", pa.string()), ("provenance", pa.string()), ("details", pa.string()),
])
EVAL_COLUMNS = [f.name for f in EVAL_SCHEMA]
PLAN_SCHEMA = pa.schema([
    ("sample_id", pa.string()), ("problem_id", pa.string()), ("sample_index", pa.int32()), ("run", pa.string()),
    ("checkpoint", pa.string()), ("step", pa.int32()), ("suite", pa.string()), ("benchmark", pa.string()),
    ("settings_hash", pa.string()),
])
KINDS = ("score", "behaviour")
LINEAGE_COLUMNS = ("run_id", "config_hash", "mixture_fingerprint", "recipe_hash", "store_snapshot")


def _key_sql(key: dict) -> str:
    step = "step IS NULL" if key["step"] is None else f"step = {int(key['step'])}"
    return (f"run = {literal(key['run'])} AND checkpoint = {literal(key['checkpoint'])} AND {step} AND suite = {literal(key['suite'])}"
            f" AND benchmark = {literal(key['benchmark'])} AND settings_hash = {literal(key['settings_hash'])}")


def benchmark_predicate(source: str, where: str | None = None) -> str:
    """Eval-split problems of one source (plus the suite's own predicate), over the `problems` view."""
    pred = f"split = 'eval' AND source = {literal(source)}"
    return pred + (f" AND ({where})" if where else "")


def planned_problem_predicate(key: dict) -> str:
    """Over `problems`: the problems an evaluation planned."""
    return f"id IN (SELECT problem_id FROM eval_samples WHERE {_key_sql(key)})"


def planned_sample_predicate(key: dict) -> str:
    """Over `traces`: the samples an evaluation planned."""
    return f"id IN (SELECT sample_id FROM eval_samples WHERE {_key_sql(key)})"


def _row(r: dict) -> dict:
    missing = [k for k in ("run", "suite", "benchmark", "metric", "settings_hash", "provenance") if not r.get(k)]
    if missing:
        raise InputError(f"eval row lacks {', '.join(missing)}: {r}")
    out = {c: r.get(c) for c in EVAL_COLUMNS}
    out["checkpoint"] = out["checkpoint"] or ""
    out["kind"] = out["kind"] or "score"
    if out["kind"] not in KINDS:
        raise InputError(f"eval row kind must be one of {KINDS}, got {out['kind']!r}")
    out["complete"] = bool(out["complete"]) if out["complete"] is not None else out["value"] is not None
    if out["details"] is not None and not isinstance(out["details"], str):
        out["details"] = json.dumps(out["details"], sort_keys=True, default=str)
    return out


def write_evals(store, rows: Iterable[dict], replace: bool = False) -> int:
    """Insert or replace result rows by their key; returns how many rows were written. With `replace` (an
    import), rows earlier imports of the same files wrote are dropped first (see write_eval_table)."""
    by_key: dict[tuple, dict] = {}
    for r in rows:
        row = _row(r)
        by_key[tuple(row[k] for k in EVAL_KEY)] = row
    if not by_key:
        return 0
    return write_eval_table(store, pa.Table.from_pylist(list(by_key.values()), schema=EVAL_SCHEMA), replace=replace)


# Rows an earlier import of one of the new rows' files wrote (details.file is the imported file's resolved path),
# and rows of a file of the same name imported before rows were keyed this way (settings hash `imported-<digest>`).
_SAME_FILE = ("e.provenance LIKE 'imported:%' AND (json_extract_string(e.details, '$.file') IN "
              "(SELECT DISTINCT json_extract_string(n.details::JSON, '$.file') FROM new_evals n) OR "
              "(e.settings_hash LIKE 'imported-%' AND e.provenance IN (SELECT DISTINCT n.provenance FROM new_evals n)))")


def write_eval_table(store, table: pa.Table, replace: bool = False) -> int:
    """The upsert itself, from a table in EVAL_SCHEMA (also how `curate doctor --rebuild` replays records);
    returns the rows written, 0 when every row is already stored as it is. `replace` (an import) first deletes
    the rows earlier imports of the same files wrote; its record is marked `-replace` so a rebuild does the same."""
    table = stamped(table)  # the rows' created_at, the same in the record and the catalog
    match = " AND ".join(f"e.{k} IS NOT DISTINCT FROM n.{k}" for k in EVAL_KEY)
    cols = ", ".join(f"n.{c}" if c != "details" else "n.details::JSON" for c in EVAL_COLUMNS)
    with store._write() as con:
        con.register("new_evals", table)
        same = ", ".join(f"{c}::VARCHAR" for c in EVAL_COLUMNS)
        changed = con.execute(f"SELECT count(*) FROM (SELECT {same} FROM new_evals EXCEPT SELECT {same} FROM eval_rows)").fetchall()[0][0]
        if replace and changed == 0:  # the same rows again: still drop what the file no longer holds
            changed = con.execute(f"SELECT count(*) FROM eval_rows e WHERE {_SAME_FILE} AND NOT EXISTS "
                                  f"(SELECT 1 FROM new_evals n WHERE {match})").fetchall()[0][0]
        if changed == 0:  # a rerun that scored the same: leave the rows (and their created_at) alone
            con.unregister("new_evals")
            return 0

        def upsert() -> None:
            if replace:
                con.execute(f"DELETE FROM eval_rows e WHERE {_SAME_FILE}")
            con.execute(f"DELETE FROM eval_rows e USING new_evals n WHERE {match}")
            con.execute(f"INSERT INTO eval_rows SELECT {cols}, n.created_at FROM new_evals n")

        record = store._write_record("evals", table, replace)  # a durable copy first: a rebuilt catalog keeps the results
        try:
            store._transaction(con, upsert)
        except BaseException:
            discard_record(record)
            raise
        finally:
            con.unregister("new_evals")
    return table.num_rows


def train_split_ids(store, ids: list[str]) -> set[str]:
    """Which of these problem ids are stored under the train split (an eval benchmark must not use them)."""
    if not ids:
        return set()
    with store.connect() as con:
        con.register("wanted", pa.table({"id": pa.array(ids, pa.string())}))
        return {r[0] for r in con.execute("SELECT p.id FROM problem_rows p SEMI JOIN wanted USING (id) WHERE p.split <> 'eval'").fetchall()}


def plan_samples(store, rows: list[dict]) -> int:
    """Record the samples an evaluation will judge (idempotent); returns newly recorded rows."""
    if not rows:
        return 0
    return plan_sample_table(store, pa.Table.from_pylist(rows, schema=PLAN_SCHEMA))


def plan_sample_table(store, table: pa.Table) -> int:
    """The insert itself, from a table in PLAN_SCHEMA (also how `curate doctor --rebuild` replays records)."""
    table = stamped(table)
    with store._write() as con:
        con.register("planned", table)
        try:
            con.execute(
                """CREATE OR REPLACE TEMP TABLE new_planned AS SELECT p.* FROM planned p ANTI JOIN eval_sample_rows e
                ON e.sample_id = p.sample_id AND e.run = p.run AND e.checkpoint = p.checkpoint
                AND e.step IS NOT DISTINCT FROM p.step AND e.suite = p.suite AND e.benchmark = p.benchmark
                AND e.settings_hash = p.settings_hash""")
            new = con.sql("SELECT * FROM new_planned").to_arrow_table()
            if new.num_rows == 0:  # a rerun: nothing to record
                return 0
            record = store._write_record("eval_samples", new)
            try:
                con.execute("INSERT INTO eval_sample_rows SELECT * FROM new_planned")
            except BaseException:
                discard_record(record)
                raise
        finally:
            con.unregister("planned")
    return int(new.num_rows)


def planned_outcomes(store, key: dict[str, Any], verifier: str, version: str) -> list[dict]:
    """Every planned sample of one (run, checkpoint, step, suite, benchmark, settings_hash) with what is known
    about it: whether it was generated, its verdict from this verifier version, its length and behaviour."""
    params = [key["run"], key["checkpoint"], key["step"], key["suite"], key["benchmark"], key["settings_hash"],
              verifier, version]
    return store.query(
        """SELECT e.problem_id, e.sample_index, e.sample_id, s.id IS NOT NULL AS generated, v.status, v.score, v.answer,
                  s.completion_tokens, s.finish_reason, s.text_chars, s.truncated, s.repetition_score,
                  s.backtrack_count, s.verify_count
           FROM eval_sample_rows e
           LEFT JOIN sample_rows s ON s.id = e.sample_id
           LEFT JOIN verdict_rows v ON v.sample_id = e.sample_id AND v.verifier = $7 AND v.version = $8
           WHERE e.run = $1 AND e.checkpoint = $2 AND e.step IS NOT DISTINCT FROM $3 AND e.suite = $4
             AND e.benchmark = $5 AND e.settings_hash = $6
           ORDER BY e.problem_id, e.sample_index""",
        params,
    ).to_pylist()


def stored_keys(store, suite: str, benchmark: str, settings_hash: str) -> set[tuple]:
    """(run, checkpoint, step) that already have rows for this suite, benchmark and settings."""
    if not store.exists:
        return set()
    rows = store.query("SELECT DISTINCT run, checkpoint, step FROM evals WHERE suite = $1 AND benchmark = $2 AND settings_hash = $3",
                       [suite, benchmark, settings_hash]).to_pylist()
    return {(r["run"], r["checkpoint"], r["step"]) for r in rows}


def score_value_ranges(store, benchmarks: list[str]) -> dict[tuple[str, str], float]:
    """(benchmark, metric) -> the largest |value| among stored score rows of these benchmarks."""
    if not store.exists or not benchmarks:
        return {}
    rows = store.query("SELECT benchmark, metric, max(abs(value)) AS top FROM evals WHERE kind = 'score' AND value IS NOT NULL "
                       "AND list_contains($1, benchmark) GROUP BY ALL", [benchmarks]).to_pylist()
    return {(r["benchmark"], r["metric"]): r["top"] for r in rows}


def score_rows_of_runs(store, runs: list[str], benchmark: str | None = None, steps: list[int] | None = None) -> list[dict]:
    """Score rows of these runs (only this benchmark and these steps when given) with what tells apart runs that
    share a name (run_id, checkpoint, created_at) and their per-problem scores (details.per_problem) when present;
    newest first within a (benchmark, metric, step, run). What `curate evals compare` and the report's answer read."""
    if not store.exists or not runs:
        return []
    cond = "list_contains($1, run) AND kind = 'score'"
    params: list[Any] = [list(runs)]
    if benchmark is not None:
        params.append(benchmark)
        cond += f" AND benchmark = ${len(params)}"
    if steps is not None:
        params.append([int(s) for s in steps])
        cond += f" AND list_contains(${len(params)}, step)"
    return store.query(
        f"""SELECT run, run_id, checkpoint, step, suite, benchmark, metric, value, ci_low, ci_high, n_problems, complete,
                   settings_hash, provenance, created_at, json_extract(details, '$.per_problem')::VARCHAR AS per_problem
            FROM evals WHERE {cond}
            ORDER BY benchmark, metric, step NULLS LAST, run, complete DESC, created_at DESC""", params).to_pylist()


def read_evals(store, where: str | None = None) -> list[dict]:
    """Result rows (newest settings first within a key), optionally filtered by a predicate over `evals`."""
    q = "SELECT * EXCLUDE (created_at) FROM evals"
    if where:
        q += f" WHERE {check_predicate(where, 'evals', '--where')}"
    q += " ORDER BY run, step NULLS LAST, suite, benchmark, kind, metric, created_at DESC"
    return store.query(q).to_pylist()


# The training run id of each evaluated (run, checkpoint, step, suite, benchmark, settings); joined to a planned
# sample by that key (the report's behaviour rows, the eval explorer). Several ids for one key (a checkpoint
# folder retrained in place) take the largest.
EVAL_IDS_JOIN = """LEFT JOIN ids i ON i.run = e.run AND i.checkpoint = e.checkpoint AND i.step IS NOT DISTINCT FROM e.step
                   AND i.suite = e.suite AND i.benchmark = e.benchmark AND i.settings_hash = e.settings_hash"""


def eval_ids(where: str = "") -> str:
    """The `ids` CTE EVAL_IDS_JOIN joins (with when each key was last scored), over the `evals` rows `where` keeps."""
    return f"""WITH ids AS (SELECT run, checkpoint, step, suite, benchmark, settings_hash, max(run_id) AS run_id,
                                max(created_at) AS scored_at FROM evals {where} GROUP BY ALL)"""
