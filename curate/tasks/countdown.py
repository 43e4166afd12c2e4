"""Countdown: combine the given numbers with + - * / to reach a target. Generator and exact solver.

Rules (the classic game's, which the generator and the solver share): every number is used exactly once,
and every intermediate result is a positive integer (division only when exact). An expression valid under
these rules is correct under any looser checker (each-number-at-most-once, rational arithmetic).

- `generate(config, seed, index)` draws numbers with `task_rng(seed, index)` (sha256 of both, so seeds give
  independent streams and an eval set drawn with another seed shares nothing by construction), builds a random
  expression tree over all of them and takes its value as the target, so a solution always exists.
- `solve(numbers, target)` enumerates distinct solution expressions lazily; `has_solution` decides
  existence exactly (an empty answer is a proof that none exists under the rules above).
- `reference` is `{"numbers": [...], "target": N}`, which is what the `countdown` verifier reads; `key`
  (sorted numbers and target) is what mixtures dedup and decontaminate Countdown problems by, and
  `--size N` yields N distinct puzzles (a draw repeating an earlier one of the run is skipped).

Known issues: solutions that need a fraction or a negative intermediate value (e.g. (1 + 1/3) * 6 = 8)
are outside the rules, so the solver reports none for them; distinct expressions are counted as
distinct strings, so associativity variants ((a+b)+c vs a+(b+c)) count separately.

Test: tests/test_tasks_countdown.py.
"""
from __future__ import annotations

import ast
import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

from curate.records import Problem
from curate.tasks.base import TaskSpec, distinct_problems, register, task_rng

NAME = "countdown"
PROMPT = (
    "Using the numbers below, write an arithmetic expression that equals the target. "
    "Use each number exactly once; you may use +, -, *, / and parentheses.\n"
    "Numbers: {numbers}\n"
    "Target: {target}\n"
    "Give the expression as your final answer, e.g. \\boxed{{(1 + 2) * 3}}."
)
SOLUTION_CAP = 16  # difficulty counts distinct solutions up to this many


@dataclass(frozen=True)
class CountdownConfig:
    min_numbers: int = 3
    max_numbers: int = 6
    min_value: int = 1
    max_value: int = 100
    min_target: int = 10
    max_target: int = 999
    operators: str = "+-*/"
    max_attempts: int = 500  # tries per problem to land a target inside [min_target, max_target]

    def __post_init__(self) -> None:
        if not 2 <= self.min_numbers <= self.max_numbers <= 8:
            raise ValueError(f"need 2 <= min_numbers <= max_numbers <= 8, got {self.min_numbers}..{self.max_numbers}")
        if not 1 <= self.min_value <= self.max_value:
            raise ValueError(f"need 1 <= min_value <= max_value, got {self.min_value}..{self.max_value}")
        if not 1 <= self.min_target <= self.max_target:
            raise ValueError(f"need 1 <= min_target <= max_target, got {self.min_target}..{self.max_target}")
        if not self.operators or set(self.operators) - set("+-*/"):
            raise ValueError(f"operators must be a non-empty subset of '+-*/', got {self.operators!r}")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")


# --------------------------------------------------------------------------- expressions
# An expression is an int (a leaf) or a tuple (op, left, right). Values are positive ints by the rules.

_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


def apply_op(op: str, a: int, b: int) -> int | None:
    """a op b under the rules, or None when the rules forbid it (non-positive or inexact)."""
    if op == "+":
        return a + b
    if op == "*":
        return a * b
    if op == "-":
        return a - b if a > b else None
    if op == "/":
        return a // b if b and a % b == 0 else None
    raise ValueError(op)


def to_string(expr) -> str:
    """Render with the fewest parentheses that keep the tree's meaning."""
    if isinstance(expr, int):
        return str(expr)
    op, left, right = expr
    ls, rs = to_string(left), to_string(right)
    if isinstance(left, tuple) and _PREC[left[0]] < _PREC[op]:
        ls = f"({ls})"
    if isinstance(right, tuple) and (_PREC[right[0]] < _PREC[op] or (_PREC[right[0]] == _PREC[op] and op in "-/")):
        rs = f"({rs})"
    return f"{ls} {op} {rs}"


def evaluate(expr) -> int | None:
    if isinstance(expr, int):
        return expr
    op, left, right = expr
    a, b = evaluate(left), evaluate(right)
    return None if a is None or b is None else apply_op(op, a, b)


def leaves(expr) -> list[int]:
    return [expr] if isinstance(expr, int) else leaves(expr[1]) + leaves(expr[2])


def check_answer(answer: str, numbers: list[int], target: int) -> tuple[bool, str]:
    """(correct, "ok" or why not) for an answer expression: the `countdown` verifier's own exact check (rational
    arithmetic, no eval, every number once), so the trace writer's self-check and the labels cannot disagree."""
    from verifiers.countdown import check_expression

    ok, why = check_expression(answer, list(numbers), target)
    return ok, "ok" if ok else why


# --------------------------------------------------------------------------- solver
# Top-down over subsets of the numbers: reach(mask, v) asks whether the numbers in `mask` can make v.
# Each split of the mask into (X, Y) takes Y as the smaller side, whose full value set is small and
# computed bottom-up; the value X must make follows by inverting the operator. Memoised per problem.


class _Solver:
    def __init__(self, numbers: list[int], operators: str = "+-*/") -> None:
        self.nums = list(numbers)
        self.ops = operators
        self.n = len(numbers)
        self._values: dict[int, dict[int, None]] = {}
        self._reach: dict[tuple[int, int], bool] = {}

    def values(self, mask: int) -> dict[int, None]:
        """All values the numbers in `mask` can make (an ordered dict used as a set, for determinism)."""
        got = self._values.get(mask)
        if got is not None:
            return got
        out: dict[int, None] = {}
        if mask & (mask - 1) == 0:
            out[self.nums[mask.bit_length() - 1]] = None
        else:
            for x_mask, y_mask in self.splits(mask):
                xs, ys = self.values(x_mask), self.values(y_mask)
                for a in xs:
                    for b in ys:
                        for op in self.ops:
                            for p, q in ((a, b), (b, a)) if op in "-/" else ((a, b),):
                                r = apply_op(op, p, q)
                                if r is not None:
                                    out[r] = None
        self._values[mask] = out
        return out

    @staticmethod
    def splits(mask: int) -> Iterator[tuple[int, int]]:
        """Each unordered split of mask into (X, Y), both non-empty, with popcount(Y) <= popcount(X)."""
        sub = (mask - 1) & mask
        seen = set()
        while sub:
            other = mask ^ sub
            key = min(sub, other)
            if key not in seen:
                seen.add(key)
                x, y = (sub, other) if bin(sub).count("1") >= bin(other).count("1") else (other, sub)
                yield x, y
            sub = (sub - 1) & mask

    def _needs(self, v: int, y: int) -> Iterator[tuple[int, str, bool]]:
        """(x, op, x_left) such that `x op y` (x_left) or `y op x` (not x_left) equals v under the rules."""
        ops = self.ops
        if "+" in ops and v - y > 0:
            yield v - y, "+", True
        if "*" in ops and v % y == 0:
            yield v // y, "*", True
        if "-" in ops:
            yield v + y, "-", True
            if y - v > 0:
                yield y - v, "-", False
        if "/" in ops:
            yield v * y, "/", True
            if y % v == 0:
                yield y // v, "/", False

    def reach(self, mask: int, v: int) -> bool:
        if v <= 0:
            return False
        if bin(mask).count("1") <= 3:
            return v in self.values(mask)
        key = (mask, v)
        got = self._reach.get(key)
        if got is None:
            got = False
            for x_mask, y_mask in self.splits(mask):
                for y in self.values(y_mask):
                    if any(self.reach(x_mask, x) for x, _, _ in self._needs(v, y)):
                        got = True
                        break
                if got:
                    break
            self._reach[key] = got
        return got

    def exprs(self, mask: int, v: int) -> Iterator:
        """Every expression tree over exactly the numbers in mask with value v (may repeat across splits)."""
        if mask & (mask - 1) == 0:
            if self.nums[mask.bit_length() - 1] == v:
                yield v
            return
        if not self.reach(mask, v):
            return
        for x_mask, y_mask in self.splits(mask):
            for y in self.values(y_mask):
                for x, op, x_left in self._needs(v, y):
                    if not self.reach(x_mask, x):
                        continue
                    for ex in self.exprs(x_mask, x):
                        for ey in self.exprs(y_mask, y):
                            yield (op, ex, ey) if x_left else (op, ey, ex)


def canonical(expr):
    """A key equal for expressions that differ only by commutativity/associativity of + and *."""
    if isinstance(expr, int):
        return expr
    op = expr[0]
    if op in "+*":
        terms: list = []
        stack = [expr]
        while stack:
            e = stack.pop()
            if isinstance(e, tuple) and e[0] == op:
                stack.extend((e[1], e[2]))
            else:
                terms.append(canonical(e))
        return (op, tuple(sorted(terms, key=repr)))
    return (op, canonical(expr[1]), canonical(expr[2]))


def solve(numbers: list[int], target: int, limit: int | None = None, operators: str = "+-*/") -> list[str]:
    """Distinct solutions (up to reordering of + and * terms), at most `limit`; [] proves there is none."""
    s = _Solver(numbers, operators)
    full = (1 << len(numbers)) - 1
    out: dict = {}
    for e in s.exprs(full, target):
        out.setdefault(canonical(e), to_string(e))
        if limit is not None and len(out) >= limit:
            break
    return list(out.values())


def has_solution(numbers: list[int], target: int, operators: str = "+-*/") -> bool:
    return _Solver(numbers, operators).reach((1 << len(numbers)) - 1, target)


@lru_cache(maxsize=4096)
def solve_cached(numbers: tuple[int, ...], target: int, operators: str = "+-*/") -> tuple:
    """One solution tree (or None); cached for backends that need a path per problem, like synthetic."""
    s = _Solver(list(numbers), operators)
    return next(iter(s.exprs((1 << len(numbers)) - 1, target)), None)


def parse_expression(text: str):
    """Parse an expression string back into a tree (ints and (op, l, r)); ValueError if not one."""
    def conv(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp):
            op = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}.get(type(node.op))
            if op:
                return (op, conv(node.left), conv(node.right))
        raise ValueError(f"not a countdown expression: {text!r}")
    return conv(ast.parse(text, mode="eval").body)


# --------------------------------------------------------------------------- generator


def _random_tree(rng: random.Random, numbers: list[int], ops: str):
    """Combine all numbers pairwise in random order with random legal operators."""
    items = list(numbers)
    rng.shuffle(items)
    pool: list = [(n, n) for n in items]  # (tree, value)
    while len(pool) > 1:
        i, j = rng.sample(range(len(pool)), 2)
        (ta, a), (tb, b) = pool[i], pool[j]
        choices = [(op, p, q) for op in ops for p, q in (((ta, a), (tb, b)), ((tb, b), (ta, a)))
                   if apply_op(op, p[1], q[1]) is not None]
        if not choices:
            return None
        op, (tp, p), (tq, q) = rng.choice(choices)
        for k in sorted((i, j), reverse=True):
            pool.pop(k)
        pool.append(((op, tp, tq), apply_op(op, p, q)))
    return pool[0]


def difficulty(n_numbers: int, n_solutions: int) -> str:
    """A coarse label: more numbers and fewer solutions are harder.

    score = (numbers - 3) + (0 with 16+ solutions, 1 with 4-15, 2 with fewer); easy <= 2, medium 3,
    hard >= 4. So 3 numbers are always easy and 6 numbers are hard unless 16+ solutions exist."""
    score = (n_numbers - 3) + (0 if n_solutions >= 16 else 1 if n_solutions >= 4 else 2)
    return "easy" if score <= 2 else "medium" if score == 3 else "hard"


def generate(config: CountdownConfig, seed: int, index: int, split: str = "train") -> Problem:
    rng = task_rng(seed, index)
    # Draw the size once so that retries for an in-range target do not skew the mix toward small sets.
    k = rng.randint(config.min_numbers, config.max_numbers)
    for _ in range(config.max_attempts):
        numbers = [rng.randint(config.min_value, config.max_value) for _ in range(k)]
        built = _random_tree(rng, numbers, config.operators)
        if built is None:
            continue
        tree, target = built
        if config.min_target <= target <= config.max_target and target not in numbers:
            break
    else:
        raise ValueError(
            f"countdown: no target in [{config.min_target}, {config.max_target}] after {config.max_attempts} tries "
            f"(seed={seed}, index={index}); widen the target or value ranges"
        )
    solutions = solve(numbers, target, limit=SOLUTION_CAP, operators=config.operators)
    return Problem(
        source=NAME,
        domain="game",
        prompt=PROMPT.format(numbers=numbers, target=target),
        reference={"numbers": numbers, "target": target},
        metadata={
            "seed": seed, "index": index, "n_numbers": k, "solution": to_string(tree),
            "n_solutions": len(solutions), "n_solutions_capped": len(solutions) >= SOLUTION_CAP,
            "difficulty": difficulty(k, len(solutions)),
        },
        split=split,
    )


def load(config: CountdownConfig, size: int | None, seed: int, split: str) -> Iterator[Problem]:
    return distinct_problems('countdown', generate, key, config, size, seed, split)


def oracle(problem: Problem) -> str:
    ref = problem.reference
    sol = problem.metadata.get("solution") or next(iter(solve(ref["numbers"], ref["target"], limit=1)), None)
    return f"\\boxed{{{sol}}}"


def key(reference: dict) -> str:
    """The puzzle itself: the multiset of numbers and the target (the prompt lists the numbers in draw order)."""
    return f"countdown:{sorted(int(n) for n in reference['numbers'])}->{int(reference['target'])}"


register(TaskSpec(name=NAME, description="Countdown arithmetic game: reach the target with all numbers once (generated, exact solver)",
                  domain="game", config_cls=CountdownConfig, load=load, verifier="countdown", oracle=oracle, generated=True, key=key))
