"""Benchmark: the countdown verifier vs a naive `eval`-based checker (TinyZero style) on the same expressions.

    python benchmarks/verify_countdown.py            # 100k expressions, 3 repetitions
    python benchmarks/verify_countdown.py --n 20000  # quicker

Prints median seconds and expressions/s for both, the ratio (ours / naive throughput; target >= 1x),
agreement on the verdicts, and the time of each adversarial item through our verifier (target < 1 s each;
the naive checker is not run on them: `eval("9**9**9")` would not come back). Its own correctness check comes
first: every generated expression whose value is the target (exact arithmetic) must be correct, every other one
and every adversarial item incorrect; when that fails it prints what failed, no ratio, and exits 1.
"""
from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import fail_check  # noqa: E402
from verifiers.countdown import check_expression  # noqa: E402


def naive_check(expr: str, numbers: list[int], target: int) -> bool:
    """The usual RL-recipe checker: regex the numbers, whitelist characters, then eval()."""
    try:
        used = sorted(int(n) for n in re.findall(r"\d+", expr))
        if used != sorted(numbers):
            return False
        if not re.match(r"^[\d+\-*/().\s]+$", expr):
            return False
        return abs(eval(expr, {"__builtins__": None}, {}) - target) < 1e-5
    except Exception:
        return False


def _exact_value(expr: str):
    """The expression's value in exact rationals (the generator writes only integers, + - * / and parentheses)."""
    import ast
    from fractions import Fraction

    def ev(node):
        if isinstance(node, ast.Constant):
            return Fraction(node.value)
        a, b = ev(node.left), ev(node.right)
        op = type(node.op)
        if op is ast.Div and b == 0:
            raise ZeroDivisionError
        return {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}[op] if op is not ast.Div else a / b

    try:
        return ev(ast.parse(expr, mode="eval").body)
    except ZeroDivisionError:
        return None


def make_items(n: int, seed: int = 0) -> list[tuple[str, list[int], int]]:
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        k = rng.randint(3, 6)
        nums = [rng.randint(1, 100) for _ in range(k)]
        expr = str(nums[0])
        for x in nums[1:]:
            op = rng.choice("+-*/")
            expr = f"({expr} {op} {x})" if rng.random() < 0.5 else f"{expr} {op} {x}"
        try:
            value = eval(expr)
        except ZeroDivisionError:
            value = 0
        target = int(value) if rng.random() < 0.5 else rng.randint(1, 1000)
        items.append((expr, nums, target))
    return items


ADVERSARIAL = ["9**9**9", "10^10^10", "9" * 100000, "(" * 100000 + "1" + ")" * 100000,
               "+".join(["1"] * 200000), "1" + "*1" * 100000, "((((1))))" * 20000, "-" * 100000 + "1",
               # short enough to pass the length filter: the parser itself must stay fast
               "(" * 450 + "1" + ")" * 450, "1" + "*1" * 450, "99999999999*99999999999*99999999999",
               "1/(1-1)", r"\frac{" * 60 + "1" + "}{2}" * 60, "(1+" * 60 + "1" + ")" * 60]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    items = make_items(args.n)
    ours_t, naive_t = [], []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        ours = [check_expression(e, nums, t)[0] for e, nums, t in items]
        ours_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        naive = [naive_check(e, nums, t) for e, nums, t in items]
        naive_t.append(time.perf_counter() - t0)
    failed = []
    for (e, nums, t), got in zip(items, ours):
        want = _exact_value(e) == t
        if got != want:
            failed.append(f"{e} (numbers {nums}, target {t}): ours says {got}, exact arithmetic says {want}")
    adversarial = [(a, check_expression(a, [1, 9, 10], 10)[0]) for a in ADVERSARIAL]
    failed += [f"adversarial {a[:24]!r} judged correct" for a, ok in adversarial if ok]
    if failed:
        fail_check(f"countdown: correctness check FAILED ({len(failed)} items), no ratio printed:", failed)
    agree = sum(a == b for a, b in zip(ours, naive))
    mo, mn = statistics.median(ours_t), statistics.median(naive_t)
    print(f"countdown: {args.n} expressions x {args.reps} reps")
    print(f"  ours   median {mo:.3f}s  {args.n / mo:,.0f} expr/s")
    print(f"  naive  median {mn:.3f}s  {args.n / mn:,.0f} expr/s")
    print(f"  ratio  {mn / mo:.2f}x (ours throughput / naive; target >= 1x)")
    print(f"  agreement {agree}/{args.n} (differences: float tolerance in the naive checker)")
    worst = 0.0
    for a in ADVERSARIAL:
        t0 = time.perf_counter()
        ok, why = check_expression(a, [1, 9, 10], 10)
        dt = time.perf_counter() - t0
        worst = max(worst, dt)
        print(f"  adversarial {a[:24]!r:30} {dt * 1000:8.2f} ms  correct={ok}  ({why[:50]})")
    print(f"  worst adversarial {worst * 1000:.2f} ms (target < 1000 ms)")


if __name__ == "__main__":
    main()
