"""Math answers through math-verify, gold first, plus one documented improvement.

Flow: strip everything before the last `</think>`; if the tail has exactly one `\\boxed{}` and it spells the gold
answer verbatim (modulo spacing), it is correct without parsing (math-verify would extract that box and find
the strings equal; most correct traces take this path); a single boxed plain integer against a plain integer gold
is compared as integers (what math-verify's parse would compare; most wrong answers to integer questions take
this path); otherwise parse the gold (wrapped in `\\boxed{}` unless it already
carries `$` or `\\boxed`) and the response with math-verify's default extraction (LaTeX then plain
expressions; `\\boxed{}` wins); `verify(gold, pred)` in that order (it is not symmetric). When math-verify
says no and both sides are equations, we also accept equations equal up to a nonzero constant factor
(`x^2+2x+1=0` vs `2x^2+4x+2=0`, `y=2x+1` vs `2y-4x=2`): (lhs-rhs) of gold divided by (lhs-rhs) of the
answer must simplify to a number.

Timeouts: math-verify's own timeouts are SIGALRM based and silently turn a timeout into "no match"
(an infrastructure failure disguised as a wrong answer), so we disable them and instead the whole
check, answer extraction included, runs under `Verifier.soft_timeout_s` (a BaseException math-verify cannot swallow; main thread only). Neither can stop a
long C-level computation (`10^{10^{10}}` evaluated by sympy), so labeling runs verifiers in
`verifiers.pool` worker processes that are killed at `deadline_s` and report `timeout`.

Equations: an answer `x = 3` (one variable on the left, or function notation such as `f(x) = 3x-2`) is read
as its value, as math-verify does; any other equation against a gold that is not one (`4 = 3`, `1 = 2 = 3`,
`\\text{I do not know} = 3`, `2 + 1 = 3`, `xy = 3`) is incorrect, never reduced to its right side.

Known issues (honest list):
- Inherits math-verify's extraction choices: with no `\\boxed{}` the last LaTeX/plain number wins, so
  "the answer is 3, not 4." scores 4 if 4 is extracted later in the text.
- Several boxes (`\\boxed{5}\\boxed{6}`) are read as the set {5, 6}; gold 5 is then incorrect.
- Units are stripped by math-verify (`10 \\text{ cm}` == 10); a wrong unit is not detected.
- Percentages: `50\\%` and `50` and `0.5` are all accepted against each other (math-verify's choice).
- The constant-factor rule also accepts a sign flip (`x-1=0` vs `1-x=0`), which is equivalent as an
  equation; it never relates an equation to a bare expression.
- Interval vs inequality (`(-\\infty,2)` vs `x<2`) is rejected unless the prediction is a set.
- A bare gold `1,22` (no `$`, no `\\boxed`) is read as the decimal 1.22, not the set {1, 22}; `1,000` stays a
  thousands separator and `1, 22` (with a space) a list.
Test: `python -m pytest -q tests/test_verifiers_math.py` (the regression table is tests/fixtures/verifiers/).
"""
from __future__ import annotations

import functools
import re
from typing import Any

from verifiers.base import Probe, ProbeProblem, Verifier
from verifiers.extract import boxed_contents, strip_thinking


def _gold_text(reference: Any, as_is: bool = False) -> str | None:
    if isinstance(reference, dict):
        for key in ("answer", "gold", "solution"):
            if key in reference:
                reference = reference[key]
                break
        else:
            return None
    if reference is None:
        return None
    if isinstance(reference, (list, tuple)):
        reference = ", ".join(str(r) for r in reference)
    text = str(reference).strip()
    if not text:
        return None
    if "\\boxed" in text or "$" in text:
        return text
    if not as_is and _DECIMAL_COMMA_RE.fullmatch(text):  # a bare `1,22` is a decimal comma; boxed it would read as a set
        text = text.replace(",", ".")
    return "\\boxed{" + text + "}"


# `1,22` and `-0,5`, not `1,000` (a thousands separator, which math-verify reads as 1000) nor `1, 22` (a list)
_DECIMAL_COMMA_RE = re.compile(r"-?\d+,(?:\d{1,2}|\d{4,})")


_WS_RE = re.compile(r"\s+|\\[,;!:]|\\ |\\left|\\right")


def _norm(text: str) -> str:
    return _WS_RE.sub("", text.strip().strip("$")).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").rstrip(".")


def _wrapped(gold: str) -> str | None:
    """What a gold `_gold_text` wrapped in one `\\boxed{}` holds; None for any other gold."""
    if gold.count("\\boxed") != 1 or not gold.startswith("\\boxed{"):
        return None
    return gold[len("\\boxed{"):-1]


def _exact_box(reference: Any, tail: str) -> str | None:
    """The boxed answer when the tail has exactly one box and it spells the gold answer verbatim (modulo
    spacing): math-verify would extract that box and find the strings equal, so skip parsing both into
    sympy. The common case for correct traces; everything else goes through math-verify."""
    gold = _gold_text(reference)
    inner = _wrapped(gold) if gold is not None else None
    if inner is None:
        return None  # only golds we wrapped ourselves: a raw `$...$` or pre-boxed gold takes the full path
    boxes = boxed_contents(tail)
    if len(boxes) != 1:
        return None
    got = _norm(boxes[0])
    raw = _gold_text(reference, as_is=True)  # `1,22` spelled as the gold spells it is the gold
    wants = {_norm(inner), _norm(_wrapped(raw) or "")} - {""}
    return boxes[0] if got in wants else None


_INT_RE = re.compile(r"-?\d{1,30}")


def _integer_box(gold: str, tail: str) -> tuple[str, bool] | None:
    """(the box, whether it equals the gold) when the gold we wrapped is a plain integer and the tail has
    exactly one box holding a plain integer: math-verify would parse both into sympy Integers and compare them
    exactly, so compare the integers here. The common case for wrong answers to integer questions (a missed
    carry, an off-by-one); anything with a sign other than a leading minus, a separator, a unit, a decimal
    point or a second box takes the full path."""
    inner = _wrapped(gold)
    if inner is None:
        return None
    want = _norm(inner)
    boxes = boxed_contents(tail)
    if len(boxes) != 1 or not _INT_RE.fullmatch(want):
        return None
    got = _norm(boxes[0])
    if not _INT_RE.fullmatch(got):
        return None
    return boxes[0], int(got) == int(want)


def equal_up_to_constant(gold: Any, pred: Any) -> bool:
    """True when gold and pred are equations whose (lhs - rhs) differ by a nonzero constant factor."""
    import sympy

    if not (isinstance(gold, sympy.Equality) and isinstance(pred, sympy.Equality)):
        return False
    if not all(isinstance(side, sympy.Expr) for side in (gold.lhs, gold.rhs, pred.lhs, pred.rhs)):
        return False  # `n = {1, 2}` or `D = (0, 1)`: sets and intervals have no constant factor
    g = gold.lhs - gold.rhs
    p = pred.lhs - pred.rhs
    if g == 0 or p == 0 or not g.free_symbols or g.free_symbols != p.free_symbols:
        return False
    ratio = sympy.simplify(g / p)
    return bool(ratio.is_number and ratio.is_finite and ratio != 0 and not ratio.free_symbols)


# a variable: one Latin letter or a Greek letter command, optionally subscripted and primed (x, x_1, a_{n}, \\theta')
_VARIABLE_RE = re.compile(r"\s*(?:[A-Za-z]|\\[a-zA-Z]+)\s*(?:_\s*(?:\{\s*[A-Za-z0-9]+\s*\}|[A-Za-z0-9]))?\s*'*\s*")
_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta", "iota",
          "kappa", "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "upsilon", "phi", "varphi", "chi", "psi",
          "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Upsilon", "Phi", "Psi", "Omega"}


_CALL_RE = re.compile(r"(?P<name>[^()]+)\((?P<args>[^()]*)\)\s*")
_ARG_RE = re.compile(r"\s*-?\d+(?:\.\d+)?\s*")


def _is_variable(text: str) -> bool:
    """`x`, `x_1`, `\\theta`, or function notation on variables or numbers (`f(x)`, `g(x, y)`, `f(2)`)."""
    call = _CALL_RE.fullmatch(text.strip())
    if call:
        args = call.group("args").split(",")
        return _is_variable(call.group("name")) and all(_is_variable(a) or _ARG_RE.fullmatch(a) for a in args)
    if not _VARIABLE_RE.fullmatch(text):
        return False
    cmd = re.match(r"\s*\\([a-zA-Z]+)", text)
    return cmd is None or cmd.group(1) in _GREEK


def _non_variable_equation(gold: Any, pred: list) -> str | None:
    """Why an equation answer must not be reduced to its right side, or None. math-verify compares a gold
    value with the right side of any equation, so `4 = 3`, `1 = 2 = 3` and `\\text{I do not know} = 3` all
    matched gold 3; only `variable = value` (a single symbol, or a function of variables or numbers, on the
    left) may be read as its value. Golds that
    are themselves equations or relations are left to math-verify and the constant-factor rule."""
    import sympy

    if isinstance(gold, (sympy.Equality, sympy.And)) or getattr(gold, "is_Relational", False):
        return None
    obj = pred[0]
    if isinstance(obj, sympy.And) and any(isinstance(a, sympy.Equality) for a in obj.args):
        return "a chain of equations is not an answer"
    if not isinstance(obj, sympy.Equality):
        return None
    text = next((p for p in pred if isinstance(p, str)), "")
    lhs = text.split("=", 1)[0] if "=" in text else ""
    from sympy.core.function import AppliedUndef

    if isinstance(obj.lhs, (sympy.Symbol, AppliedUndef)) and _is_variable(lhs):
        return None
    return f"left side of '=' is not a variable: {lhs.strip()[:60]!r}"


@functools.lru_cache(maxsize=4096)
def _parse_gold(gold_text: str) -> tuple:
    """Gold answers repeat across a problem's many samples (32 per question in the study's pool): parse once.
    Sympy expressions are immutable, so sharing them is safe."""
    from math_verify import parse

    return tuple(parse(gold_text, parsing_timeout=None))


def warm() -> None:
    """Build math-verify's LaTeX parser once (used by the pool's forkserver preload)."""
    MathVerifier().verify(type("P", (), {"reference": "\\frac{1}{2}", "prompt": "", "metadata": {}})(), "\\boxed{0.5}")


def _quiet_math_verify() -> None:
    """math-verify warns once that its timeout is disabled; we disabled it on purpose (see module docstring)."""
    import logging

    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).setLevel(logging.ERROR)


class MathVerifier(Verifier):
    """Math final answers with math-verify (gold first), plus equations equal up to a constant factor."""

    name = "math"
    version = "1"
    domains = ("math",)
    sources = ("math500", "aime24", "aime25", "openr1_math", "numinamath", "gsm8k")
    timeout_s = 10.0

    def __init__(self, timeout_s: float = 10.0, float_rounding: int = 6, numeric_precision: int = 15,
                 constant_factor_equations: bool = True, soft_timeout: bool = True, exact_match: bool = True) -> None:
        self.timeout_s = float(timeout_s)
        self.soft_timeout = soft_timeout  # False: rely on the pool's hard kill alone (tests prove it works)
        self.float_rounding = float_rounding
        self.numeric_precision = numeric_precision
        self.constant_factor_equations = constant_factor_equations
        self.exact_match = exact_match  # False: always parse (the tests compare both paths)

    def probes(self) -> list[Probe]:
        p = ProbeProblem("What is 1/2 + 1/4?", "\\frac{3}{4}", source="math500", domain="math")
        return [Probe("verbatim box", p, "<think>2/4 + 1/4</think>\\boxed{\\frac{3}{4}}", "correct"),
                Probe("equivalent decimal", p, "<think>0.5 + 0.25</think>\\boxed{0.75}", "correct"),
                Probe("wrong fraction", p, "<think>1 + 1 over 2 + 4</think>\\boxed{\\frac{1}{3}}", "incorrect")]

    def check(self, problem: Any, response: str) -> Any:
        gold_text = _gold_text(getattr(problem, "reference", None))
        if gold_text is None:
            return self.verdict("error", reason="problem has no gold answer in its reference")
        tail = strip_thinking(response).replace("\\fbox{", "\\boxed{")  # math-verify ignores \fbox
        if not tail.strip():
            return self.verdict("no_answer", reason="nothing after thinking")
        exact = _exact_box(getattr(problem, "reference", None), tail) if self.exact_match else None
        if exact is not None:
            return self.verdict("correct", answer=exact, reason="boxed answer is the gold answer verbatim")
        whole = _integer_box(gold_text, tail) if self.exact_match else None
        if whole is not None:
            box, same = whole
            return (self.verdict("correct", answer=box, reason="boxed integer equals the integer gold") if same else
                    self.verdict("incorrect", answer=box, reason="boxed integer differs from the integer gold"))
        return self._compare(gold_text, tail)

    def equivalent(self, a: str, b: str) -> bool:
        """Two extracted answers are one answer when math-verify matches them either way round (maj@k groups
        votes with this). Each comparison runs under the soft timeout; one that runs out is not a match."""
        if _norm(str(a)) == _norm(str(b)):
            return True
        from math_verify import verify

        from verifiers.base import VerifyTimeout, soft_timeout

        _quiet_math_verify()
        try:
            with soft_timeout(self.timeout_s if self.soft_timeout else None):
                pa, pb = _parse_gold(_gold_text(str(a), as_is=True) or ""), _parse_gold(_gold_text(str(b), as_is=True) or "")
                if not pa or not pb or _non_variable_equation(pa[0], list(pb)) or _non_variable_equation(pb[0], list(pa)):
                    return False  # `4 = 3` is not the answer 3 (see check)
                kw = {"float_rounding": self.float_rounding, "numeric_precision": self.numeric_precision,
                      "timeout_seconds": None}
                return bool(verify(list(pa), list(pb), **kw) or verify(list(pb), list(pa), **kw))
        except VerifyTimeout:
            return False
        except Exception:  # an answer sympy cannot handle is only equal to its own spelling
            return False

    def soft_timeout_s(self, problem: Any) -> float | None:  # noqa: ARG002
        """The whole check, extraction included, runs under the soft timeout (off: only the pool's hard kill)."""
        return self.timeout_s if self.soft_timeout else None

    def _compare(self, gold_text: str, tail: str):
        from math_verify import parse, verify

        _quiet_math_verify()
        gold = _parse_gold(gold_text)
        if not gold:
            return self.verdict("error", reason=f"gold answer does not parse: {gold_text[:200]!r}")
        pred = parse(tail, parsing_timeout=None)
        if not pred:
            return self.verdict("no_answer", reason="no parsable final answer")
        answer = str(pred[-1]) if isinstance(pred[-1], str) else str(pred[0])
        gold = list(gold)
        smuggled = _non_variable_equation(gold[0], pred)
        if smuggled:
            return self.verdict("incorrect", answer=answer, reason=smuggled)
        ok = verify(gold, pred, float_rounding=self.float_rounding, numeric_precision=self.numeric_precision,
                    timeout_seconds=None)
        if ok:
            return self.verdict("correct", answer=answer, reason="math-verify match")
        if self.constant_factor_equations and equal_up_to_constant(gold[0], pred[0]):
            return self.verdict("correct", answer=answer, reason="equations equal up to a constant factor")
        return self.verdict("incorrect", answer=answer, reason=f"does not match gold {gold[-1]!s:.200}")
