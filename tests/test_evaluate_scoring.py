"""Score rows from verdicts: every curate metric (avg@k, pass@k, maj@k, asr) keeps its per-problem values, so
`curate evals compare` pairs all of them; a real store and a real `python -m curate` process."""
from __future__ import annotations

import json
import random

import pytest

from curate.evaluate.runner import score_rows
from curate.evaluate.suite import Benchmark
from curate.store import TraceStore
from curate.store.evals import write_evals
from tests.helpers import run_cli

BENCH = Benchmark(name="math", task="math500", n=4, metrics=["avg", "pass@4", "maj@4"], verifier="math")


def _outcomes(rng: random.Random, p_correct: list[float]) -> list[dict]:
    out = []
    for i, p in enumerate(p_correct):
        for j in range(4):
            ok = rng.random() < p
            out.append({"problem_id": f"p{i:03d}", "sample_index": j, "sample_id": f"s{i}-{j}", "generated": True,
                        "status": "correct" if ok else "incorrect", "score": float(ok),
                        "answer": "42" if ok else rng.choice(["1", "2"]), "completion_tokens": 10, "finish_reason": "stop",
                        "text_chars": 40, "truncated": False, "repetition_score": 0.0, "backtrack_count": 0, "verify_count": 0})
    return out


def test_every_metric_keeps_per_problem_values_and_is_compared_paired(tmp_path):
    rng = random.Random(0)
    difficulty = [rng.random() for _ in range(60)]
    st = TraceStore(tmp_path / "st")
    rows = []
    for run, shift in (("a", 0.0), ("b", 0.15)):
        key = {"run": run, "checkpoint": "", "step": 10, "suite": "s", "benchmark": "math", "settings_hash": "h"}
        got = score_rows(_outcomes(rng, [min(1.0, d + shift) for d in difficulty]), BENCH, key,
                         {"model": run, "provenance": "curate"})
        for r in got:
            if r["kind"] == "score":  # the per-problem values average to the metric itself
                pp = r["details"]["per_problem"]
                assert len(pp) == 60 and 100 * sum(pp.values()) / 60 == pytest.approx(r["value"])
        rows += got
    write_evals(st, rows)
    r = run_cli("evals", "compare", "a", "b", "--store", str(st.path), "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert sorted(x["metric"] for x in rep["rows"]) == ["avg@4", "maj@4", "pass@4"]
    assert all(x["method"] == "paired bootstrap" and x["n_problems"] == 60 for x in rep["rows"])
    assert not any("unpaired" in n for n in rep["notes"])


def test_evals_table_uses_the_reports_headline_metric_says_which_and_csv_keeps_precision(tmp_path):
    st = TraceStore(tmp_path / "st")
    write_evals(st, [{"run": "r", "checkpoint": "", "step": 10, "suite": "s", "benchmark": "math", "metric": m, "value": v,
                      "settings_hash": "h", "provenance": "curate"} for m, v in (("maj@4", 55.5), ("pass@4", 71.23456))])
    r = run_cli("evals", "--store", str(st.path))
    assert r.returncode == 0, r.stderr
    assert "71.2" in r.stdout and "55.5" not in r.stdout  # pass@4 heads the column, as in the report
    assert "math pass@4" in r.stderr
    r = run_cli("evals", "--store", str(st.path), "--csv")
    assert r.stdout.splitlines()[1] == "r,10,s,71.23456"
    assert json.loads(run_cli("evals", "--store", str(st.path), "--json").stdout)[0]["math"] == 71.23456
