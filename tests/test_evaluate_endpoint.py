"""`curate eval` against served models: an OpenAI-compatible endpoint as the target, and an LLM harm judge on
another endpoint rating answers 1-5 (attack success = share rated 5), both real HTTP servers on localhost."""
from __future__ import annotations

import json

from curate.generate.testserver import ServerState, TestServer
from curate.store import TraceStore
from curate.store.evals import read_evals
from tests.helpers import run_cli


def _judge(prompt: str, body: dict) -> tuple[str, str]:
    # the car prompt's answer is rated fully harmful, the others harmless; the judge's own self-test probe
    # (a lock-picking walkthrough vs a refusal) must be told apart as well
    harmful = "locked car" in prompt or "tension wrench" in prompt
    return ("#thereason: judged.\n#thescore: 5" if harmful else "#thereason: judged.\n#thescore: 1"), "stop"


def test_endpoint_target_with_a_harm_judge(tmp_path):
    store = tmp_path / "store"
    with TestServer() as model, TestServer(ServerState(respond=_judge)) as judge:
        base = ["eval", model.base_url, "--model", "served-model", "--suite", "smoke", "-b", "safety", "--store", str(store),
                "--no-progress", "--workers", "1"]
        r = run_cli(*base, "--judge", judge.base_url, "--judge-model", "judge", timeout=300)
        assert r.returncode == 0, r.stderr
        rows = read_evals(TraceStore(store), "kind = 'score'")
        assert [(x["run"], x["benchmark"], x["metric"]) for x in rows] == [("served-model", "safety", "asr")]
        assert abs(rows[0]["value"] - 100 / 3) < 1e-9 and rows[0]["complete"] and rows[0]["n_problems"] == 3
        verdicts = TraceStore(store).query("SELECT verifier, score FROM verdicts ORDER BY score").to_pylist()
        assert [(v["verifier"], v["score"]) for v in verdicts] == [("harm_judge", 1.0), ("harm_judge", 1.0), ("harm_judge", 5.0)]
        # the offline rule-based judge is a different setting: its rows sit beside the LLM judge's
        r = run_cli(*base, timeout=300)
        assert r.returncode == 0, r.stderr
        assert len({x["settings_hash"] for x in read_evals(TraceStore(store), "kind = 'score'")}) == 2


def test_judge_that_does_not_answer_stops_with_one_line_and_no_score(tmp_path):
    store = tmp_path / "store"
    with TestServer() as model, TestServer(ServerState(fault_rate=1.0)) as judge:
        r = run_cli("eval", model.base_url, "--model", "m", "--suite", "smoke", "-b", "safety", "--store", str(store),
                    "--judge", judge.base_url, "--judge-model", "judge", "--no-progress", "--workers", "1", timeout=300)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("error:") and "harm_judge" in r.stderr, r.stderr
    assert not [x for x in read_evals(TraceStore(store), "kind = 'score'") if x["value"] is not None]


def test_a_refused_prompt_marks_its_benchmark_incomplete_and_the_next_one_is_evaluated(tmp_path):
    store = tmp_path / "store"
    with TestServer(ServerState(fault_queue=["400"])) as model:
        r = run_cli("eval", model.base_url, "--model", "m", "--suite", "smoke", "-b", "humaneval", "-b", "safety",
                    "--store", str(store), "--no-progress", "--workers", "1", "--option", "concurrency=1", timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "humaneval: the server refused 1 samples (HTTP 400" in r.stderr and "refused again" in r.stderr, r.stderr
    rows = {x["benchmark"]: x for x in read_evals(TraceStore(store), "kind = 'score'")}
    assert set(rows) == {"humaneval", "safety"}  # the benchmark after the refusal was evaluated
    assert not rows["humaneval"]["complete"] and rows["humaneval"]["value"] is None
    details = json.loads(rows["humaneval"]["details"]) if isinstance(rows["humaneval"]["details"], str) else rows["humaneval"]["details"]
    assert details["refused"]["samples"] == 1 and "HTTP 400" in details["refused"]["reasons"][0]
    assert details["missing_samples"] == 1
    assert rows["safety"]["complete"] and rows["safety"]["value"] is not None
