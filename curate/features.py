"""Trace-health and behaviour features, computed once per sample at ingest (the `features` view).

Vectorised over an Arrow column of texts (pyarrow compute kernels; polars for character counts, regex counts
and the repeating-ending search), so the producer that writes a shard pays for them in bulk and the single
committing writer only copies numbers.

Columns:
- text_chars, thinking_chars (before the last `</think>`), answer_chars (after it)
- thinking_tokens: the completion token count scaled by thinking's share of characters when the backend
  reported tokens, else characters / 4. An estimate: exact counts need the generating tokenizer.
- think_closed: a `</think>` occurs; truncated: finish_reason == "length"
- boxed_count: occurrences of `\\boxed`
- repetition_score in [0, 1]: the share of the last 2,000 characters covered by extra copies of the trace's
  final repeating unit (the stretch between the last two occurrences of its final 50 characters). A text
  stuck in a loop scores near 1; prose scores 0. Known issue: loops with a period over ~1,000 characters
  fit fewer than two copies in the window and score low.
- backtrack_count / verify_count: case-insensitive counts of marker phrases ("wait", "alternatively",
  "let me check", ...) standing as whole words
- non_ascii_ratio: estimated share of non-ASCII characters, (UTF-8 bytes - chars) / (2 * chars): exact for CJK,
  half the true share for 2-byte scripts. A language-mixing signal for English prompts.
"""
from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

THINK_CLOSE = "</think>"
# Marker phrases, in the order a regex alternation tries them. A count is the number of leftmost-first,
# non-overlapping matches of `\b(phrase|phrase|...)\b`, case-insensitive, with ASCII word boundaries. These
# are RE2's rules too, so counts stored when RE2 computed them (pyarrow) stay comparable; a test checks both.
BACKTRACK_PHRASES = ("wait", "alternatively", "hmm", "let me reconsider", "on second thought", "but actually",
                     "i made a mistake", "that's not right")
VERIFY_PHRASES = ("let me check", "let me verify", "let me double-check", "let me double check", "let me confirm",
                  "double-check", "double check", "sanity check", "verify", "verifying", "plugging it back",
                  "plugging this back")
TAIL, NEEDLE = 2000, 50
OPENS_THINKING = r"^[\s\x0B\x{85}\p{Z}]*<think>"  # what utf8_ltrim_whitespace would strip, then the tag

SCHEMA = pa.schema(
    [
        ("text_chars", pa.int32()),
        ("thinking_chars", pa.int32()),
        ("answer_chars", pa.int32()),
        ("thinking_tokens", pa.int32()),
        ("think_closed", pa.bool_()),
        ("truncated", pa.bool_()),
        ("boxed_count", pa.int32()),
        ("repetition_score", pa.float64()),
        ("backtrack_count", pa.int32()),
        ("verify_count", pa.int32()),
        ("non_ascii_ratio", pa.float64()),
    ]
)
NAMES = SCHEMA.names


def strip_thinking(text: str) -> str:
    """Everything after the last `</think>` (the whole text when there is none), as the study scores answers."""
    i = text.rfind(THINK_CLOSE)
    return text if i < 0 else text[i + len(THINK_CLOSE) :]


def repetition_score(text: str) -> float:
    tail = text[-TAIL:]
    if len(tail) < 2 * NEEDLE:
        return 0.0
    prev = tail.rfind(tail[-NEEDLE:], 0, len(tail) - 1)  # the closest earlier copy of the ending (may overlap it)
    if prev < 0:
        return 0.0
    period = len(tail) - NEEDLE - prev
    copies = tail.count(tail[-period:])  # whole repeats of the final unit; 1 means it never repeats
    return min(1.0, (copies - 1) * period / len(tail))


def repetition_scores(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """repetition_score of each text, without turning every text into a Python string.

    A text scores above 0 exactly when the final NEEDLE characters of its last TAIL occur earlier within
    them. Polars finds those texts (outside the GIL, so chunks on other threads keep running); only they
    are decoded and scored."""
    import polars as pl

    texts = _as_texts(texts)
    tails = _series(texts)
    longer = np.flatnonzero(np.asarray(pc.greater(pc.binary_length(texts), TAIL)))  # a shorter text is its own tail
    if len(longer):
        tails = tails.scatter(longer, tails.gather(longer).str.slice(-TAIL))
    frame = pl.DataFrame({"tail": tails})
    frame = frame.with_columns(needle=pl.col("tail").str.slice(-NEEDLE))
    tail, needle = pl.col("tail"), pl.col("needle")
    found = frame.select(
        (tail.str.len_chars() >= 2 * NEEDLE) & (tail.str.find(needle, literal=True) < tail.str.len_bytes() - needle.str.len_bytes())
    ).to_series().to_numpy()
    out = np.zeros(len(texts))
    for i in np.flatnonzero(found):
        out[i] = repetition_score(texts[int(i)].as_py())
    return pa.array(out, pa.float64())


def _as_texts(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One array of texts, nulls as empty strings."""
    texts = pc.fill_null(texts, "") if texts.null_count else texts
    return texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts


def _series(arr: pa.Array):
    import polars as pl  # imported on first use: it costs ~0.2 s, which commands that compute nothing skip

    return pl.from_arrow(arr)


def _char_lengths(texts: pa.Array) -> pa.Array:
    """Characters per text (polars counts UTF-8 ~5x faster than pyarrow's utf8_length)."""
    return _series(texts).str.len_chars().to_arrow()


def _marker_regex(phrases: tuple[str, ...], ignore_case: bool) -> str:
    assert all(re.fullmatch(r"[a-z][a-z' -]*[a-z]", p) for p in phrases), "phrases must need no escaping"
    return ("(?i)" if ignore_case else "") + r"(?-u:\b)(?:" + "|".join(phrases) + r")(?-u:\b)"


def marker_counts(texts: pa.Array, ascii_only: pa.Array) -> tuple[pa.Array, pa.Array]:
    """backtrack_count and verify_count of each text.

    Counted by polars (Rust's regex engine, ~2.5x faster than RE2 here on marker-dense text). On an all-ASCII
    text, folding case first and matching case-sensitively gives exactly the case-insensitive count; other
    texts keep the case-insensitive match, where Unicode folding also lets `k` match the Kelvin sign."""
    lowered = _series(pc.ascii_lower(texts))
    others = np.flatnonzero(~np.asarray(ascii_only, dtype=bool))
    out = []
    for phrases in (BACKTRACK_PHRASES, VERIFY_PHRASES):
        counts = lowered.str.count_matches(_marker_regex(phrases, ignore_case=False)).to_numpy().copy()
        if len(others):
            folded = lowered.gather(others).str.count_matches(_marker_regex(phrases, ignore_case=True))
            counts[others] = folded.to_numpy()
        out.append(pa.array(counts, pa.int32()))
    return out[0], out[1]


def compute(texts: pa.Array | pa.ChunkedArray, finish_reason: pa.Array | pa.ChunkedArray, completion_tokens=None) -> pa.Table:
    """Feature columns for each text, in input order (nulls count as empty text)."""
    texts = _as_texts(texts)
    # Thinking = before the last </think>: split once from the right (also tells whether the tag occurs).
    # Lengths come from the split's flat values, so no part is copied out as a string of its own.
    parts = pc.split_pattern(texts, THINK_CLOSE, max_splits=1, reverse=True)
    closed = pc.greater(pc.list_value_length(parts), 1)
    lengths = _char_lengths(parts.values)
    first = parts.offsets[:-1]
    before = lengths.take(first)
    after = lengths.take(pc.if_else(closed, pc.add(first, 1), first))
    chars = pc.if_else(closed, pc.add(pc.add(before, after), len(THINK_CLOSE)), before)
    thinking_chars = pc.if_else(closed, before, 0)
    answer_chars = pc.if_else(closed, after, chars)
    # An unclosed <think> (a truncated trace) is all thinking.
    unclosed = pc.and_(pc.invert(closed), pc.match_substring_regex(texts, OPENS_THINKING))
    thinking_chars = pc.if_else(unclosed, chars, thinking_chars)
    answer_chars = pc.if_else(unclosed, 0, answer_chars)
    share = pc.divide(pc.cast(thinking_chars, pa.float64()), pc.max_element_wise(pc.cast(chars, pa.float64()), 1.0))
    if completion_tokens is not None:
        tok = pc.cast(completion_tokens, pa.float64())
        est = pc.if_else(pc.is_null(tok), pc.divide(pc.cast(thinking_chars, pa.float64()), 4.0), pc.multiply(share, tok))
    else:
        est = pc.divide(pc.cast(thinking_chars, pa.float64()), 4.0)
    thinking_tokens = pc.cast(pc.round(est), pa.int32())
    # Extra UTF-8 bytes per character, halved: exact for CJK (3 bytes), half the share for 2-byte scripts.
    extra = pc.cast(pc.subtract(pc.binary_length(texts), chars), pa.float64())
    non_ascii_ratio = pc.min_element_wise(pc.divide(extra, pc.multiply(pc.max_element_wise(pc.cast(chars, pa.float64()), 1.0), 2.0)), 1.0)
    cols = [
        chars,
        thinking_chars,
        answer_chars,
        thinking_tokens,
        closed,
        pc.fill_null(pc.equal(finish_reason, "length"), False),
        _series(texts).str.count_matches(r"\\boxed").to_arrow(),
        repetition_scores(texts),
        *marker_counts(texts, pc.equal(pc.binary_length(texts), chars)),
        non_ascii_ratio,
    ]
    return pa.Table.from_arrays([pc.cast(c, f.type) for c, f in zip(cols, SCHEMA)], schema=SCHEMA)
