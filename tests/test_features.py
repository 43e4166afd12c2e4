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


def test_bulk_paths_match_the_per_text_definitions(monkeypatch):
    """The Arrow-buffer repetition scan and the chunked, threaded feature pass give what the plain
    per-text functions give, on texts that loop, repeat by chance, mix scripts, or are short or empty."""
    from curate.store import shards

    texts = ["", None, "x" * 99, "ab" * 50, "<think>" + "wait, let me check. " * 120, "  \u00a0<think>never closed",
             "日本語のテキスト。" * 300 + "</think> done", "The answer is 7. " * 3 + "unrelated ending " + "q" * 60,
             "<think>" + "".join(f"step {i} hmm " for i in range(400)) + "</think>\\boxed{3}", "é" * 2500]
    texts = texts * 7
    table = pa.table({"text": pa.array(texts, pa.string()), "finish_reason": pa.array(["stop", "length"] * 35),
                      "completion_tokens": pa.array([None, 300] * 35, pa.int32())})
    assert features.repetition_scores(table.column("text")).to_pylist() == [features.repetition_score(t or "") for t in texts]
    whole = features.compute(table.column("text"), table.column("finish_reason"), table.column("completion_tokens"))
    monkeypatch.setattr(shards, "FEATURE_CHUNK_BYTES", 3000)
    chunked = shards.with_features(table)
    for name in features.NAMES:
        assert chunked.column(f"f_{name}").to_pylist() == whole.column(name).to_pylist(), name
    assert whole.column("repetition_score").to_pylist()[4] > 0.9 and whole.column("think_closed").to_pylist()[5] is False


def test_marker_counts_follow_the_case_insensitive_word_bounded_regex():
    """The marker counts equal RE2's count of the alternation regex (the engine that computed the values
    already stored): word boundaries, overlaps, case, and Unicode case folding (the Kelvin sign folds to k)."""
    import re

    import pyarrow.compute as pc

    texts = ["WAIT, wait... Wait!", "waiting awaits await_ wait_ wait1 hmmm hmm.", "Let me verify: verifying, verify.",
             "let me double-check; double check; Double-Check", "xlet me verify", "let me  check", "That's not right",
             "THAT\u2019S NOT RIGHT", "sanity checks", "éwait waité ñhmm", "I made a mista\u212ae",
             "on \u017fecond thought", "let me chec\u212a", "Plugging it back in and plugging this back", "wait" * 3, "", "日本語 wait 日本語",
             "on second thought but actually I made a mistake alternatively", "wait-wait'wait"]
    ascii_only = pc.equal(pc.binary_length(pa.array(texts)), pc.utf8_length(pa.array(texts)))
    backtrack, verify = features.marker_counts(pa.array(texts), ascii_only)
    for phrases, got in ((features.BACKTRACK_PHRASES, backtrack), (features.VERIFY_PHRASES, verify)):
        pattern = r"\b(" + "|".join(re.escape(p) for p in phrases) + r")\b"
        assert got.to_pylist() == pc.count_substring_regex(pa.array(texts), pattern, ignore_case=True).to_pylist()
    assert backtrack.to_pylist()[:3] == [3, 1, 0] and verify.to_pylist()[2:5] == [3, 3, 1]
    # The Kelvin sign and the long s fold to k and s inside a phrase; at its edge a non-ASCII letter is no
    # word character, so no word boundary follows it.
    assert backtrack.to_pylist()[10:12] == [1, 1] and verify.to_pylist()[12] == 0
