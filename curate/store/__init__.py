"""The trace store: DuckDB catalog + Parquet shards, the only code in curate that speaks SQL."""
from curate.store.store import TraceStore

__all__ = ["TraceStore"]
