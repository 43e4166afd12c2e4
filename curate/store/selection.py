"""Named queries for training mixtures (curate.mix): recipe predicates in, compact Arrow tables out.

Everything heavy happens inside DuckDB over the store's views: candidate filtering, the per-problem
choice and the matching of incorrect traces by length bucket. Only one row per chosen problem comes
back, and trace text is read afterwards for just the rows a mixture keeps.

Randomness is a hash, not a generator: a candidate's key is md5(seed:problem_id:sample_id) and a
problem's rank is md5(seed:problem:problem_id), so the choice for one problem never depends on which
other problems are in the store, and the same store and seed give the same choice on every machine.
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

import pyarrow as pa

from curate.errors import ConfigError, QueryInterrupted, StoreError
from curate.store.sqlcheck import check_predicate

# per_problem mode -> (status filter, ORDER BY within a problem). `any` takes any trace, labelled or not.
_ORDER = {
    "one_random_correct": ("status = 'correct'", "k"),
    "all_correct": ("status = 'correct'", "k"),
    "shortest_correct": ("status = 'correct'", "tokens, k"),
    "longest_correct": ("status = 'correct'", "tokens DESC, k"),
    "any": ("true", "k"),
}
TEXT_BATCH = 50_000

def _store_query(store: Any, sql: str, params: Optional[list] = None) -> pa.Table:
    return store.query(sql, params)


def _check_one(store: Any, predicate: str, what: str, view: str) -> None:
    try:
        _store_query(store, f"SELECT 1 FROM {view} WHERE {check_predicate(predicate, view, what)} LIMIT 0")
    except Exception as e:  # the store wraps DuckDB's errors; keep its message, add ours
        msg = getattr(e, "message", None) or str(e)
        raise ConfigError(f"{what}: the predicate {predicate!r} fails on the `{view}` view: {msg}",
                          hint="`curate schema` lists the columns of every view") from None


def preflight(store: Any, predicates: list[tuple[str, str, str]]) -> int:
    """Check every recipe predicate (what, predicate, view) and count verdicts, in one query.

    Each is first checked to be one boolean expression over its view (sqlcheck.check_predicate, naming the
    field); only when the query fails are they run one by one, so the error names the bad one.
    Each store query opens a connection, so the common case pays for one."""
    wrapped = [check_predicate(pred, view, what) for what, pred, view in predicates]
    checks = "".join(f", (SELECT count(*) FROM (SELECT 1 FROM {view} WHERE {w} LIMIT 0)) AS c{i}"
                     for i, ((_, _, view), w) in enumerate(zip(predicates, wrapped)))
    try:
        t = _store_query(store, f"SELECT (SELECT count(*) FROM verdicts) AS n{checks}")
    except Exception:
        for what, pred, view in predicates:
            _check_one(store, pred, what, view)
        raise
    return int(t.column("n")[0].as_py())


def filter_sql(*, max_tokens: Optional[int], no_truncation: bool, has_answer: bool, think_closed: bool,
               max_repetition: Optional[float], strip_thinking: bool, where: Optional[str]) -> str:
    """The feature filters of a recipe as one predicate over `traces` (numbers inlined as literals)."""
    parts = ["true"]
    if max_tokens is not None:
        parts.append(f"coalesce(completion_tokens, 0) <= {int(max_tokens)}")
    if no_truncation:
        parts.append("finish_reason <> 'length' AND NOT coalesce(truncated, false)")
    if has_answer:
        parts.append("coalesce(boxed_count, 0) > 0")
    if think_closed:
        parts.append("coalesce(think_closed, false)")
    if max_repetition is not None:
        parts.append(f"coalesce(repetition_score, 0) <= {float(max_repetition)!r}")
    if strip_thinking:  # an unclosed think block has no summary to keep once the thinking is gone
        parts.append("(coalesce(thinking_chars, 0) = 0 OR coalesce(think_closed, false))")
    if where:
        parts.append(check_predicate(where, "traces", "filters.where"))
    return " AND ".join(parts)


def per_problem_choices(store: Any, *, where: str, filters: str, per_problem: str, seed: int,
                        bucket_ratio: float, want_incorrect: bool, require_incorrect: bool,
                        want_solution: bool = False, match_where: Optional[str] = None) -> pa.Table:
    """One row per chosen trace (several per problem for `all_correct`), ordered by problem rank.

    A problem's rank is a hash of the seed and its prompt key (md5 of the lower-cased, whitespace-collapsed
    prompt), not of its id, which includes the source: the same question imported from two pools ranks
    the same in both, so conditions with the same seed pick the same questions across teachers.

    Columns: problem_id, pk (problem rank key), sample_id, k, status, tokens (completion tokens, text
    chars // 4 when the store has no count), tokens_est (that estimate was used), bucket, source, domain,
    prompt, reference, and when want_incorrect: neg_id, neg_tokens, neg_tokens_est, neg_bucket (the verified-incorrect
    trace of the same problem closest in length bucket, null if none); when want_solution: solution, the
    reference short solution from the problem's metadata or, failing that, from another problem with the
    same prompt (a NuminaMath import beside a trace pool: the same questions under another source); when
    match_where: matched, whether the question (by prompt key) also has a correct train trace that passes
    the same filters and `match_where` (the pool of the condition this one is compared with).
    """
    status, order = _ORDER[per_problem]
    where = check_predicate(where, "traces", "where")
    if match_where is not None:
        match_where = check_predicate(match_where, "traces", "selection.same_questions_as")
    keep = "true" if per_problem == "all_correct" else "r = 1"
    ln_ratio = f"ln({float(bucket_ratio)!r})"
    neg_cte = neg_cols = neg_join = ""
    if want_incorrect or require_incorrect:
        neg_cte = """,
        neg AS (
            SELECT c.problem_id, i.sample_id AS neg_id, i.tokens AS neg_tokens, i.tokens_est AS neg_tokens_est, i.bucket AS neg_bucket,
                   row_number() OVER (PARTITION BY c.problem_id ORDER BY abs(i.bucket - c.bucket), i.k) AS nr
            FROM chosen c JOIN cand i ON i.problem_id = c.problem_id AND i.status = 'incorrect'
        )"""
        neg_cols = ", n.neg_id, n.neg_tokens, n.neg_tokens_est, n.neg_bucket"
        neg_join = "LEFT JOIN (SELECT * FROM neg WHERE nr = 1) n ON n.problem_id = c.problem_id"
    require = "AND n.neg_id IS NOT NULL" if require_incorrect else ""
    sol_cols = sol_join = ""
    if want_solution:
        sol_cols = ", coalesce(json_extract_string(p.metadata, '$.solution'), ps.solution) AS solution"
        sol_join = """LEFT JOIN (
            SELECT prompt, min(json_extract_string(metadata, '$.solution')) AS solution FROM problems
            WHERE json_extract_string(metadata, '$.solution') IS NOT NULL GROUP BY prompt
        ) ps ON ps.prompt = p.prompt"""
    qkey = "md5(lower(regexp_replace(trim(prompt), '\\s+', ' ', 'g')))"
    match_cte = match_col = ""
    if match_where:
        match_cte = f""",
        matched AS (
            SELECT DISTINCT {qkey} AS qk FROM traces
            WHERE split = 'train' AND status = 'correct' AND ({match_where}) AND ({filters})
        )"""
        match_col = ", c.qk IN (SELECT qk FROM matched) AS matched"
    sql = f"""
        WITH cand AS (
            SELECT id AS sample_id, problem_id, status, {qkey} AS qk,
                   coalesce(completion_tokens, text_chars // 4, 0) AS tokens, completion_tokens IS NULL AS tokens_est,
                   CAST(floor(ln(greatest(coalesce(completion_tokens, text_chars // 4, 0), 1)) / {ln_ratio}) AS INTEGER) AS bucket,
                   md5(concat($seed, ':', problem_id, ':', id)) AS k
            FROM traces
            WHERE split = 'train' AND {where} AND (\n{filters}\n)
        ),
        ranked AS (
            SELECT *, row_number() OVER (PARTITION BY problem_id ORDER BY {order}) AS r
            FROM cand WHERE {status}
        ),
        chosen AS (SELECT * FROM ranked WHERE {keep}){neg_cte}{match_cte}
        SELECT c.problem_id, md5(concat($seed, ':problem:', c.qk)) AS pk, c.sample_id, c.k, c.status,
               c.tokens, c.tokens_est, c.bucket, p.source, p.domain, p.prompt, CAST(p.reference AS VARCHAR) AS reference{neg_cols}{sol_cols}{match_col}
        FROM chosen c JOIN problems p ON p.id = c.problem_id {neg_join} {sol_join}
        WHERE true {require}
        ORDER BY pk, c.problem_id, c.k
    """
    # `traces` joins trace text in only when a predicate names `text` (see store/views.py).
    try:
        return _store_query(store, sql, {"seed": str(seed)})
    except QueryInterrupted:
        raise
    except Exception as e:
        msg = getattr(e, "message", None) or str(e)
        raise StoreError(f"selecting candidates failed: {msg}") from None


def source_counts(store: Any, where: str, filters: str) -> dict:
    """What one recipe source's predicate finds, for naming why a mixture came up short: traces it matches
    (any split), of train problems, correct ones passing `filters`, incorrect ones (before and after
    `filters`), and the problem sources of its train traces."""
    where = check_predicate(where, "traces", "where")
    t = _store_query(store, f"""
        SELECT count(*) AS traces, count(*) FILTER (split = 'train') AS train,
               count(*) FILTER (split = 'train' AND status = 'correct' AND ({filters})) AS correct,
               count(*) FILTER (split = 'train' AND status = 'incorrect') AS incorrect,
               count(*) FILTER (split = 'train' AND status = 'incorrect' AND ({filters})) AS incorrect_kept,
               list(DISTINCT source ORDER BY source) FILTER (split = 'train') AS sources
        FROM traces WHERE {where}
    """)
    row = t.to_pylist()[0]
    row["sources"] = row["sources"] or []
    return row


def train_inventory(store: Any, limit: int = 5) -> list[dict]:
    """The most common (source, model) pairs among train-split traces, with counts: what a predicate could match."""
    t = _store_query(store, f"""
        SELECT source, model, count(*) AS traces FROM traces WHERE split = 'train'
        GROUP BY ALL ORDER BY traces DESC, source, model LIMIT {int(limit)}
    """)
    return t.to_pylist()


def texts(store: Any, sample_ids: Iterable[str]) -> dict[str, str]:
    """Trace text for these sample ids (batched; unknown ids are simply absent)."""
    ids = sorted(set(sample_ids))
    out: dict[str, str] = {}
    for i in range(0, len(ids), TEXT_BATCH):
        chunk = ids[i:i + TEXT_BATCH]
        # the store's `texts` view (sample_id, text) skips the verdict and feature joins of `traces`
        t = _store_query(store, "SELECT sample_id, text FROM texts WHERE sample_id IN (SELECT unnest($ids))", {"ids": chunk})
        out.update(zip(t.column("sample_id").to_pylist(), t.column("text").to_pylist()))
    return out


def eval_prompts(store: Any, where: Optional[str] = None) -> list[tuple[str, str, Optional[str]]]:
    """(benchmark, prompt, reference JSON) of every eval-split problem, in id order (the index must be built in a fixed order)."""
    pred = f"AND {check_predicate(where, 'problems', 'decontaminate.eval_where')}" if where else ""
    t = _store_query(store, f"SELECT source, prompt, CAST(reference AS VARCHAR) AS reference FROM problems WHERE split = 'eval' {pred} ORDER BY id")
    return list(zip(t.column("source").to_pylist(), t.column("prompt").to_pylist(), t.column("reference").to_pylist()))


def verifier_versions(store: Any, sample_ids: Iterable[str]) -> list[dict]:
    """Which verifier versions labelled these samples, and how many each."""
    ids = sorted(set(sample_ids))
    if not ids:
        return []
    t = _store_query(store, """
        SELECT verifier, version, count(DISTINCT sample_id) AS samples FROM verdicts
        WHERE sample_id IN (SELECT unnest($ids)) GROUP BY verifier, version ORDER BY verifier, version
    """, {"ids": ids})
    return t.to_pylist()
