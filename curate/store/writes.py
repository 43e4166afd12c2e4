"""What TraceStore writes: problems, verdicts and import progress into the catalog, samples as Parquet shards
committed by the single writer.

Writes are idempotent: ids are content hashes and every insert is an anti-join against what is stored.
Committing a shard is one transaction (insert rows + register the shard), so a kill at any point leaves the
shard either fully committed or still pending; the next commit picks it up without duplicates. Problems and
verdicts leave a write-ahead record first (journal.py), removed again when their transaction fails.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, TypeVar

import pyarrow as pa

from curate.cpus import usable_cpus
from curate.errors import InputError
from curate.records import Problem, Sample, Verdict, canonical_json
from curate.store import commit, journal, keys
from curate.store import shards as shard_io
from curate.store.access import CatalogAccess
from curate.store.journal import discard_record

SHARD_ROWS = 131_072  # rows per shard file: bounded reader memory, and parallel writes for big batches

PROBLEM_SCHEMA = pa.schema(
    [("id", pa.string()), ("source", pa.string()), ("domain", pa.string()), ("prompt", pa.string()),
     ("reference", pa.string()), ("metadata", pa.string()), ("split", pa.string())]
)
VERDICT_SCHEMA = pa.schema(
    [("sample_id", pa.string()), ("verifier", pa.string()), ("version", pa.string()), ("status", pa.string()),
     ("score", pa.float64()), ("answer", pa.string()), ("reason", pa.string()), ("duration_s", pa.float64())]
)

Store = TypeVar("Store", bound="Writes")


class Writes(CatalogAccess):
    def init(self: Store) -> Store:
        with self._write():
            pass
        return self

    def add_problems(self, problems: Iterable[Problem]) -> int:
        rows: dict[str, dict] = {}
        for p in problems:
            if p.id not in rows:
                rows[p.id] = {"id": p.id, "source": p.source, "domain": p.domain, "prompt": p.prompt,
                              "reference": canonical_json(p.reference), "metadata": canonical_json(p.metadata), "split": p.split}
        table = pa.Table.from_pylist(list(rows.values()), schema=PROBLEM_SCHEMA)
        return self.add_problem_table(table)

    def add_problem_table(self, table: pa.Table) -> int:
        if table.num_rows == 0:
            with self._write():
                return 0

        def insert(con) -> int:
            base = keys.next_key(con, "problem_rows", "pkey")
            n = con.execute(
                """INSERT INTO problem_rows
                SELECT $1 + row_number() OVER (), n.id, n.source, n.domain, n.prompt, n.reference::JSON,
                       n.metadata::JSON, n.split, n.created_at
                FROM new_problems n ANTI JOIN problem_rows p ON p.id = n.id""", [base]).fetchone()[0]
            if n and con.execute("SELECT count(*) FROM sample_rows WHERE pkey IS NULL").fetchone()[0]:
                con.execute("""UPDATE sample_rows s SET pkey = p.pkey FROM problem_rows p
                    WHERE s.pkey IS NULL AND p.pkey > $1 AND p.id = s.problem_id""", [base]).fetchall()
            return int(n)

        return self._recorded_write("problems", table, "new_problems", insert)

    def _recorded_write(self, kind: str, table: pa.Table, name: str, body: Callable, replace: bool = False):
        """Leave the write-ahead record of `table`, then run body(con) in one transaction with `table`
        registered as `name`. The record is removed again when the transaction fails."""
        table = journal.stamped(table)  # the rows' created_at, the same in the record and the catalog
        with self._write() as con:
            # Written under the write lock, so a record compaction sees belongs to a finished transaction;
            # kept when only the checkpoint after the commit fails (the rows are committed then).
            record = self._write_record(kind, table, replace)
            try:
                con.register(name, table)
                out = self._transaction(con, lambda: body(con))
                con.unregister(name)
                return out
            except BaseException:
                discard_record(record)
                raise

    # ------------------------------------------------------------------ write-ahead records (journal.py)
    def _write_record(self, kind: str, table: pa.Table, replace: bool = False) -> Path | None:
        return journal.write_record(self, kind, table, replace)

    def record_files(self) -> list[tuple[str, Path]]:
        return journal.record_files(self)

    # ------------------------------------------------------------------ samples: shards, then one commit
    def write_shard(self, samples: Iterable[Sample] | pa.Table, prefix: str = "s") -> list[Path]:
        """Producer side: write samples (with features) as pending shards. No catalog lock is taken.

        Features are computed on a thread per usable CPU (shards.with_features), then a large batch is split
        into shards of SHARD_ROWS, each written by its own thread (Parquet compression releases the GIL)."""
        table = samples if isinstance(samples, pa.Table) else shard_io.samples_to_table(samples)
        if table.num_rows == 0:
            return []
        if "f_text_chars" not in table.column_names:
            table = shard_io.with_features(table)
        parts = [table.slice(i, SHARD_ROWS) for i in range(0, table.num_rows, SHARD_ROWS)]

        def write(part: pa.Table) -> Path:
            return shard_io.write_atomic(part, self.shard_dir, shard_io.new_shard_name(prefix))

        try:
            if len(parts) == 1:
                return [write(parts[0])]
            with ThreadPoolExecutor(max_workers=min(len(parts), usable_cpus())) as pool:
                return list(pool.map(write, parts))
        except OSError as e:  # disk full, read-only, permission denied: nothing of this batch is stored
            raise self.write_error(e) from None

    def add_samples(self, samples: Iterable[Sample] | pa.Table) -> int:
        """Write one shard and commit it (and anything else pending). Returns newly stored samples."""
        self.write_shard(samples)
        return self.commit_pending()

    def pending_shards(self, con=None) -> list[Path]:
        """Shard files on disk that the catalog has not registered yet (read on `con`, else a short read)."""
        if not self.shard_dir.exists():
            return []
        files = sorted(p for p in self.shard_dir.glob("*.parquet") if not p.name.startswith(".tmp-"))
        if not files or (con is None and not self.exists):
            return files
        if con is None:
            with self.connect(set()) as own:  # reads shard_rows only: no committed shard file is opened
                return self.pending_shards(own)
        done = {r[0] for r in con.execute("SELECT name FROM shard_rows").fetchall()}
        return [p for p in files if p.stem not in done]

    def commit_pending(self) -> int:
        """The single writer: commit every pending shard in one short transaction. Returns new samples."""
        with self._write() as con:
            return commit.commit_shards(self, con, self.pending_shards(con))

    # ------------------------------------------------------------------ verdicts
    def add_verdicts(self, verdicts: Iterable[Verdict], replace: bool = False) -> int:
        rows: dict[tuple, dict] = {}
        for v in verdicts:
            if not v.sample_id:
                raise InputError(f"verdict from {v.verifier} has no sample_id")
            rows[(v.sample_id, v.verifier, v.version)] = {
                "sample_id": v.sample_id, "verifier": v.verifier, "version": v.version, "status": v.status,
                "score": float(v.score), "answer": v.answer, "reason": v.reason, "duration_s": float(v.duration_s)}
        if not rows:
            return 0
        return self.add_verdict_table(pa.Table.from_pylist(list(rows.values()), schema=VERDICT_SCHEMA), replace=replace)

    def add_verdict_table(self, table: pa.Table, replace: bool = False) -> int:
        """Insert verdict rows (VERDICT_SCHEMA, one per key); `replace` overwrites stored ones with these keys."""

        def insert(con) -> int:
            con.execute("""CREATE OR REPLACE TEMP TABLE keyed_verdicts AS
                SELECT s.skey, n.* FROM new_verdicts n LEFT JOIN sample_rows s ON s.id = n.sample_id""")
            if replace:
                con.execute(
                    """DELETE FROM verdict_rows v USING keyed_verdicts n
                    WHERE v.sample_id = n.sample_id AND v.verifier = n.verifier AND v.version = n.version""")
            cols = ", ".join(keys.VERDICT_COLUMNS)
            n = con.execute(
                f"""INSERT INTO verdict_rows (skey, {cols}, created_at) SELECT n.skey, {', '.join('n.' + c for c in keys.VERDICT_COLUMNS)}, n.created_at
                FROM keyed_verdicts n
                ANTI JOIN verdict_rows v ON v.sample_id = n.sample_id AND v.verifier = n.verifier AND v.version = n.version"""
            ).fetchone()[0]
            if n or replace:
                keys.refresh_latest(con, "SELECT skey FROM keyed_verdicts WHERE skey IS NOT NULL")
            con.execute("DROP TABLE keyed_verdicts")
            return int(n)

        return self._recorded_write("verdicts", table, "new_verdicts", insert, replace)

    # ------------------------------------------------------------------ import progress (an import's resume point)
    def record_import_progress(self, source_key: str, run_id: str, rows: int, byte_offset: int | None) -> None:
        """Mark the first `rows` input rows of an import as committed (called after their data is)."""
        with self._write() as con:
            con.execute("INSERT INTO import_progress VALUES (?, ?, ?, ?, now())", [source_key, run_id, rows, byte_offset])

    def import_progress(self, source_key: str) -> tuple[int, int | None, dict[str, int]]:
        """(rows committed, byte offset after them, samples stored per problem by that import) for a resume."""
        if not self.exists:
            return 0, None, {}
        with self.connect() as con:  # connect() migrates first, so the table exists
            row = con.execute(
                "SELECT rows, byte_offset, run_id FROM import_progress WHERE source_key = ? ORDER BY rows DESC LIMIT 1",
                [source_key]).fetchone()
            if row is None:
                return 0, None, {}
            seen = dict(con.execute(
                "SELECT problem_id, max(sample_index) + 1 FROM sample_rows WHERE run_id = ? GROUP BY problem_id",
                [row[2]]).fetchall())
        return int(row[0]), row[1], {k: int(v) for k, v in seen.items()}
