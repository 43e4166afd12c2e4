"""Trace features computed at ingest: exact values on hand-written traces."""
from __future__ import annotations

import pyarrow as pa
import pytest

from curate import features


def compute(texts, finish=None, tokens=None):
    finish = finish or ["stop"] * len(texts)
    tok = pa.array(tokens, pa.int32()) if tokens is not None else None
    return features.compute(pa.array(texts, pa.string()), pa.array(finish), tok).to_pylist()


def test_thinking_and_answer_split_at_the_last_close_tag():
    text = "<think>Wait, 2+2=4. Let me check: yes.</think>So the answer is \\boxed{4}."
    [f] = compute([text], tokens=[40])
    answer = "So the answer is \\boxed{4}."
    assert f["answer_chars"] == len(answer)
    assert f["thinking_chars"] == len(text) - len(answer) - len("</think>")
    assert f["think_closed"] and not f["truncated"]
    assert f["boxed_count"] == 1 and f["backtrack_count"] == 1 and f["verify_count"] == 1
    assert f["thinking_tokens"] == round(40 * f["thinking_chars"] / len(text))
    [g] = compute(["a</think>b</think>final"])
    assert g["answer_chars"] == len("final")


def test_unclosed_truncated_trace_is_all_thinking():
    [f] = compute(["<think>I keep going and going"], finish=["length"])
    assert f["truncated"] and not f["think_closed"]
    assert f["answer_chars"] == 0 and f["thinking_chars"] == len("<think>I keep going and going")


def test_no_think_tags_means_all_answer_and_null_text_is_empty():
    [f, g] = compute(["Just \\boxed{1} and \\boxed{2}", None])
    assert f["thinking_chars"] == 0 and f["answer_chars"] == len("Just \\boxed{1} and \\boxed{2}") and f["boxed_count"] == 2
    assert g["text_chars"] == 0 and g["repetition_score"] == 0.0


def test_repetition_score_flags_loops_only():
    loop = "<think>Let me think. " + "I need to recompute the sum again. " * 100
    prose = "<think>" + " ".join(f"step {i} adds {i * 7 % 13} to the running total" for i in range(120))
    [f, g] = compute([loop, prose], finish=["length", "stop"])
    assert f["repetition_score"] > 0.9
    assert g["repetition_score"] < 0.05
    assert features.repetition_score("short") == 0.0


@pytest.mark.parametrize("text,lo,hi", [("plain english", 0.0, 0.0), ("中文数学推理", 0.99, 1.0), ("answer 答案", 0.15, 0.25)])
def test_non_ascii_ratio_estimates_language_mixing(text, lo, hi):
    [f] = compute([text])
    assert lo <= f["non_ascii_ratio"] <= hi


def test_strip_thinking_keeps_text_after_last_tag():
    assert features.strip_thinking("<think>a</think>b</think>c") == "c"
    assert features.strip_thinking("no tags") == "no tags"
