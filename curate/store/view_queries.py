"""Named queries behind `curate view` (curate/view/), so the trace browser's SQL stays inside curate/store.

Every function reads through the store's locked-down connection; several statements for one page share one
connection (`_run`), and each is checked by `check_statement` first like any TraceStore.query. User input
reaches SQL only as bound parameters, as a sort column chosen from LIST_COLUMNS, or as a predicate that has
passed `check_predicate` (the same checker as `--where`).

- overview: traces by source, model, split, latest verdict status and verifier; problems by source and split;
  verdicts by verifier and status; evaluations planned per run (training runs sharing a name apart) and benchmark.
- trace_list: one page of a filtered, sorted `traces` listing, its total and the filter choices (no trace text
  is read unless the free-text search asks for it).
- trace: one sample with its problem, features, every verdict and its text (read from its shard row), and
  the ids either side of it in a listing (keyboard navigation from one trace to the next).
- problem_traces: a problem and all of its traces with their latest verdicts, answers and texts.
- eval_runs / eval_run_ids / eval_grid: what an evaluation answered for each problem at each checkpoint, with
  verdicts, per training run: `eval_samples` has no run id, so a planned sample takes the one its evaluation's
  `evals` rows carry (two runs can share a name; a sample not yet scored has none).
"""
from __future__ import annotations

import contextlib
import contextvars
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import duckdb
import pyarrow as pa

from curate.store import keys
from curate.store import shards as shard_io
from curate.store.evals import EVAL_IDS_JOIN, eval_ids
from curate.store.queries import literal
from curate.store.connection import run_query
from curate.store.sqlcheck import check_predicate, check_statement, referenced_names
from curate.store.access import sql_error
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


def _run(store, queries: list[tuple[str, dict | None]], then: Callable[[list[pa.Table]], list] | None = None,
         files: bool = False) -> list[pa.Table]:
    """Run several statements on one locked-down connection (each checked first); errors as one StoreError.
    `then(results)` may return more statements for the same connection; `files`: the shard files are readable
    (for `_text_reads`), without `traces` joining the text."""
    for sql, _ in queries:
        check_statement(sql)
    names = [referenced_names(sql) for sql, _ in queries]
    open_session = _session.get()

    def more(con, out: list[pa.Table], runner) -> list[pa.Table]:
        extra = then(out) if then else []
        for sql, _ in extra:
            check_statement(sql)
        return out + [runner(con, sql, params) for sql, params in extra]

    try:
        if open_session is not None and open_session[0] is store:
            _, con, shards, state = open_session

            def runner(con, sql, params):
                used = referenced_names(sql)
                text = used is None or "text" in used  # the problem join is cheap: always in
                if text != state["text"]:
                    create_views(con, shards, None if text else {"prompt"})
                    state["text"] = text
                return run_query(con, sql, params)

            return more(con, [runner(con, sql, params) for sql, params in queries], runner)
        used = None if None in names else set().union(*names) | ({"texts"} if files else set())
        with store.connect(used) as con:
            return more(con, [run_query(con, sql, params) for sql, params in queries], run_query)
    except duckdb.Error as e:
        raise sql_error(e) from None


def _rows(t: pa.Table) -> list[dict]:
    return t.to_pylist()


# Answers that only change when the store is written: keyed by the catalog file's size and mtime (every
# writer checkpoints before it lets go, so a commit always changes them).
_cache: dict[tuple, Any] = {}
_cache_lock = threading.Lock()


def _cached(store, name: str, compute: Callable[[], Any]) -> Any:
    try:
        st = store.db_path.stat()
        key = (str(store.db_path.resolve()), name, st.st_size, st.st_mtime_ns)
    except OSError:
        return compute()
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    value = compute()
    with _cache_lock:
        for k in [k for k in _cache if k[:2] == key[:2]]:
            del _cache[k]
        _cache[key] = value
    return value


def clear_cache() -> None:
    """Forget the cached answers (the next overview reads the store again)."""
    with _cache_lock:
        _cache.clear()


def overview(store) -> dict:
    def compute() -> dict:
        traces, problems, verdicts, evals = _run(store, [
            # grouped on the catalog first, then joined to the few problems' columns (the `traces` answer)
            ("""SELECT p.source, s.model, p.split, s.v_status AS status, s.v_verifier AS verifier, count(*) AS n
                FROM sample_rows s LEFT JOIN problem_rows p ON p.pkey = s.pkey GROUP BY ALL ORDER BY ALL""", None),
            ("SELECT source, domain, split, count(*) AS n FROM problems GROUP BY ALL ORDER BY ALL", None),
            ("SELECT verifier, version, status, count(*) AS n FROM verdicts GROUP BY ALL ORDER BY ALL", None),
            (f"""{eval_ids()}
                 SELECT e.run, coalesce(i.run_id, '') AS run_id, e.suite, e.benchmark, count(DISTINCT e.step) AS steps,
                        count(DISTINCT e.problem_id) AS problems, count(*) AS samples,
                        coalesce(max(i.scored_at), max(e.created_at)) AS evaluated_at
                 FROM eval_samples e {EVAL_IDS_JOIN} GROUP BY ALL
                 ORDER BY e.run, e.suite, e.benchmark, evaluated_at DESC, run_id""", None),
        ])
        return {"traces": _rows(traces), "problems": _rows(problems), "verdicts": _rows(verdicts), "evals": _rows(evals)}
    return _cached(store, "overview", compute)


def choices(store) -> dict[str, list]:
    """The values the list's drop-downs offer."""
    def compute() -> dict:
        (t,) = _run(store, [("SELECT 'model' AS col, model AS value FROM (SELECT DISTINCT model FROM samples) UNION ALL "
                             "SELECT 'verifier', verifier FROM (SELECT DISTINCT verifier FROM verdicts) UNION ALL "
                             "SELECT 'source', source FROM (SELECT DISTINCT source FROM problems) UNION ALL "
                             "SELECT 'split', split FROM (SELECT DISTINCT split FROM problems) ORDER BY ALL", None)])
        out: dict[str, list] = {c: [] for c in CHOICES}
        out["status"] = list(STATUSES)
        for r in _rows(t):
            if r["value"] is not None:
                out[r["col"]].append(r["value"])
        return out
    return _cached(store, "choices", compute)


# Every column of `traces` but the text (the text is read from its shard row).
TRACE_COLUMNS = (*SAMPLE_COLUMNS, "created_at", *PROBLEM_COLUMNS, *keys.FEATURE_COLUMNS, "status", "score", "verifier",
                 "verifier_version")


# The list runs on a relation with the columns of `traces` plus the catalog's integer key `skey` (which breaks ties
# in the sort and picks the page's rows); the problem and the text are joined only when a filter, the sort or the
# predicate names their columns, as `traces` itself does (store/views.py).
_SAMPLE_SIDE = {"status": "s.v_status", "verifier": "s.v_verifier", "score": "s.v_score", "verifier_version": "s.v_version"}


def _col(c: str) -> str:
    if c in _SAMPLE_SIDE:
        return _SAMPLE_SIDE[c]
    return f"p.{c}" if c in PROBLEM_COLUMNS else f"s.{c}"


def _relation(problem: bool, text: bool) -> str:
    cols = [f"{_col(c)} AS {c}" for c in TRACE_COLUMNS if problem or c not in PROBLEM_COLUMNS]
    return (f"(SELECT s.skey, s.pkey, {', '.join(cols)}{', x.text' if text else ''} FROM sample_rows s"
            f"{' LEFT JOIN problem_rows p ON p.pkey = s.pkey' if problem else ''}"
            f"{' LEFT JOIN shard_texts x ON x.skey = s.skey' if text else ''}) AS t")


def _where(q: ListQuery) -> tuple[str, dict, set[str] | None]:
    """(WHERE clause over the relation `t`, parameters, the column names it uses; None: unknown)."""
    conds, params = [], {}
    names: set[str] | None = set()
    for i, (col, value) in enumerate(sorted(q.eq.items())):
        if col not in CHOICES:
            continue
        names.add(col)
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
        found = ["pkey IN (SELECT pkey FROM problem_rows WHERE contains(lower(prompt), lower($text)))",
                 "starts_with(id, lower($text))", "starts_with(problem_id, lower($text))",
                 "skey IN (SELECT skey FROM verdict_rows WHERE contains(lower(answer), lower($text)))"]
        if q.in_text:
            found.append("skey IN (SELECT skey FROM shard_texts WHERE contains(lower(text), lower($text)))")
        conds.append("(" + " OR ".join(found) + ")")
    if q.where:  # the user's predicate, over the columns of `traces`, checked exactly as --where
        pred = check_predicate(q.where, "traces", "predicate over `traces`")
        used = referenced_names(f"SELECT 1 FROM traces WHERE {pred}")
        names = None if used is None else names | used
        conds.append(pred)
    return ((" WHERE " + " AND ".join(conds)) if conds else ""), params, names


def _order(q: ListQuery) -> str:
    sort = q.sort if q.sort in LIST_COLUMNS else "created_at"
    way = "DESC" if q.desc else "ASC"
    return f" ORDER BY {sort} {way} NULLS LAST, skey {way}"


def _joins(names: set[str] | None) -> tuple[bool, bool]:
    return (names is None or not names.isdisjoint(PROBLEM_COLUMNS), names is None or "text" in names)


def _page_sql(q: ListQuery, columns: tuple[str, ...], limit: int, offset: int) -> tuple[str, dict]:
    where, params, names = _where(q)
    sort = q.sort if q.sort in LIST_COLUMNS else "created_at"
    problem, text = _joins(None if names is None else names | {sort})
    inner = f"SELECT skey FROM {_relation(problem, text)}{where}{_order(q)} LIMIT {int(limit)} OFFSET {int(offset)}"
    return (f"SELECT {', '.join(columns)} FROM {_relation(True, False)} WHERE skey IN ({inner}){_order(q)}", params)


def _count_sql(q: ListQuery) -> tuple[str, dict]:
    where, params, names = _where(q)
    return f"SELECT count(*) AS n FROM {_relation(*_joins(names))}{where}", params


def trace_list(store, q: ListQuery, with_choices: bool = True) -> dict:
    rows, total = _run(store, [_page_sql(q, LIST_COLUMNS, q.limit, q.offset), _count_sql(q)])
    return {"rows": _rows(rows), "total": int(total.column(0)[0].as_py()),
            "choices": choices(store) if with_choices else {}}


def _text_reads(store, located: list[dict]) -> list[tuple[str, None]]:
    """One statement reading the text at these rows, a branch per shard file (DuckDB skips the row groups it need not read)."""
    by_shard: dict[str, list[int]] = {}
    for r in located:
        if r.get("row") is not None:
            by_shard.setdefault(r["shard"], []).append(int(r["row"]))
    parts = []
    for shard, rows in sorted(by_shard.items()):
        path = store.shard_dir / f"{shard}.parquet"
        if not shard_io.looks_complete(path):
            continue
        parts.append(f"""SELECT {literal(shard)} AS shard, file_row_number AS row, text
                        FROM read_parquet({literal(str(path.resolve()))}, file_row_number = true)
                        WHERE file_row_number IN ({', '.join(str(r) for r in sorted(set(rows)))})""")
    return [(" UNION ALL ".join(parts), None)] if parts else []


def _texts_from(results: list[pa.Table], located: list[dict]) -> dict[str, str | None]:
    found = {(r["shard"], r["row"]): r["text"] for t in results for r in _rows(t)}
    return {r["id"]: found.get((r.get("shard"), r.get("row"))) for r in located}


_ROW = f"CASE WHEN s.skey >= 0 THEN s.skey % {1 << keys.ROW_BITS} END"


def trace(store, sample_id: str, listing: ListQuery | None = None, position: int = 0) -> dict | None:
    """One trace: the `traces` row (problem and features included), every verdict, and the text.
    With `listing`: also `neighbours`, the ids either side of `position` in that listing (None at either end)."""
    cols = ", ".join(f"{_col(c)} AS {c}" for c in TRACE_COLUMNS)
    stmts = [
        (f"""SELECT {cols}, s.shard, {_ROW} AS row, s.skey FROM sample_rows s LEFT JOIN problem_rows p ON p.pkey = s.pkey
             WHERE s.id = $id""", {"id": sample_id}),
    ]
    if listing is not None:
        start = max(0, position - 1)
        stmts.append(_page_sql(listing, ("id",), 3 if position > 0 else 2, start))

    def then(out: list[pa.Table]) -> list:
        if not out[0].num_rows:
            return []
        r = _rows(out[0])[0]
        return [("""SELECT sample_id, verifier, version, status, score, answer, reason, duration_s, created_at
                    FROM verdict_rows WHERE skey = $skey AND sample_id = $id ORDER BY created_at DESC, verifier, version""",
                 {"skey": r["skey"], "id": sample_id}), *_text_reads(store, [r])]

    out = _run(store, stmts, then, files=True)
    if not out[0].num_rows:
        return None
    row = _rows(out[0])[0]
    first_extra = 2 if listing is not None else 1
    t = {k: v for k, v in row.items() if k not in ("shard", "row", "skey")}
    t["verdicts"] = _rows(out[first_extra])
    t["text"] = _texts_from(out[first_extra + 1:], [{**row, "id": sample_id}]).get(sample_id)
    if listing is not None:
        ids = out[1].column(0).to_pylist()
        if position == 0:
            ids = [None, *ids]
        t["neighbours"] = (ids[0] if len(ids) > 0 else None, ids[2] if len(ids) > 2 else None)
    return t


def problem_traces(store, problem_id: str, limit: int = 200) -> dict | None:
    """A problem and up to `limit` of its traces (latest verdict with its answer and reason, features, text)."""
    def then(out: list[pa.Table]) -> list:
        return _text_reads(store, _rows(out[1]))

    out = _run(store, [
        ("SELECT * FROM problems WHERE id = $id", {"id": problem_id}),
        (f"""SELECT s.id, s.model, s.backend, s.sample_index, s.finish_reason, s.completion_tokens, s.thinking_tokens,
                    s.text_chars, s.answer_chars, s.truncated, s.backtrack_count, s.repetition_score, s.v_status AS status,
                    s.v_verifier AS verifier, v.answer, v.reason, s.shard, {_ROW} AS row
             FROM sample_rows s LEFT JOIN verdict_rows v ON v.skey = s.skey AND v.verifier = s.v_verifier
                  AND v.version = s.v_version
             WHERE s.pkey = (SELECT pkey FROM problem_rows WHERE id = $id)
             ORDER BY s.v_status = 'correct' DESC, s.v_status NULLS LAST, s.model, s.sample_index, s.id
             LIMIT {int(limit)}""", {"id": problem_id}),
    ], then, files=True)
    if not out[0].num_rows:
        return None
    traces = _rows(out[1])
    texts = _texts_from(out[2:], traces)
    for t in traces:
        t["text"] = texts.get(t["id"])
        del t["shard"], t["row"]
    return {"problem": _rows(out[0])[0], "traces": traces}


def _grid_filter(suite: str | None) -> str:
    return "WHERE run = $run AND benchmark = $bench" + (" AND suite = $suite" if suite else "")


def eval_runs(store) -> list[dict]:
    """(run, run_id, suite, benchmark, settings_hash) of every planned evaluation, with its steps and size; runs
    sharing a name apart, newest first (run_id '' for samples no scored row names a training run for)."""
    (t,) = _run(store, [(f"""{eval_ids()}
                            SELECT e.run, coalesce(i.run_id, '') AS run_id, e.suite, e.benchmark, e.settings_hash,
                                   list(DISTINCT e.step ORDER BY e.step) AS steps, count(DISTINCT e.problem_id) AS problems,
                                   count(*) AS samples, coalesce(max(i.scored_at), max(e.created_at)) AS evaluated_at
                            FROM eval_samples e {EVAL_IDS_JOIN} GROUP BY ALL
                            ORDER BY e.run, e.suite, e.benchmark, evaluated_at DESC, run_id, e.settings_hash""", None)])
    return _rows(t)


def eval_run_ids(store, run: str, benchmark: str, suite: str | None = None) -> list[dict]:
    """The training runs evaluated under this run name on this benchmark, newest first: run_id ('' for samples
    without one), when it was last scored (or planned), its steps and planned samples."""
    params = {"run": run, "bench": benchmark, **({"suite": suite} if suite else {})}
    (t,) = _run(store, [(f"""{eval_ids(_grid_filter(suite))}
                            SELECT coalesce(i.run_id, '') AS run_id, list(DISTINCT e.step ORDER BY e.step) AS steps,
                                   count(*) AS samples, coalesce(max(i.scored_at), max(e.created_at)) AS evaluated_at
                            FROM eval_samples e {EVAL_IDS_JOIN}
                            WHERE e.run = $run AND e.benchmark = $bench{' AND e.suite = $suite' if suite else ''}
                            GROUP BY ALL ORDER BY evaluated_at DESC, run_id""", params)])
    return _rows(t)


def _grid(cells: list[dict], only: str, offset: int, limit: int) -> dict:
    steps: dict = {}
    by_problem: dict[str, list[dict]] = {}
    for c in cells:
        a = steps.setdefault(c["step"], {"step": c["step"], "checkpoint": c["checkpoint"], "samples": 0, "correct": 0})
        a["samples"] += 1
        a["correct"] += c["status"] == "correct"
        by_problem.setdefault(c["problem_id"], []).append(c)
    first = min((k for k in steps if k is not None), default=None)

    def keep(cs: list[dict]) -> bool:
        if only == "changed":
            return len({c["status"] for c in cs}) > 1
        if only == "dip":
            return (any(c["status"] == "correct" and c["step"] == first for c in cs)
                    and any(c["status"] != "correct" and c["step"] is not None and first is not None and c["step"] > first
                            for c in cs))
        return True

    chosen = [pid for pid, cs in by_problem.items() if keep(cs)]
    return {"steps": steps, "by_problem": by_problem, "chosen": chosen, "page": chosen[offset: offset + limit]}


def eval_grid(store, run: str, benchmark: str, suite: str | None = None, only: str = "", offset: int = 0,
              limit: int = 50, run_id: str | None = None) -> dict:
    """Per problem (a page of them) and checkpoint step: the planned samples' verdicts and extracted answers.

    `only`: "changed" keeps problems whose verdict differs between two steps, "dip" those right at the first
    step and wrong at a later one. `run_id`: only that training run's samples ('' those without a run id; None
    every sample under the name). Also returns the share correct per step over every problem. One statement
    reads the evaluation's cells (problems x steps x samples); the rest is arithmetic on them."""
    params = {"run": run, "bench": benchmark}
    if suite:
        params["suite"] = suite
    if run_id is not None:
        params["run_id"] = run_id
    state: dict = {}

    def then(out: list[pa.Table]) -> list:  # the page's prompts, on the same connection
        state.update(_grid(_rows(out[0]), only, offset, limit))
        return [("SELECT id, prompt FROM problems WHERE id IN (SELECT unnest($ids))", {"ids": state["page"]})]

    by_id = run_id is not None  # a run id only comes from joining the evaluation's scored rows
    out = _run(store, [(f"""{eval_ids(_grid_filter(suite)) if by_id else ''}
                            SELECT e.problem_id, e.step, e.checkpoint, e.sample_index, e.sample_id, s.v_status AS status,
                                   v.answer, s.completion_tokens, s.finish_reason
                            FROM eval_samples e LEFT JOIN sample_rows s ON s.id = e.sample_id
                            LEFT JOIN verdict_rows v ON v.skey = s.skey AND v.verifier = s.v_verifier AND v.version = s.v_version
                            {EVAL_IDS_JOIN if by_id else ''}
                            WHERE e.run = $run AND e.benchmark = $bench{' AND e.suite = $suite' if suite else ''}
                                  {"AND coalesce(i.run_id, '') = $run_id" if by_id else ''}
                            ORDER BY e.problem_id, e.step NULLS FIRST, e.sample_index""", params)], then)
    prompts = {r["id"]: r["prompt"] for r in _rows(out[1])}
    page, by_problem, steps = state["page"], state["by_problem"], state["steps"]
    chosen = state["chosen"]
    out_cells = [{**c, "prompt": prompts.get(pid)} for pid in page for c in by_problem[pid]]
    order = sorted(steps, key=lambda k: (k is not None, k if k is not None else 0))
    return {"steps": [steps[k] for k in order], "problems": page, "total": len(chosen), "cells": out_cells}


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
