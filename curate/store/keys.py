"""Integer surrogate keys behind the views, and the per-sample columns kept beside them.

The public ids (`samples.id`, `problems.id`, `verdicts.sample_id`) are 32-character content hashes; joining
millions of rows on them is slow, because strings that long are compared through pointers. So the catalog
also gives each row an integer key, assigned by the single writer and never shown in the views:
- `problem_rows.pkey`, and `sample_rows.pkey` pointing at it (NULL until the problem is stored);
- `shard_rows.shard_no`, numbering shards in commit order;
- `sample_rows.skey` = shard_no * 2^32 + the sample's row in its shard file (`position_key`), and
  `verdict_rows.skey` pointing at it (NULL while the sample is not stored yet). The key is where the text
  sits, so the text join is one integer computed from the shard scan's file index and row number, and
  reads no id column; the commit assigns keys without sorting anything.
Each sample row also carries its features (computed by the producer, one row per sample) and its latest
verdict (`v_*`, refreshed whenever verdicts of that sample are written), so `traces` joins nothing but the
problem and, when a query names it, the text.

Migration 0005 converts a store written before this layout in place (see `convert`).
"""
from __future__ import annotations

import pyarrow as pa

from curate import features
from curate.store import shards as shard_io

FEATURE_COLUMNS = features.NAMES
_SQL_TYPES = {pa.int32(): "INTEGER", pa.bool_(): "BOOLEAN", pa.float64(): "DOUBLE"}
_FEATURE_DDL = ", ".join(f"{f.name} {_SQL_TYPES[f.type]}" for f in features.SCHEMA)

TABLES_SQL = f"""
CREATE TABLE problem_rows (
    pkey INTEGER NOT NULL, id VARCHAR NOT NULL, source VARCHAR NOT NULL, domain VARCHAR NOT NULL,
    prompt VARCHAR NOT NULL, reference JSON, metadata JSON, split VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL
);
CREATE TABLE sample_rows (
    skey BIGINT NOT NULL, id VARCHAR NOT NULL, problem_id VARCHAR NOT NULL, pkey INTEGER, backend VARCHAR NOT NULL,
    model VARCHAR NOT NULL, revision VARCHAR, params JSON, sample_index INTEGER NOT NULL, seed BIGINT,
    finish_reason VARCHAR NOT NULL, prompt_tokens INTEGER, completion_tokens INTEGER, teacher_logprob DOUBLE,
    teacher_entropy DOUBLE, latency_s DOUBLE, run_id VARCHAR, created_at TIMESTAMP NOT NULL, shard VARCHAR NOT NULL,
    {_FEATURE_DDL},
    v_status VARCHAR, v_score DOUBLE, v_verifier VARCHAR, v_version VARCHAR
);
CREATE TABLE verdict_rows (
    skey BIGINT, sample_id VARCHAR NOT NULL, verifier VARCHAR NOT NULL, version VARCHAR NOT NULL,
    status VARCHAR NOT NULL, score DOUBLE, answer VARCHAR, reason VARCHAR, duration_s DOUBLE, created_at TIMESTAMP NOT NULL
);
CREATE TABLE shard_rows (
    shard_no INTEGER NOT NULL, name VARCHAR NOT NULL, rows BIGINT NOT NULL, bytes BIGINT NOT NULL,
    committed_at TIMESTAMP NOT NULL
);
"""
ROW_BITS = 32  # a shard holds fewer than 2^32 rows; 2^31 shards fit below BIGINT's limit


def position_key(shard_no: str, row: str) -> str:
    """SQL for the key of row `row` of shard `shard_no` (both SQL expressions)."""
    return f"(({shard_no})::BIGINT * {1 << ROW_BITS} + ({row}))"


VERDICT_COLUMNS = ["sample_id", "verifier", "version", "status", "score", "answer", "reason", "duration_s"]

# "Latest" = newest created_at, ties broken by verifier then version: a grouped arg_min, not a window sort.
_LATEST = """SELECT skey, arg_min(struct_pack(status := status, score := score, verifier := verifier, version := version),
                         struct_pack(t := -epoch_us(created_at), verifier := verifier, version := version)) AS v
    FROM verdict_rows WHERE {where} GROUP BY skey"""


def latest_verdicts_sql(where: str = "skey IS NOT NULL") -> str:
    """(skey, v) with v the latest verdict of each sample whose verdict rows match `where`."""
    return _LATEST.format(where=where)


def refresh_latest(con, skeys: str) -> None:
    """Recompute sample_rows.v_* for the samples whose skey is in the one-column query `skeys`."""
    con.execute(f"""UPDATE sample_rows s SET v_status = l.v.status, v_score = l.v.score, v_verifier = l.v.verifier,
        v_version = l.v.version FROM ({latest_verdicts_sql(f'skey IN ({skeys})')}) l WHERE s.skey = l.skey""")


def next_key(con, table: str, column: str) -> int:
    return int(con.execute(f"SELECT coalesce(max({column}), 0) FROM {table}").fetchall()[0][0])


def convert(con, store) -> None:
    """Migration 0005: rebuild the four tables in the keyed layout, in place (one transaction).

    Problems and shards are numbered in commit order and samples keyed by their position, read from the
    shard files. A sample whose shard is missing (its text was already unavailable) gets a negative key,
    which no shard row ever matches. Features move from feature_rows into sample_rows, and each sample
    gets its latest verdict. Every public column keeps its value, so queries over the views answer as before."""
    meta = shard_io.META_COLUMNS[2:]  # every sample column but id and problem_id
    names = [r[0] for r in con.execute("SELECT name FROM shard_rows WHERE rows > 0 ORDER BY name").fetchall()]
    files = [str(p) for p in (shard_io.shard_path(store.shard_dir, n) for n in names) if shard_io.looks_complete(p)]
    if files:
        listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
        con.execute(f"""CREATE TEMP TABLE old_positions AS SELECT parse_filename(filename, true) AS shard, id,
            file_row_number::INTEGER AS shard_row FROM read_parquet({listed}, filename = true, file_row_number = true)""")
    else:
        con.execute("CREATE TEMP TABLE old_positions (shard VARCHAR, id VARCHAR, shard_row INTEGER)")
    for t in ("problem_rows", "sample_rows", "verdict_rows", "shard_rows"):
        con.execute(f"ALTER TABLE {t} RENAME TO old_{t}")
    con.execute(TABLES_SQL)
    con.execute("""INSERT INTO shard_rows SELECT row_number() OVER (ORDER BY committed_at, name), name, rows, bytes,
        committed_at FROM old_shard_rows""")
    con.execute("""INSERT INTO problem_rows SELECT row_number() OVER (ORDER BY created_at, id), id, source, domain, prompt,
        reference, metadata, split, created_at FROM old_problem_rows""")
    fcols = ", ".join(f"f.{c}" for c in FEATURE_COLUMNS)
    con.execute(f"""INSERT INTO sample_rows (skey, id, problem_id, pkey, {', '.join(meta)}, created_at, shard, {', '.join(FEATURE_COLUMNS)})
        SELECT coalesce({position_key('r.shard_no', 'o.shard_row')}, -row_number() OVER (ORDER BY s.id)), s.id, s.problem_id,
               p.pkey, {', '.join('s.' + c for c in meta)}, s.created_at, s.shard, {fcols}
        FROM old_sample_rows s
        LEFT JOIN problem_rows p ON p.id = s.problem_id
        LEFT JOIN shard_rows r ON r.name = s.shard
        LEFT JOIN old_positions o ON o.shard = s.shard AND o.id = s.id
        LEFT JOIN feature_rows f ON f.sample_id = s.id""")
    con.execute(f"""INSERT INTO verdict_rows SELECT s.skey, {', '.join('v.' + c for c in VERDICT_COLUMNS)}, v.created_at
        FROM old_verdict_rows v LEFT JOIN sample_rows s ON s.id = v.sample_id""")
    refresh_latest(con, "SELECT skey FROM verdict_rows WHERE skey IS NOT NULL")
    for t in ("old_problem_rows", "old_sample_rows", "old_verdict_rows", "old_shard_rows", "feature_rows", "old_positions"):
        con.execute(f"DROP TABLE {t}")
