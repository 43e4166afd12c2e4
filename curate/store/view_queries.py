"""Named queries behind `curate view` (curate/view/), so the trace browser's SQL stays inside curate/store.

Every function reads through the store's locked-down connection; several statements for one page share one
connection (`_run`), and each is checked by `check_statement` first like any TraceStore.query. User input
reaches SQL only as bound parameters, as a sort column chosen from LIST_COLUMNS, or as a predicate that has
passed `check_predicate` (the same checker as `--where`).

- overview: traces by source, model, split, latest verdict status and verifier; problems by source and split;
  verdicts by verifier and status; evaluations planned per run and benchmark.
- trace_list: one page of a filtered, sorted `traces` listing, its total and the filter choices (no trace text
  is read unless the free-text search asks for it).
- neighbour: the id at a position of the same listing (keyboard navigation from one trace to the next).
- trace: one sample with its problem, features, every verdict and its text (read from its shard row).
- problem_traces: a problem and all of its traces with their latest verdicts, answers and texts.
- eval_runs / eval_grid: what an evaluation answered for each problem at each checkpoint, with verdicts.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, field
from typing import Iterator

import duckdb
import pyarrow as pa

from curate.store import keys
from curate.store.connection import run_query
from curate.store.sqlcheck import check_predicate, check_statement, referenced_names
from curate.store.store import sql_error
from curate.store.views import PROBLEM_COLUMNS, SAMPLE_COLUMNS, create_views

# Columns of the trace list (every one sortable), in display order.
LIST_COLUMNS = ("id", "source", "model", "split", "status", "verifier", "finish_reason", "completion_tokens",
                "thinking_tokens", "repetition_score", "truncated", "backtrack_count", "verify_count", "text_chars",
                "sample_index", "problem_id", "created_at")
# Feature ranges the list filters on: (column, type) -> `min_COL` / `max_COL` parameters.
RANGES = {"thinking_tokens": int, "repetition_score": float, "backtrack_count": int, "verify_count": int,
          "completion_tokens": int, "text_chars": int}
CHOICES = ("source", "model", "split", "status", "verifier")
STATUSES = ("correct", "incorrect", "no_answer", "timeout", "error", "unlabeled")
TEXT_LIMIT = 400_000  # characters of one trace sent to a page (the rest is cut with a note)


@dataclass
class ListQuery:
    """A trace-list request: equality filters, feature ranges, free text, a predicate, sort and page."""

    eq: dict[str, str] = field(default_factory=dict)       # column in CHOICES -> value ("unlabeled" for status)
    ranges: dict[str, tuple] = field(default_factory=dict)  # column in RANGES -> (low or None, high or None)
    truncated: bool | None = None
    text: str = ""           # free text: prompt, ids, model, extracted answer (and trace text when in_text)
    in_text: bool = False
    where: str = ""          # a predicate over `traces`, checked like --where
    sort: str = "created_at"
    desc: bool = True
    offset: int = 0
    limit: int = 50


_session: contextvars.ContextVar = contextvars.ContextVar("view_session", default=None)


@contextlib.contextmanager
def session(store) -> Iterator[None]:
    """Run every read of this block on one locked-down connection (an export reads hundreds of pages): it holds
    the store's read lock until the block ends. Views are re-created per statement, so `traces` still joins
    the text only for statements that name it."""
    with store.connect(None) as con:
        shards = store._readable_shards(con)
        token = _session.set((store, con, shards, {"text": True}))  # connect(None) joined the text
        try:
            yield
        finally:
            _session.reset(token)


def _run(store, queries: list[tuple[str, dict | None]]) -> list[pa.Table]:
    """Run several statements on one locked-down connection (each checked first); errors as one StoreError."""
    for sql, _ in queries:
        check_statement(sql)
    names = [referenced_names(sql) for sql, _ in queries]
    open_session = _session.get()
    try:
        if open_session is not None and open_session[0] is store:
            _, con, shards, state = open_session
            out = []
            for (sql, params), used in zip(queries, names):
                text = used is None or "text" in used  # the problem join is cheap: always in
                if text != state["text"]:
                    create_views(con, shards, None if text else {"prompt"})
                    state["text"] = text
                out.append(run_query(con, sql, params))
            return out
        with store.connect(None if None in names else set().union(*names)) as con:
            return [run_query(con, sql, params) for sql, params in queries]
    except duckdb.Error as e:
        raise sql_error(e) from None


def _rows(t: pa.Table) -> list[dict]:
    return t.to_pylist()


def overview(store) -> dict:
    traces, problems, verdicts, evals = _run(store, [
        ("SELECT source, model, split, status, verifier, count(*) AS n FROM traces GROUP BY ALL ORDER BY ALL", None),
        ("SELECT source, domain, split, count(*) AS n FROM problems GROUP BY ALL ORDER BY ALL", None),
        ("SELECT verifier, version, status, count(*) AS n FROM verdicts GROUP BY ALL ORDER BY ALL", None),
        ("SELECT run, suite, benchmark, count(DISTINCT step) AS steps, count(DISTINCT problem_id) AS problems, "
         "count(*) AS samples FROM eval_samples GROUP BY ALL ORDER BY ALL", None),
    ])
    return {"traces": _rows(traces), "problems": _rows(problems), "verdicts": _rows(verdicts), "evals": _rows(evals)}


def _where(q: ListQuery) -> tuple[str, dict]:
    conds, params = [], {}
    for i, (col, value) in enumerate(sorted(q.eq.items())):
        if col not in CHOICES:
            continue
        if col == "status" and value == "unlabeled":
            conds.append("status IS NULL")
        else:
            conds.append(f"{col} = $eq{i}")
            params[f"eq{i}"] = value
    for i, (col, (low, high)) in enumerate(sorted(q.ranges.items())):
        if col not in RANGES:
            continue
        if low is not None:
            conds.append(f"{col} >= $lo{i}")
            params[f"lo{i}"] = low
        if high is not None:
            conds.append(f"{col} <= $hi{i}")
            params[f"hi{i}"] = high
    if q.truncated is not None:
        conds.append("truncated" if q.truncated else "NOT truncated")
    if q.text:
        params["text"] = q.text
        found = ["contains(lower(prompt), lower($text))", "starts_with(id, lower($text))",
                 "starts_with(problem_id, lower($text))",
                 "id IN (SELECT sample_id FROM verdicts WHERE contains(lower(answer), lower($text)))"]
        if q.in_text:
            found.append("contains(lower(text), lower($text))")
        conds.append("(" + " OR ".join(found) + ")")
    if q.where:
        conds.append(check_predicate(q.where, "traces", "predicate over `traces`"))
    return (" WHERE " + " AND ".join(conds)) if conds else "", params


def _order(q: ListQuery) -> str:
    sort = q.sort if q.sort in LIST_COLUMNS else "created_at"
    way = "DESC" if q.desc else "ASC"
    return f" ORDER BY {sort} {way} NULLS LAST, id {way}"


def trace_list(store, q: ListQuery, with_choices: bool = True) -> dict:
    where, params = _where(q)
    stmts = [(f"SELECT {', '.join(LIST_COLUMNS)} FROM traces{where}{_order(q)} LIMIT {int(q.limit)} OFFSET {int(q.offset)}",
              params),
             (f"SELECT count(*) AS n FROM traces{where}", params)]
    if with_choices:
        stmts.append(("SELECT 'model' AS col, model AS value FROM (SELECT DISTINCT model FROM samples) UNION ALL "
                      "SELECT 'verifier', verifier FROM (SELECT DISTINCT verifier FROM verdicts) UNION ALL "
                      "SELECT 'source', source FROM (SELECT DISTINCT source FROM problems) UNION ALL "
                      "SELECT 'split', split FROM (SELECT DISTINCT split FROM problems) ORDER BY ALL", None))
    out = _run(store, stmts)
    choices: dict[str, list] = {c: [] for c in CHOICES}
    choices["status"] = list(STATUSES)
    for r in _rows(out[2]) if with_choices else []:
        if r["value"] is not None:
            choices[r["col"]].append(r["value"])
    return {"rows": _rows(out[0]), "total": int(out[1].column(0)[0].as_py()), "choices": choices}


def neighbour(store, q: ListQuery, position: int) -> str | None:
    """The id at `position` (0-based) of the listing `q` describes, or None past either end."""
    if position < 0:
        return None
    where, params = _where(q)
    (t,) = _run(store, [(f"SELECT id FROM traces{where}{_order(q)} LIMIT 1 OFFSET {int(position)}", params)])
    return t.column(0)[0].as_py() if t.num_rows else None


def _texts(store, located: list[dict]) -> dict[str, str | None]:
    """Trace text by sample id from (id, shard, row) rows, each shard file read once (its row groups only)."""
    by_shard: dict[str, list[dict]] = {}
    for r in located:
        if r["row"] is not None:
            by_shard.setdefault(r["shard"], []).append(r)
    out: dict[str, str | None] = {r["id"]: None for r in located}
    for shard, rows in by_shard.items():
        texts = store.shard_texts(store.shard_dir / f"{shard}.parquet", [int(r["row"]) for r in rows])
        for r, text in zip(rows, texts or [None] * len(rows)):
            out[r["id"]] = text
    return out


# Every column of `traces` but the text (named, so the text join is left out: the text is read from its shard row).
TRACE_COLUMNS = (*SAMPLE_COLUMNS, "created_at", *PROBLEM_COLUMNS, *keys.FEATURE_COLUMNS, "status", "score", "verifier",
                 "verifier_version")
_LOCATE = f"SELECT id, shard, CASE WHEN skey >= 0 THEN skey % {1 << keys.ROW_BITS} END AS row FROM sample_rows"


def trace(store, sample_id: str) -> dict | None:
    """One trace: the `traces` row (problem and features included, no text), every verdict, and the text."""
    row, verdicts, located = _run(store, [
        (f"SELECT {', '.join(TRACE_COLUMNS)} FROM traces WHERE id = $id", {"id": sample_id}),
        ("SELECT * FROM verdicts WHERE sample_id = $id ORDER BY created_at DESC, verifier, version", {"id": sample_id}),
        (f"{_LOCATE} WHERE id = $id", {"id": sample_id}),
    ])
    if not row.num_rows:
        return None
    return {**_rows(row)[0], "verdicts": _rows(verdicts), "text": _texts(store, _rows(located)).get(sample_id)}


def problem_traces(store, problem_id: str, limit: int = 200) -> dict | None:
    """A problem and up to `limit` of its traces (latest verdict with its answer and reason, features, text)."""
    prob, rows, located = _run(store, [
        ("SELECT * FROM problems WHERE id = $id", {"id": problem_id}),
        (f"""SELECT t.id, t.model, t.backend, t.sample_index, t.finish_reason, t.completion_tokens, t.thinking_tokens,
                    t.text_chars, t.answer_chars, t.truncated, t.backtrack_count, t.repetition_score, t.status,
                    t.verifier, v.answer, v.reason
             FROM traces t LEFT JOIN verdicts v ON v.sample_id = t.id AND v.verifier = t.verifier
                  AND v.version = t.verifier_version
             WHERE t.problem_id = $id ORDER BY t.status = 'correct' DESC, t.status NULLS LAST, t.model, t.sample_index, t.id
             LIMIT {int(limit)}""", {"id": problem_id}),
        (f"{_LOCATE} WHERE problem_id = $id", {"id": problem_id}),
    ])
    if not prob.num_rows:
        return None
    traces = _rows(rows)
    wanted = {t["id"] for t in traces}
    texts = _texts(store, [r for r in _rows(located) if r["id"] in wanted])
    for t in traces:
        t["text"] = texts.get(t["id"])
    return {"problem": _rows(prob)[0], "traces": traces}


def eval_runs(store) -> list[dict]:
    """(run, suite, benchmark, settings_hash) of every planned evaluation, with its steps and size."""
    (t,) = _run(store, [("""SELECT run, suite, benchmark, settings_hash, list(DISTINCT step ORDER BY step) AS steps,
                                   count(DISTINCT problem_id) AS problems, count(*) AS samples
                            FROM eval_samples GROUP BY ALL ORDER BY ALL""", None)])
    return _rows(t)


def eval_grid(store, run: str, benchmark: str, suite: str | None = None, only: str = "", offset: int = 0,
              limit: int = 50) -> dict:
    """Per problem (a page of them) and checkpoint step: the planned samples' verdicts and extracted answers.

    `only`: "changed" keeps problems whose verdict differs between two steps, "dip" those correct at the first
    step and wrong at a later one. Also returns the share correct per step over every problem."""
    params = {"run": run, "bench": benchmark}
    if suite:
        params["suite"] = suite
    base = f"""SELECT e.problem_id, e.step, e.checkpoint, e.sample_index, e.sample_id, s.v_status AS status,
                      v.answer, s.completion_tokens, s.finish_reason
               FROM eval_samples e LEFT JOIN sample_rows s ON s.id = e.sample_id
               LEFT JOIN verdict_rows v ON v.skey = s.skey AND v.verifier = s.v_verifier AND v.version = s.v_version
               WHERE e.run = $run AND e.benchmark = $bench{' AND e.suite = $suite' if suite else ''}"""
    keep = {
        "changed": "HAVING count(DISTINCT coalesce(status, '?')) > 1",
        "dip": "HAVING bool_or(status = 'correct' AND step = first_step) "
               "AND bool_or(status IS DISTINCT FROM 'correct' AND step > first_step)",
    }.get(only, "")
    ctes = (f"WITH cells AS ({base}), firsts AS (SELECT *, min(step) OVER () AS first_step FROM cells), "
            f"chosen AS (SELECT problem_id FROM firsts GROUP BY problem_id {keep})")
    page = f", page AS (SELECT problem_id FROM chosen ORDER BY problem_id LIMIT {int(limit)} OFFSET {int(offset)})"
    steps, page_ids, total, cells = _run(store, [
        (f"""WITH cells AS ({base}) SELECT step, any_value(checkpoint) AS checkpoint, count(*) AS samples,
                    count(*) FILTER (status = 'correct') AS correct FROM cells GROUP BY step ORDER BY step NULLS FIRST""",
         params),
        (f"{ctes}{page} SELECT problem_id FROM page ORDER BY problem_id", params),
        (f"{ctes} SELECT count(*) FROM chosen", params),
        (f"""{ctes}{page} SELECT c.*, p.prompt FROM cells c JOIN page USING (problem_id)
             LEFT JOIN problems p ON p.id = c.problem_id ORDER BY c.problem_id, c.step NULLS FIRST, c.sample_index""", params),
    ])
    return {"steps": _rows(steps), "problems": [r["problem_id"] for r in _rows(page_ids)],
            "total": int(total.column(0)[0].as_py()), "cells": _rows(cells)}


def recorded_manifests(store) -> list[str]:
    """The mixture manifest.json paths studies recorded for their runs (study_run_rows.manifest)."""
    (t,) = _run(store, [("SELECT DISTINCT manifest FROM study_run_rows WHERE manifest IS NOT NULL ORDER BY manifest", None)])
    return [m for m in t.column(0).to_pylist() if m]


def problems_of(store, sample_ids: list[str]) -> list[str]:
    """The problem ids of these samples, in the order the samples are given (each once)."""
    (t,) = _run(store, [("""SELECT s.problem_id FROM unnest($ids) WITH ORDINALITY AS w(id, i)
                            JOIN sample_rows s ON s.id = w.id GROUP BY s.problem_id ORDER BY min(w.i)""",
                         {"ids": list(sample_ids)})])
    return t.column(0).to_pylist()
