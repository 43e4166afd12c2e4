"""Named queries behind `curate report` and `curate evals compare`, so their SQL stays inside curate/store.

- eval_curves: score and behaviour rows of `evals` without the bulky `details` JSON (newest row first per key).
- verdict_rates: per problem source and teacher model, traces by latest verdict status, length and truncation;
  traces planned by an evaluation are left out (their scores are in `evals`); it avoids the `traces` view so
  no trace text (Parquet) is read.
- run_records: what a study recorded about each run (condition, base model, seed, run folder, mixture manifest),
  with its training run id and when it was recorded, oldest first.
- eval_settings: per run, training run id, suite, benchmark and settings: problems, samples, the benchmark's
  settings (details.settings: n, limit, sampling) and the newest checkpoint path (to find a run folder without
  a study).
- eval_sample_stats: per evaluation (run, training run id, step, suite, benchmark, settings), over its generated
  samples: count, mean and spread of response tokens, spread of the trace markers (backtracks, verifications,
  repetition), share cut at max_tokens, and the generation backends. Planned samples carry no run id: it comes
  from the score rows of the same (run, checkpoint, step, suite, benchmark, settings), so two training runs
  sharing a name (different checkpoints) keep their samples apart.
"""
from __future__ import annotations

from curate.store.evals import EVAL_IDS_JOIN, eval_ids

CURVE_COLUMNS = ("run", "run_id", "checkpoint", "step", "suite", "benchmark", "metric", "kind", "value", "ci_low", "ci_high",
                 "n_problems", "n_samples", "complete", "settings_hash", "provenance", "created_at")


def eval_curves(store) -> list[dict]:
    q = f"SELECT {', '.join(CURVE_COLUMNS)} FROM evals"
    q += " ORDER BY run, run_id NULLS FIRST, suite, benchmark, kind, metric, settings_hash, step NULLS LAST, created_at DESC"
    return store.query(q).to_pylist()


# Traces an evaluation planned are scored in `evals`; the verdict section is about the traces data is made of.
NOT_EVAL = "NOT EXISTS (SELECT 1 FROM eval_samples e WHERE e.sample_id = s.id)"


def has_samples(store) -> bool:
    return bool(store.query(f"SELECT count(*) > 0 AS n FROM samples s WHERE {NOT_EVAL}").column(0)[0].as_py())


def verdict_rates(store) -> list[dict]:
    return store.query(
        f"""SELECT p.source, coalesce(s.model, '(unknown)') AS model, count(*) AS traces,
                  count(*) FILTER (v.status = 'correct') AS correct,
                  count(*) FILTER (v.status = 'incorrect') AS incorrect,
                  count(*) FILTER (v.status = 'no_answer') AS no_answer,
                  count(*) FILTER (v.status = 'timeout') AS timeout,
                  count(*) FILTER (v.status = 'error') AS error,
                  count(*) FILTER (v.status IS NULL) AS unlabeled,
                  round(avg(s.completion_tokens), 1) AS mean_tokens,
                  round(100.0 * avg(CASE WHEN s.finish_reason = 'length' THEN 1 ELSE 0 END), 2) AS truncation_rate
           FROM samples s
           JOIN problems p ON p.id = s.problem_id
           LEFT JOIN latest_verdicts v ON v.sample_id = s.id
           WHERE {NOT_EVAL}
           GROUP BY ALL ORDER BY p.source, model"""
    ).to_pylist()


def run_records(store) -> list[dict]:
    return store.query("SELECT run, run_id, study, condition, base_model, seed, run_dir, train_config, manifest, recipe_file, "
                       "recorded_at FROM study_run_rows ORDER BY run, recorded_at, run_id").to_pylist()


def eval_settings(store) -> list[dict]:
    return store.query(
        """SELECT run, run_id, suite, benchmark, settings_hash, max(n_problems) AS n_problems, max(n_samples) AS n_samples,
                  arg_max(json_extract(details, '$.settings')::VARCHAR, created_at) AS settings,
                  arg_max(checkpoint, coalesce(step, -1)) AS checkpoint, any_value(provenance) AS provenance
           FROM evals WHERE kind = 'score' GROUP BY ALL ORDER BY run, run_id NULLS FIRST, suite, benchmark, settings_hash"""
    ).to_pylist()


def eval_sample_stats(store) -> list[dict]:
    return store.query(
        f"""{eval_ids()}
           SELECT e.run, i.run_id, e.step, e.suite, e.benchmark, e.settings_hash, count(*) AS n,
                  avg(coalesce(s.completion_tokens, f.text_chars / 4)) AS mean_tokens,
                  stddev_samp(coalesce(s.completion_tokens, f.text_chars / 4)) AS sd_tokens,
                  avg(CASE WHEN s.finish_reason = 'length' OR coalesce(f.truncated, false) THEN 1.0 ELSE 0.0 END) AS truncated,
                  stddev_samp(f.backtrack_count) AS sd_backtracks, stddev_samp(f.verify_count) AS sd_verifications,
                  stddev_samp(f.repetition_score) AS sd_repetition,
                  string_agg(DISTINCT s.backend, ', ' ORDER BY s.backend) AS backends
           FROM eval_samples e JOIN samples s ON s.id = e.sample_id LEFT JOIN features f ON f.sample_id = s.id
           {EVAL_IDS_JOIN}
           GROUP BY ALL ORDER BY e.run, i.run_id NULLS FIRST, e.step, e.benchmark"""
    ).to_pylist()
