"""What TraceStore answers: checked user SQL over the views, stored problems and sample ids, counts, stats
and the snapshot fingerprint a dataset card records. Every read runs on `connect()` (access.py)."""
from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, Iterable

import duckdb
import pyarrow as pa

from curate.errors import InputError
from curate.records import Problem, canonical_json
from curate.store.access import CatalogAccess, sql_error
from curate.store.connection import run_query
from curate.store.sqlcheck import check_predicate, check_statement, referenced_names


def problem_from_row(r: dict) -> Problem:
    """A Problem from a row of the `problems` view (reference and metadata as JSON text or values)."""
    ref, meta = r.get("reference"), r.get("metadata")
    return Problem(
        source=r["source"], domain=r["domain"], prompt=r["prompt"],
        reference=json.loads(ref) if isinstance(ref, str) else ref,
        metadata=json.loads(meta) if isinstance(meta, str) else (meta or {}),
        split=r["split"], id=r["id"],
    )


class Reads(CatalogAccess):
    def query(self, sql: str, params: list | None = None, max_rows: int | None = None,
              consume: Callable[[pa.RecordBatchReader], Any] | None = None) -> Any:
        """Run one read-only statement over the views (checked first: see sqlcheck.check_statement) on the
        locked-down connection, with the statement timeout; errors come back as one StoreError line.
        `max_rows`: fetch at most that many rows (streamed; the rest is never materialised). `consume`: hand
        the result to it as a reader of small record batches while the connection is open and return what it
        returns (a result larger than memory is never held whole) instead of an Arrow table."""
        if not sql or not sql.strip():
            raise InputError("empty SQL query")
        check_statement(sql)
        with self.connect(referenced_names(sql)) as con:
            try:
                return run_query(con, sql, params, max_rows=max_rows, consume=consume)
            except duckdb.Error as e:
                raise sql_error(e) from None

    def problems(self, where: str | None = None, params: list | None = None) -> list[Problem]:
        """Problems matching `where`, one boolean expression over the `problems` view."""
        q = "SELECT id, source, domain, prompt, reference, metadata, split FROM problems"
        if where:
            q += f" WHERE {check_predicate(where, 'problems', 'predicate over `problems`')}"
        rows = self.query(q + " ORDER BY id", params).to_pylist()
        return [problem_from_row(r) for r in rows]

    def sample_ids(self, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        if not ids or not self.exists:
            return set()
        t = pa.table({"id": pa.array(ids, pa.string())})
        with self.connect(set()) as con:  # reads sample_rows only: a resume check opens no shard file
            con.register("wanted", t)
            try:
                return {r[0] for r in con.execute("SELECT s.id FROM sample_rows s SEMI JOIN wanted USING (id)").fetchall()}
            finally:
                con.unregister("wanted")  # the connection may be shared by a `reading()` block

    def counts(self) -> dict[str, int]:
        if not self.exists:
            return {"problems": 0, "samples": 0, "verdicts": 0, "shards": 0}
        with self.connect() as con:
            r = con.execute(
                """SELECT (SELECT count(*) FROM problem_rows), (SELECT count(*) FROM sample_rows),
                          (SELECT count(*) FROM verdict_rows), (SELECT count(*) FROM shard_rows)"""
            ).fetchone()
        return dict(zip(("problems", "samples", "verdicts", "shards"), map(int, r)))

    def stats(self) -> dict[str, list[dict]]:
        """Counts by source/domain/split, by backend/model (with token totals) and by verifier/status."""
        q = {
            "problems": """SELECT source, domain, split, count(*) AS problems FROM problems GROUP BY ALL ORDER BY ALL""",
            "samples": """SELECT backend, model, count(*) AS samples, count(DISTINCT problem_id) AS problems,
                sum(prompt_tokens)::BIGINT AS prompt_tokens, sum(completion_tokens)::BIGINT AS completion_tokens,
                round(avg(text_chars)) AS avg_chars, sum(truncated::INT)::BIGINT AS truncated
                FROM traces GROUP BY ALL ORDER BY ALL""",
            "verdicts": """SELECT verifier, version, status, count(*) AS verdicts FROM verdicts GROUP BY ALL ORDER BY ALL""",
        }
        names = [referenced_names(v) for v in q.values()]
        with self.connect(None if None in names else set().union(*names)) as con:
            return {k: con.sql(v).to_arrow_table().to_pylist() for k, v in q.items()}

    def snapshot(self) -> dict:
        """A fingerprint of the stored content (ids, verdicts), for provenance in dataset cards.

        Order-free (an XOR over rows) and built from MD5, which is fixed by its standard: unlike DuckDB's
        hash(), it does not change with the DuckDB version, so one store has one snapshot id everywhere."""
        def digest(expr: str, table: str) -> str:
            return f"(SELECT coalesce(bit_xor(('0x' || left(md5({expr}), 16))::UBIGINT), 0) FROM {table})"

        with self.connect() as con:
            r = con.execute(
                f"""SELECT (SELECT count(*) FROM problem_rows), {digest('id', 'problem_rows')},
                          (SELECT count(*) FROM sample_rows), {digest('id', 'sample_rows')},
                          (SELECT count(*) FROM verdict_rows),
                          {digest("concat_ws(chr(31), sample_id, verifier, version, status)", 'verdict_rows')}"""
            ).fetchone()
        digest = hashlib.sha256(canonical_json([str(x) for x in r]).encode()).hexdigest()[:16]
        return {"id": digest, "problems": int(r[0]), "samples": int(r[2]), "verdicts": int(r[4])}
