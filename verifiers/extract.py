"""Answer extraction shared by every verifier: strip the thinking, then find the final answer.

The study scores only what follows the last `</think>` (docs/paper.md, evaluation setup), so every verifier calls
`strip_thinking` first. A response that opens `<think>` and never closes it (a truncated trace) has no
answer at all: `strip_thinking` returns "" for it rather than scoring a guess buried in the reasoning.

Test: `python -m pytest -q tests/test_verifiers_core.py`.
"""
from __future__ import annotations

import re

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*")
_BARE_TOKEN_RE = re.compile(r"[^\s$]+")
_FENCE_RE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+\-.]*)[ \t]*$", re.MULTILINE)
_PYTHON_TAGS = ("python", "py", "python3")


def strip_thinking(text: str) -> str:
    """Everything after the last `</think>`; "" when a `<think>` was opened and never closed."""
    if not text:
        return ""
    idx = text.rfind(THINK_CLOSE)
    if idx >= 0:
        return text[idx + len(THINK_CLOSE):]
    if THINK_OPEN in text:
        return ""
    return text


def boxed_contents(text: str) -> list[str]:
    """The contents of every `\\boxed{...}` / `\\fbox{...}` (braces matched), in order; also `\\boxed 5`."""
    out: list[str] = []
    pos = 0
    while True:
        m = _BOXED_RE.search(text, pos)
        if not m:
            return out
        i = m.end()
        if i < len(text) and text[i] == "{":
            depth, j = 0, i
            while j < len(text):
                c = text[j]
                if c == "\\":  # skip escaped characters such as \{ and \}
                    j += 2
                    continue
                if c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if depth != 0:  # unbalanced: the trace was cut inside the box
                return out
            out.append(text[i + 1 : j].strip())
            pos = j + 1
        else:  # `\boxed 5`: the token up to whitespace or `$`
            tok = _BARE_TOKEN_RE.match(text, i)  # matched in place: slicing text[i:] per box was quadratic
            if tok and m.group(0).endswith((" ", "\t")):
                out.append(tok.group(0).strip())
            pos = i


def last_tagged(text: str, tag: str = "answer") -> str | None:
    """The content of the last `<tag>...</tag>` (case-insensitive, across lines), or None: the same answer as
    `re.findall(r"<tag>(.*?)</tag>", text, re.DOTALL | re.IGNORECASE)[-1]` (reasoning-gym's rule), in one
    linear scan (that regex is quadratic on `"<answer>" * n`: each opening tag scans to the end)."""
    open_re = re.compile(re.escape(f"<{tag}>"), re.IGNORECASE)
    close_re = re.compile(re.escape(f"</{tag}>"), re.IGNORECASE)
    last, pos = None, 0
    while True:
        o = open_re.search(text, pos)
        if o is None:
            return last
        c = close_re.search(text, o.end())
        if c is None:  # no later opening tag can close either
            return last
        last, pos = text[o.end():c.start()], c.end()


def last_boxed(text: str) -> str | None:
    """The content of the last complete `\\boxed{}` in `text`, or None."""
    boxes = boxed_contents(text)
    return boxes[-1] if boxes else None


def last_code_block(text: str, languages: tuple[str, ...] = _PYTHON_TAGS) -> str | None:
    """The body of the last closed ``` block whose language tag is one of `languages` (the study's rule)."""
    blocks: list[str] = []
    fences = list(_FENCE_RE.finditer(text))
    i = 0
    while i < len(fences):
        opening = fences[i]
        if opening.group(1) and i + 1 < len(fences) and not fences[i + 1].group(1):
            if opening.group(1).lower() in languages:
                blocks.append(text[opening.end() + 1 : fences[i + 1].start()].rstrip("\n"))
            i += 2
        elif opening.group(1):  # an opening fence without a closing one: truncated, ignore
            i += 1
        else:  # a bare fence: opens an untagged block; skip its closing fence too
            i += 2
    return blocks[-1] if blocks else None


_ANSWER_LINE_RE = re.compile(r"(?:final\s+answer|answer)\s*(?:is)?\s*[:：]?\s*(.+)", re.IGNORECASE)


def answer_line(text: str) -> str | None:
    """The text after the last 'Answer:' / 'final answer is' marker, up to the end of its line."""
    matches = list(_ANSWER_LINE_RE.finditer(text))
    if not matches:
        return None
    return matches[-1].group(1).strip().splitlines()[0].strip() or None
