"""The SQL surface users query: view definitions and the one-line description of every column.

Views are TEMP views created on each connection, so they always match this code and can point at the
store's current directory (trace text lives in Parquet shards). `curate schema` prints VIEW_DOCS; the
README's schema table is generated from it and a test keeps the two equal.
"""
from __future__ import annotations

from curate.store import keys, lineage

VIEW_DOCS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "problems": ("One row per problem (content-hash id).", [
        ("id", "content hash of source, domain, prompt and reference"),
        ("source", "task or dataset the problem came from (countdown, math500, ...)"),
        ("domain", "math, code, game, science, logic, safety or general"),
        ("prompt", "the question as shown to the model, before any chat template"),
        ("reference", "JSON: gold answer, test cases or solver data"),
        ("metadata", "JSON: difficulty, seed, index, reference solution, ..."),
        ("split", "train or eval (eval problems are decontaminated against)"),
        ("created_at", "when the problem entered the store"),
    ]),
    "samples": ("One row per generated or imported trace (metadata; text is in `traces`).", [
        ("id", "hash of problem id, generator (backend, model, revision, params), sample index and seed"),
        ("problem_id", "the problem this trace answers"),
        ("backend", "vllm, openai, hf, synthetic or import"),
        ("model", "model name or path (for imports: the teacher, when known)"),
        ("revision", "model revision, when known"),
        ("params", "JSON: every sampling parameter used"),
        ("sample_index", "index of this sample among the samples of its problem"),
        ("seed", "sampling seed, when set"),
        ("finish_reason", "stop, length (truncated), error or unknown"),
        ("prompt_tokens", "prompt length in tokens, when known"),
        ("completion_tokens", "response length in tokens, when known"),
        ("teacher_logprob", "mean token log-probability under the teacher, when known"),
        ("teacher_entropy", "mean token entropy under the teacher, when known"),
        ("latency_s", "seconds the backend took for this sample, when measured"),
        ("run_id", "the generation or import run that wrote it"),
        ("created_at", "when the sample was committed"),
    ]),
    "verdicts": ("One row per (sample, verifier, version).", [
        ("sample_id", "the judged sample"),
        ("verifier", "verifier name (math, code, countdown, ...; import:* for labels that came with a dataset)"),
        ("version", "verifier version; a new version labels again"),
        ("status", "correct, incorrect, no_answer, timeout or error"),
        ("score", "verifier score in [0, 1]"),
        ("answer", "the extracted answer, when one was found"),
        ("reason", "short explanation"),
        ("duration_s", "seconds the verifier took"),
        ("created_at", "when the verdict was written"),
    ]),
    "features": ("Trace-health and behaviour columns computed at ingest (see curate/features.py).", [
        ("sample_id", "the sample"),
        ("text_chars", "characters in the trace"),
        ("thinking_chars", "characters before the last </think> (all of them when a <think> never closes)"),
        ("answer_chars", "characters after the last </think>"),
        ("thinking_tokens", "thinking tokens (completion tokens scaled by character share; chars/4 when unknown)"),
        ("think_closed", "a </think> tag occurs"),
        ("truncated", "finish_reason = length"),
        ("boxed_count", "number of \\boxed occurrences"),
        ("repetition_score", "0-1: share of the last 2,000 characters made of repeats of the ending (loops)"),
        ("backtrack_count", "markers such as wait, alternatively, hmm"),
        ("verify_count", "markers such as let me check, verify, double-check"),
        ("non_ascii_ratio", "estimated share of non-ASCII characters (language mixing)"),
    ]),
    "traces": ("samples joined with text, problem, features and the latest verdict: filter everything in one query (trace text is read only by queries that name `text`).", [
        ("id, problem_id, backend, model, ...", "every column of `samples`"),
        ("text", "the full trace text"),
        ("source, domain, prompt, reference, metadata, split", "the problem's columns"),
        ("text_chars, thinking_chars, ...", "every column of `features`"),
        ("status, score, verifier, verifier_version", "the most recent verdict (NULL when unlabeled)"),
    ]),
    "evals": ("One row per (run, checkpoint, step, suite, benchmark, metric, settings): scores and behaviour.", [
        ("run", "the evaluated run or condition (training run folder name, model id, or the name of imported results)"),
        ("checkpoint", "checkpoint folder, model id or endpoint that was evaluated (empty for imported results)"),
        ("step", "training step of the checkpoint (0 = the base model; NULL when unknown)"),
        ("suite", "evaluation suite (paper, math, countdown, smoke, a file's name, lm-eval, imported)"),
        ("benchmark", "benchmark name within the suite (math500, aime24, gpqa_diamond, hex_phi, ...)"),
        ("metric", "avg@k, pass@k, maj@k, asr (safety), or a behaviour metric (mean_tokens, p90_tokens, ...)"),
        ("kind", "score (the benchmark's metrics) or behaviour (response length, truncation, markers)"),
        ("value", "percent (0-100) for accuracies and rates, tokens or counts for behaviour; NULL when incomplete"),
        ("ci_low, ci_high", "95% bootstrap confidence interval over problems (same unit as value)"),
        ("n_problems, n_samples", "problems and judged samples behind the value"),
        ("complete", "every planned sample was generated and judged; an incomplete benchmark has no value"),
        ("settings_hash", "hash of the benchmark's settings incl. command-line overrides (a smoke run never mixes with a full one)"),
        ("model", "the `samples.model` of the eval traces (join `samples`/`traces` on it)"),
        ("run_id, config_hash", "lineage: the training run id and its config hash (from the checkpoint)"),
        ("mixture_fingerprint, recipe_hash, store_snapshot", "lineage: the training mixture, its recipe and the store it came from"),
        ("provenance", "curate (evaluated here), lm-eval, or imported:FILE"),
        ("details", "JSON: per-status counts, missing samples, settings, lm-eval task versions, ..."),
        ("created_at", "when the row was written (a re-evaluation replaces it)"),
    ]),
    "eval_samples": ("Which stored samples an evaluation planned: one row per (sample, run, checkpoint, benchmark).", [
        ("sample_id", "the planned sample (present in `samples` once generated)"),
        ("problem_id", "its problem"),
        ("sample_index", "index among the k samples of the problem"),
        ("run, checkpoint, step, suite, benchmark, settings_hash", "as in `evals`"),
        ("created_at", "when it was planned"),
    ]),
    "lineage": lineage.VIEW_DOC,
}

def schema_markdown() -> str:
    """The README's schema table, generated so it cannot drift from the views."""
    lines = ["| view | column | description |", "|---|---|---|"]
    for view, (desc, cols) in VIEW_DOCS.items():
        lines.append(f"| **{view}** | | {desc} |")
        lines += [f"| | `{c}` | {d.replace('|', '/')} |" for c, d in cols]
    return "\n".join(lines) + "\n"


SAMPLE_COLUMNS = [c for c, _ in VIEW_DOCS["samples"][1] if c != "created_at"]
PROBLEM_COLUMNS = ("source", "domain", "prompt", "reference", "metadata", "split")


def create_views(con, shard_files: list[str], names: set[str] | None = None) -> None:
    """(Re)create the temp views on this connection; `shard_files` are the readable committed shards.

    `names` are the column names a query mentions (sqlcheck.referenced_names), None when unknown. `traces`
    then joins in the problem and the text only when the query names one of their columns: both are LEFT
    JOINs on a unique key, so leaving out an unnamed one never changes an answer, and a count or group-by
    over `traces` reads no trace text. DuckDB cannot drop those joins itself (nothing tells it the keys are
    unique), and the text join alone costs seconds at 10M traces."""
    feats = ", ".join(keys.FEATURE_COLUMNS)
    con.execute(f"CREATE OR REPLACE TEMP VIEW problems AS SELECT id, {', '.join(PROBLEM_COLUMNS)}, created_at FROM problem_rows")
    con.execute(f"CREATE OR REPLACE TEMP VIEW samples AS SELECT {', '.join(SAMPLE_COLUMNS)}, created_at FROM sample_rows")
    con.execute(f"CREATE OR REPLACE TEMP VIEW verdicts AS SELECT {', '.join(keys.VERDICT_COLUMNS)}, created_at FROM verdict_rows")
    con.execute(f"CREATE OR REPLACE TEMP VIEW features AS SELECT id AS sample_id, {feats} FROM sample_rows")
    con.execute("CREATE OR REPLACE TEMP VIEW evals AS SELECT * FROM eval_rows")
    con.execute("CREATE OR REPLACE TEMP VIEW eval_samples AS SELECT * FROM eval_sample_rows")
    lineage.create_lineage_view(con)
    if shard_files:
        # Files are listed in shard_no order; file_index is the position in this list (a missing shard is
        # left out of it), so the list of numbers maps a position back to its shard.
        listed = sorted(shard_files, key=lambda f: f[1])
        files = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f, _ in listed) + "]"
        numbers = "[" + ", ".join(str(int(n)) for _, n in listed) + "]"
        con.execute(
            f"""CREATE OR REPLACE TEMP VIEW shard_texts AS
            SELECT {keys.position_key(numbers + '[file_index::BIGINT + 1]', 'file_row_number')} AS skey, text
            FROM read_parquet({files}, file_row_number = true)"""
        )
    else:
        con.execute("CREATE OR REPLACE TEMP VIEW shard_texts AS SELECT NULL::BIGINT AS skey, NULL::VARCHAR AS text WHERE false")
    con.execute("""CREATE OR REPLACE TEMP VIEW texts AS SELECT s.id AS sample_id, t.text FROM shard_texts t
        JOIN sample_rows s ON s.skey = t.skey""")
    con.execute("""CREATE OR REPLACE TEMP VIEW latest_verdicts AS SELECT id AS sample_id, v_status AS status,
        v_score AS score, v_verifier AS verifier, v_version AS version FROM sample_rows WHERE v_status IS NOT NULL""")
    text = names is None or "text" in names
    problem = names is None or not names.isdisjoint(PROBLEM_COLUMNS)
    scols = ", ".join(f"s.{c}" for c in SAMPLE_COLUMNS)
    pcols = ", ".join(f"p.{c}" for c in PROBLEM_COLUMNS)
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW traces AS
        SELECT {scols}, s.created_at{', t.text' if text else ''}{', ' + pcols if problem else ''},
               {', '.join('s.' + c for c in keys.FEATURE_COLUMNS)}, s.v_status AS status, s.v_score AS score,
               s.v_verifier AS verifier, s.v_version AS verifier_version
        FROM sample_rows s
        {'LEFT JOIN shard_texts t ON t.skey = s.skey' if text else ''}
        {'LEFT JOIN problem_rows p ON p.pkey = s.pkey' if problem else ''}"""
    )
