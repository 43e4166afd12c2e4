"""Countdown: does the boxed expression use the given numbers and hit the target?

Rules: integers, `+ - * /` and parentheses only, parsed with a whitelist grammar (never `eval`: a tiny
recursive-descent parser that can only build those nodes; `parse_expression` is the same whitelist over
Python's `ast`, kept as the reference the tests cross-check against); exact rational arithmetic, so `6/4*2 = 3` is exact and `7/2` is not 3; each given number used exactly once by
default (`use_all=False`: at most once). An equation inside the box (`(3+5)*3 = 24`, or `24 = (3+5)*3`) is
accepted only when its other side is the target as an integer: `(3+5)*3 = 25` is incorrect. Unary minus is
rejected by default (the game combines the given numbers with binary operations; `allow_unary=True` relaxes it).

Adversarial input is rejected before any arithmetic: `**`/`^` (power towers), literals over 12 digits, more
than 64 levels of nesting, expressions over 1,000 characters. Numbers are checked before evaluating, so the
arithmetic only ever sees the (few, small) given numbers and cannot blow up.

Problem data: reference {"numbers": [...], "target": N} (or the same keys in metadata), falling back to the
prompt's `Numbers: [..]` / `Target: N` lines. Answer: the last `\\boxed{}` after thinking, else `<answer>..</answer>`.
Test: `python -m pytest -q tests/test_verifiers_countdown.py`.
"""
from __future__ import annotations

import ast
import re
from collections import Counter
from fractions import Fraction
from typing import Any

from verifiers.base import Probe, ProbeProblem, Verifier, reference_field
from verifiers.extract import last_boxed, last_tagged, strip_thinking

MAX_CHARS = 1000
MAX_DIGITS = 12
MAX_DEPTH = 64

_NUMBERS_RE = re.compile(r"numbers\s*[:=]\s*\[([^\]]*)\]", re.IGNORECASE)
_TARGET_RE = re.compile(r"target\s*[:=]\s*(-?\d+)", re.IGNORECASE)
_LATEX_SUBS = [
    (re.compile(r"\\left|\\right|\\!|\\,|\\;|\\ |\$"), ""),
    (re.compile(r"\\times|\\cdot|×|·|∗"), "*"),
    (re.compile(r"\\div|÷|∕"), "/"),
    (re.compile(r"−|–"), "-"),
    (re.compile(r"\\\{|\\\}"), ""),
]
_FRAC_RE = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_ALLOWED_CHARS = re.compile(r"^[0-9+\-*/(). \t\n\[\]{}]*$")
_DIGIT_RUN_RE = re.compile(r"\d{%d,}" % (MAX_DIGITS + 1))


class Rejected(ValueError):
    """The expression breaks a rule; the message is the verdict's reason."""


def normalize(expr: str) -> str:
    """LaTeX and unicode operators to plain ASCII; drops a trailing `= N` (`(3+5)*3 = 24`) without judging N
    (`check_expression` does that through `split_equation`)."""
    s = expr.strip()
    for _ in range(8):  # \frac{a}{b} -> (a)/(b); bounded so nested fracs cannot loop forever
        new = _FRAC_RE.sub(r"(\1)/(\2)", s)
        if new == s:
            break
        s = new
    for pat, rep in _LATEX_SUBS:
        s = pat.sub(rep, s)
    if "=" in s:
        s = split_equation(s)[0]
    s = s.replace("[", "(").replace("]", ")").replace("{", "(").replace("}", ")")
    return s.strip()


_INT_RE = re.compile(r"\s*(-?\d{1,%d})\s*" % MAX_DIGITS)


def split_equation(expr: str) -> tuple[str, list[str]]:
    """(the expression, the other sides of `=`). `24 = (3+5)*3` puts the expression first."""
    parts = expr.split("=")
    if len(parts) > 1 and _INT_RE.fullmatch(parts[0]) and not _INT_RE.fullmatch(parts[-1]):
        parts = parts[::-1]
    return parts[0], parts[1:]


def parse_expression(expr: str, *, allow_unary: bool = False) -> tuple[ast.AST, list[int]]:
    """Check `expr` against the whitelist; returns its AST and the integer literals it uses, in order."""
    if len(expr) > MAX_CHARS:
        raise Rejected(f"expression longer than {MAX_CHARS} characters")
    if "**" in expr or "^" in expr:
        raise Rejected("exponentiation is not allowed")
    if not _ALLOWED_CHARS.match(expr):
        bad = sorted({c for c in expr if not _ALLOWED_CHARS.match(c)})[:5]
        raise Rejected(f"characters not allowed: {''.join(bad)!r}")
    if _DIGIT_RUN_RE.search(expr):
        raise Rejected(f"number literal longer than {MAX_DIGITS} digits")
    depth = deepest = 0
    for c in expr:
        if c == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif c == ")":
            depth -= 1
    if deepest > MAX_DEPTH:
        raise Rejected(f"nesting deeper than {MAX_DEPTH}")
    if "." in expr:
        raise Rejected("decimal literals are not allowed")
    try:
        tree = ast.parse(expr, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise Rejected(f"not a valid expression: {type(e).__name__}") from None
    used: list[int] = []
    _walk(tree.body, used, allow_unary, 0)
    return tree.body, used


def _walk(node: ast.AST, used: list[int], allow_unary: bool, depth: int) -> None:
    if depth > 2 * MAX_DEPTH:
        raise Rejected(f"expression deeper than {2 * MAX_DEPTH} operations")
    if isinstance(node, ast.BinOp):
        if not isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            raise Rejected(f"operator {type(node.op).__name__} is not allowed")
        _walk(node.left, used, allow_unary, depth + 1)
        _walk(node.right, used, allow_unary, depth + 1)
    elif isinstance(node, ast.UnaryOp):
        if not allow_unary or not isinstance(node.op, (ast.USub, ast.UAdd)):
            raise Rejected("unary operators are not allowed")
        _walk(node.operand, used, allow_unary, depth + 1)
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        used.append(node.value)
    else:
        raise Rejected(f"{type(node).__name__} is not allowed (integers, + - * /, parentheses only)")


def evaluate(node: ast.AST) -> Fraction:
    """Exact value of a whitelisted AST. Raises ZeroDivisionError on division by zero."""
    if isinstance(node, ast.Constant):
        return Fraction(node.value)
    if isinstance(node, ast.UnaryOp):
        v = evaluate(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    assert isinstance(node, ast.BinOp)
    a, b = evaluate(node.left), evaluate(node.right)
    op = node.op
    if isinstance(op, ast.Add):
        return a + b
    if isinstance(op, ast.Sub):
        return a - b
    if isinstance(op, ast.Mult):
        return a * b
    return a / b


_TOKEN_RE = re.compile(r"[0-9]+|\S")
_PLAIN_RE = re.compile(r"[0-9+\-*/() ]*")


def _parse_eval(expr: str, allow_unary: bool) -> tuple[int, int, list[int]]:
    """Whitelist grammar, evaluated exactly as (numerator, denominator) integers in one pass.

    expr := term (('+'|'-') term)* ; term := factor (('*'|'/') factor)* ; factor := INT | '(' expr ')'
    Nothing outside this grammar can be built, so nothing else can run. Equivalent to `parse_expression` +
    `evaluate` (the tests cross-check them) and several times faster, which matters at 100k items.
    """
    toks = _TOKEN_RE.findall(expr)
    n = len(toks)
    pos = 0
    used: list[int] = []

    def expression(depth: int) -> tuple[int, int]:
        nonlocal pos
        a, b = term(depth)
        while pos < n and (toks[pos] == "+" or toks[pos] == "-"):
            op = toks[pos]
            pos += 1
            c, d = term(depth)
            a, b = (a * d + c * b, b * d) if op == "+" else (a * d - c * b, b * d)
        return a, b

    def term(depth: int) -> tuple[int, int]:
        nonlocal pos
        a, b = factor(depth)
        while pos < n and (toks[pos] == "*" or toks[pos] == "/"):
            op = toks[pos]
            pos += 1
            c, d = factor(depth)
            if op == "*":
                a, b = a * c, b * d
            elif c == 0:
                raise ZeroDivisionError
            else:
                a, b = a * d, b * c
        return a, b

    def factor(depth: int) -> tuple[int, int]:
        nonlocal pos
        if pos >= n:
            raise Rejected("not a valid expression: unexpected end")
        tok = toks[pos]
        pos += 1
        if tok[0] in "0123456789":
            if tok[0] == "0" and len(tok) > 1 and tok.strip("0"):  # Python rejects 045 but accepts 00
                raise Rejected("not a valid expression: leading zeros")
            v = int(tok)
            used.append(v)
            return v, 1
        if tok == "(":
            if depth >= MAX_DEPTH:
                raise Rejected(f"nesting deeper than {MAX_DEPTH}")
            r = expression(depth + 1)
            if pos >= n or toks[pos] != ")":
                raise Rejected("not a valid expression: unbalanced parentheses")
            pos += 1
            return r
        if tok in ("-", "+"):
            if not allow_unary:
                raise Rejected("unary operators are not allowed")
            a, b = factor(depth + 1)
            return (-a, b) if tok == "-" else (a, b)
        raise Rejected(f"not a valid expression: unexpected {tok!r}")

    num, den = expression(0)
    if pos != n:
        raise Rejected(f"not a valid expression: unexpected {toks[pos]!r}")
    return num, den, used


def _prefilter(expr: str) -> None:
    """The fast rejections, before any parsing."""
    if len(expr) > MAX_CHARS:
        raise Rejected(f"expression longer than {MAX_CHARS} characters")
    if "**" in expr or "^" in expr:
        raise Rejected("exponentiation is not allowed")
    if _DIGIT_RUN_RE.search(expr):
        raise Rejected(f"number literal longer than {MAX_DIGITS} digits")


def check_expression(expr: str, numbers: list[int], target: int | Fraction, *, use_all: bool = True,
                     allow_unary: bool = False) -> tuple[bool, str]:
    """(correct, reason) for a raw expression string."""
    try:
        _prefilter(expr)
        if _PLAIN_RE.fullmatch(expr):  # the common case: nothing to normalise
            plain = expr
        else:
            plain = normalize(_judge_equation(expr, target))
            _prefilter(plain)
            if not _ALLOWED_CHARS.match(plain) or "." in plain:
                bad = sorted({c for c in plain if not _ALLOWED_CHARS.match(c) or c == "."})[:5]
                raise Rejected(f"characters not allowed: {''.join(bad)!r}")
            plain = plain.replace("[", "(").replace("]", ")").replace("{", "(").replace("}", ")")
        num, den, used = _parse_eval(plain, allow_unary)
    except Rejected as e:
        return False, str(e)
    except ZeroDivisionError:
        return False, "division by zero"
    except RecursionError:  # pragma: no cover - MAX_DEPTH keeps recursion far below the limit
        return False, "expression too deep"
    if sorted(used) != sorted(numbers):
        have, want = Counter(used), Counter(numbers)
        extra = have - want
        if extra:
            return False, f"uses numbers not given (or too often): {sorted(extra.elements())}"
        if use_all:
            return False, f"does not use every number: missing {sorted((want - have).elements())}"
    if isinstance(target, int):
        tn, td = target, 1
    else:
        target = Fraction(target)
        tn, td = target.numerator, target.denominator
    if num * td == tn * den:
        return True, "hits the target"
    return False, f"evaluates to {Fraction(num, den)}, target {target}"


def _judge_equation(expr: str, target: int | Fraction) -> str:
    """The expression of `expr = N`, after checking that every other side is the target itself."""
    if "=" not in expr:
        return expr
    for pat, rep in _LATEX_SUBS:  # `−24` and `\,` spellings of the right-hand side
        expr = pat.sub(rep, expr)
    lhs, others = split_equation(expr)
    for side in others:
        m = _INT_RE.fullmatch(side)
        if m is None:
            raise Rejected(f"the other side of '=' is not a number: {side.strip()[:40]!r}")
        if Fraction(int(m.group(1))) != Fraction(target):
            raise Rejected(f"claims {m.group(1)}, but the target is {target}")
    return lhs


def problem_numbers(problem: Any) -> tuple[list[int], int]:
    """(numbers, target) from the reference/metadata, else from the prompt text."""
    numbers = reference_field(problem, "numbers")
    target = reference_field(problem, "target")
    prompt = getattr(problem, "prompt", "") or ""
    if numbers is None:
        m = _NUMBERS_RE.search(prompt)
        if m:
            numbers = [int(x) for x in re.findall(r"-?\d+", m.group(1))]
    if target is None:
        m = _TARGET_RE.search(prompt)
        if m:
            target = int(m.group(1))
    if numbers is None or target is None:
        raise ValueError("countdown problem has no numbers/target in reference, metadata or prompt")
    return [int(n) for n in numbers], int(target)


def extract_answer(response: str) -> str | None:
    tail = strip_thinking(response)
    boxed = last_boxed(tail)
    if boxed is not None:
        return boxed
    tagged = last_tagged(tail, "answer")
    return tagged.strip() if tagged is not None else None


class CountdownVerifier(Verifier):
    """Countdown arithmetic game: AST-whitelisted expression, exact arithmetic, each number used once."""

    name = "countdown"
    version = "1"
    domains = ("game",)
    sources = ("countdown",)
    timeout_s = 2.0

    def __init__(self, use_all: bool = True, allow_unary: bool = False) -> None:
        self.use_all = use_all
        self.allow_unary = allow_unary

    def probes(self) -> list[Probe]:
        p = ProbeProblem("Numbers: [3, 5, 3]\nTarget: 24", {"numbers": [3, 5, 3], "target": 24}, source="countdown",
                         domain="game")
        return [Probe("hits the target", p, "<think>3 * 8</think>\\boxed{(3+5)*3}", "correct"),
                Probe("misses the target", p, "<think>add them</think>\\boxed{3+5+3}", "incorrect"),
                Probe("false equation", p, "<think>close</think>\\boxed{(3+5)*3 = 25}", "incorrect")]

    def check(self, problem: Any, response: str) -> Any:
        numbers, target = problem_numbers(problem)
        answer = extract_answer(response)
        if answer is None or not answer.strip():
            return self.verdict("no_answer", reason="no \\boxed{} expression after thinking")
        use_all = reference_field(problem, "use_all", self.use_all)
        ok, reason = check_expression(answer, numbers, target, use_all=bool(use_all), allow_unary=self.allow_unary)
        return self.verdict("correct" if ok else "incorrect", answer=answer, reason=reason)
