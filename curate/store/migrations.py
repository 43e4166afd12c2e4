"""Named schema migrations. Each runs once, in order, inside one transaction, and is recorded in the store.

A store that records a migration this code does not know was written by a newer curate: we refuse to
touch it rather than guess. Add migrations at the end; never edit or reorder applied ones. A migration is
SQL, or a function of (connection, store) for one that must also read the store's files.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Union

from curate.errors import StoreVersionError
from curate.store import keys, lineage

MIGRATIONS: list[tuple[str, Union[str, Callable]]] = [
    (
        "0001_initial",
        """
        CREATE TABLE problem_rows (
            id VARCHAR NOT NULL, source VARCHAR NOT NULL, domain VARCHAR NOT NULL, prompt VARCHAR NOT NULL,
            reference JSON, metadata JSON, split VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL
        );
        CREATE TABLE sample_rows (
            id VARCHAR NOT NULL, problem_id VARCHAR NOT NULL, backend VARCHAR NOT NULL, model VARCHAR NOT NULL,
            revision VARCHAR, params JSON, sample_index INTEGER NOT NULL, seed BIGINT, finish_reason VARCHAR NOT NULL,
            prompt_tokens INTEGER, completion_tokens INTEGER, teacher_logprob DOUBLE, teacher_entropy DOUBLE,
            latency_s DOUBLE, run_id VARCHAR, created_at TIMESTAMP NOT NULL, shard VARCHAR NOT NULL
        );
        CREATE TABLE verdict_rows (
            sample_id VARCHAR NOT NULL, verifier VARCHAR NOT NULL, version VARCHAR NOT NULL, status VARCHAR NOT NULL,
            score DOUBLE, answer VARCHAR, reason VARCHAR, duration_s DOUBLE, created_at TIMESTAMP NOT NULL
        );
        CREATE TABLE feature_rows (
            sample_id VARCHAR NOT NULL, text_chars INTEGER, thinking_chars INTEGER, answer_chars INTEGER,
            thinking_tokens INTEGER, think_closed BOOLEAN, truncated BOOLEAN, boxed_count INTEGER,
            repetition_score DOUBLE, backtrack_count INTEGER, verify_count INTEGER, non_ascii_ratio DOUBLE
        );
        CREATE TABLE shard_rows (
            name VARCHAR NOT NULL, rows BIGINT NOT NULL, bytes BIGINT NOT NULL, committed_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        "0002_evals",
        """
        CREATE TABLE eval_rows (
            run VARCHAR NOT NULL, checkpoint VARCHAR NOT NULL, step INTEGER, suite VARCHAR NOT NULL,
            benchmark VARCHAR NOT NULL, metric VARCHAR NOT NULL, kind VARCHAR NOT NULL, value DOUBLE,
            ci_low DOUBLE, ci_high DOUBLE, n_problems INTEGER, n_samples INTEGER, complete BOOLEAN NOT NULL,
            settings_hash VARCHAR NOT NULL, model VARCHAR, run_id VARCHAR, config_hash VARCHAR,
            mixture_fingerprint VARCHAR, recipe_hash VARCHAR, store_snapshot VARCHAR, provenance VARCHAR NOT NULL,
            details JSON, created_at TIMESTAMP NOT NULL
        );
        CREATE TABLE eval_sample_rows (
            sample_id VARCHAR NOT NULL, problem_id VARCHAR NOT NULL, sample_index INTEGER NOT NULL,
            run VARCHAR NOT NULL, checkpoint VARCHAR NOT NULL, step INTEGER, suite VARCHAR NOT NULL,
            benchmark VARCHAR NOT NULL, settings_hash VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        # How far each import has committed, so a rerun resumes after it instead of re-reading from row 0.
        "0003_import_progress",
        """
        CREATE TABLE import_progress (
            source_key VARCHAR NOT NULL, run_id VARCHAR NOT NULL, rows BIGINT NOT NULL, byte_offset BIGINT,
            committed_at TIMESTAMP NOT NULL
        );
        """,
    ),
    ("0004_study_runs", lineage.TABLE_SQL),
    # Integer keys behind the views, features and the latest verdict beside each sample (store/keys.py).
    ("0005_surrogate_keys", keys.convert),
    # The training run id on each study record: the lineage view joins eval rows on it, not on the run name.
    ("0006_study_run_id", lineage.ADD_RUN_ID_SQL),
]

KNOWN = {name for name, _ in MIGRATIONS}

# Every table a catalog at some migration level holds (feature_rows until 0005 folds it into sample_rows).
# Opening a store refuses any other table (connection.check_catalog); tests/test_security_store.py runs each
# prefix of MIGRATIONS to keep this list true.
TABLES = frozenset({
    "curate_migrations", "problem_rows", "sample_rows", "verdict_rows", "feature_rows", "shard_rows",
    "eval_rows", "eval_sample_rows", "import_progress", "study_run_rows",
})


def newer_store_error(store: Path, unknown: list[str]) -> StoreVersionError:
    return StoreVersionError(
        f"store {store} was written by a newer curate (unknown migrations: {', '.join(sorted(unknown))})",
        hint="this store needs a newer curate: reinstall it from a newer checkout or wheel (`pip install -U .` in the checkout)",
    )
