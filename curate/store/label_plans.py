"""What a verifier run reads from TraceStore: the samples a verifier version has not labeled, planned from the
catalog alone, then their texts read shard by shard (only the row groups that hold them)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import duckdb
import pyarrow as pa

from curate.records import Problem
from curate.store import keys
from curate.store import shards as shard_io
from curate.store.access import CatalogAccess, sql_error
from curate.store.connection import run_query
from curate.store.reads import problem_from_row
from curate.store.sqlcheck import check_predicate, referenced_names


class LabelPlans(CatalogAccess):
    def unlabeled_plan(self, verifier: str, version: str, where: str | None = None, relabel: bool = False,
                       ) -> tuple[list[tuple[Path, list[tuple[str, str, int]]]], dict[str, Problem]]:
        """The samples without a verdict from this verifier version, without reading any text.

        Returns ([(shard file, [(sample_id, problem_id, row), ...]), ...], {problem_id: Problem}), shards in
        key order, rows ascending: `row` is the sample's position in its shard file (read the text with
        `shard_texts`). `where` is a predicate over the `traces` view. Samples whose problem is not stored,
        or whose shard was lost before integer keys existed, are left out."""
        # `traces` joins trace text in only when the predicate names `text` (store/views.py).
        pred = check_predicate(where, 'traces', 'predicate over `traces`') if where else "true"
        skip = "" if relabel else (
            "AND NOT EXISTS (SELECT 1 FROM verdict_rows v WHERE v.skey = s.skey AND v.verifier = $1 AND v.version = $2)")
        chosen = f"s.id IN (SELECT id FROM traces WHERE {pred})" if where else "true"
        query = f"""SELECT s.id, s.problem_id, s.shard, s.skey % {1 << keys.ROW_BITS} AS row FROM sample_rows s
            WHERE {chosen} AND s.skey >= 0 AND s.pkey IS NOT NULL {skip} ORDER BY s.skey"""
        with self.connect(referenced_names(f"SELECT 1 FROM traces WHERE {pred}")) as con:
            try:
                t = run_query(con, query, [verifier, version] if skip else None)
            except duckdb.Error as e:
                raise sql_error(e) from None
            ids, pids, shards, rows = (t.column(i).to_pylist() for i in range(4))
            probs = {}
            if pids:
                con.register("pids", pa.table({"id": pa.array(sorted(set(pids)), pa.string())}))
                for r in con.sql("SELECT p.* FROM problems p SEMI JOIN pids USING (id)").to_arrow_table().to_pylist():
                    probs[r["id"]] = problem_from_row(r)
        plan: dict[str, list[tuple[str, str, int]]] = {}
        for sid, pid, shard, row in zip(ids, pids, shards, rows):
            plan.setdefault(shard, []).append((sid, pid, int(row)))
        return [(shard_io.shard_path(self.shard_dir, shard), items) for shard, items in plan.items()], probs

    @staticmethod
    def shard_texts(path: Path, rows: list[int]) -> list[str] | None:
        """The trace text at these row positions of a shard file (None when the file is missing or damaged).
        Only the row groups holding those rows are read and decoded."""
        return shard_io.read_texts(path, rows)

    def unlabeled(self, verifier: str, version: str, where: str | None = None, relabel: bool = False,
                  batch_size: int = 1000, on_plan: Callable[[int], None] | None = None,
                  ) -> Iterator[list[tuple[Problem, str, str]]]:
        """Batches of (problem, sample_id, text) without a verdict from this verifier version (see
        `unlabeled_plan`). Batches follow shard order so each shard is read once, and no connection is held
        between batches (the caller writes verdicts in between)."""
        plan, probs = self.unlabeled_plan(verifier, version, where, relabel)
        if on_plan is not None:  # how many samples this call will yield, for a progress total
            on_plan(sum(len(items) for _, items in plan))
        batch: list[tuple[Problem, str, str]] = []
        for path, items in plan:
            texts = self.shard_texts(path, [row for _, _, row in items])
            if texts is None:
                self.warnings.append(f"shard {path} is missing or damaged; {len(items)} samples skipped")
                continue
            for (sid, pid, _), text in zip(items, texts):
                batch.append((probs[pid], sid, text))
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch
