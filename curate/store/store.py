"""TraceStore: a directory holding a DuckDB catalog (`catalog.duckdb`) and Parquet shards (`shards/`).

The catalog holds problems, sample metadata, verdicts, features and the list of committed shards; trace
text stays in the shards and is joined in by the `texts`/`traces` views. Every method opens a connection,
works and closes it, so other processes (`curate sql` during a long generation) get their turn.

The class is assembled from parts named for what they hold:
- access.py: the folders, the single writer, read connections (shared in a `reading()` block), migration
  on open, one-line errors for failed writes and queries;
- writes.py: problems, verdicts and import progress into the catalog; samples as shards, then one commit;
- reads.py: checked user SQL, stored problems and sample ids, counts, stats, the snapshot fingerprint;
- label_plans.py: the samples a verifier version has not labeled, and their texts read shard by shard.
The modules they use: connection.py (locked-down DuckDB connections), locking.py (one writer or many
readers), shards.py (the shard files), commit.py (committing them), journal.py (write-ahead records),
migrations.py, views.py, keys.py.

Problems, verdicts, eval results and study records also leave write-ahead records (journal.py:
`records/<kind>/*.parquet`, written before their transaction, removed if it fails, carrying the rows'
created_at), so `curate doctor --rebuild` can rebuild a damaged catalog from files; a shard is set aside in
`quarantine/` only when reading it fails on its own.
"""
from __future__ import annotations

from curate.store.access import CATALOG
from curate.store.label_plans import LabelPlans
from curate.store.reads import Reads
from curate.store.writes import PROBLEM_SCHEMA, Writes

# Names other modules import from here (the study runner, a benchmark).
__all__ = ["CATALOG", "PROBLEM_SCHEMA", "TraceStore"]


class TraceStore(Writes, Reads, LabelPlans):
    """One store directory: `TraceStore(path)`, then `init()`, `add_*`, `query`, `unlabeled`, ..."""
