"""Named queries other stages need, so SQL stays inside curate/store.

- problem_groups / group_predicate: how the labeler splits problems by (source, domain, metadata.verifier)
  and turns a set of such groups into a predicate over `traces` for TraceStore.unlabeled.
- trace_summary: per source and model, traces with their verdict counts and behaviour averages (the demo).
- split_conflicts: which of some problem ids are already stored under another split (tasks add);
  other_split_references: the references of a source's problems stored under another split.
"""
from __future__ import annotations

from typing import Any

from curate.store.sqlcheck import check_predicate

META_VERIFIER = "json_extract_string(metadata, '$.verifier')"


def literal(s: Any) -> str:
    """A SQL string literal (quotes doubled)."""
    return "'" + str(s).replace("'", "''") + "'"


def problem_groups(store) -> list[dict]:
    """Distinct (source, domain, verifier named in metadata) of the stored problems."""
    return store.query(f"SELECT DISTINCT source, domain, {META_VERIFIER} AS named FROM problems ORDER BY ALL").to_pylist()


def group_predicate(groups: list[dict], where: str | None = None) -> str:
    """A predicate over `traces` matching samples of these problem groups (and the user's `where`)."""
    conds = []
    for g in groups:
        named = f"{META_VERIFIER} = {literal(g['named'])}" if g.get("named") else f"{META_VERIFIER} IS NULL"
        conds.append(f"(source = {literal(g['source'])} AND domain = {literal(g['domain'])} AND {named})")
    pred = f"({' OR '.join(conds)})" if conds else "false"
    return pred + (f" AND {check_predicate(where, 'traces', 'predicate over `traces`')}" if where else "")


def trace_summary(store) -> list[dict]:
    return store.query(
        """SELECT source, model, count(*) AS traces, count(*) FILTER (status = 'correct') AS correct,
                  count(*) FILTER (status = 'incorrect') AS incorrect, round(avg(text_chars)) AS avg_chars,
                  round(avg(backtrack_count), 2) AS avg_backtracks
           FROM traces GROUP BY ALL ORDER BY ALL"""
    ).to_pylist()


def split_conflicts(store, ids: list[str], split: str) -> list[dict]:
    """The problems among `ids` already stored under a split other than `split` (id, split)."""
    if not ids or not store.exists:
        return []
    return store.query(
        "SELECT id, split FROM problems WHERE split <> $split AND id IN (SELECT unnest($ids)) ORDER BY id",
        {"split": split, "ids": list(ids)},
    ).to_pylist()


def other_split_references(store, source: str, split: str) -> list[dict]:
    """(id, split, reference JSON text) of the problems of `source` stored under a split other than `split`."""
    if not store.exists:
        return []
    return store.query(
        "SELECT id, split, CAST(reference AS VARCHAR) AS reference FROM problems WHERE source = $source AND split <> $split ORDER BY id",
        {"source": source, "split": split},
    ).to_pylist()
