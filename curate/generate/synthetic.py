"""Synthetic backend: reasoning traces written by a program, no model needed (Countdown and chain sums).

Chain-sum problems (`curate tasks add chain_sum`) get a scratchpad of running partial sums
(`<think>\n23+45=68, 68+67=135, 135+12=147\n</think>`), a one-line summary and `\\boxed{147}`; a wrong trace
(`wrong_share`) makes one realistic slip (a dropped or extra carry, or a units digit off by a few) in one
partial sum and carries it through to a wrong boxed answer, so the `math` verifier labels it incorrect.
`think=false` writes the scratchpad without tags; `verbosity=terse` drops the summary line.

For Countdown, each trace walks a search over pairwise combinations of the numbers: it tries moves, follows some into
dead ends, backtracks ("Wait, ...", "Alternatively, ..."), reaches the target, verifies the final
expression step by step and ends with a summary and `\\boxed{expression}`. It is the demo's embedded
teacher, and its knobs make data quality a controlled variable:

- style: `backtracking` (dead ends shown or a straight path), `verbosity` (terse | normal | verbose),
  `max_dead_ends`, `think` (wrap the search in <think>...</think>);
- quality: `wrong_share`, the probability that a trace ends with a wrong final answer (an arithmetic
  slip claimed to hit the target, or a near miss boxed anyway). Every wrong answer is checked to be
  wrong and every right one to be right before it is returned, so labels from the countdown verifier
  match the knob exactly in expectation.

Deterministic: the trace depends only on (problem id, sample index, run seed, knobs).
Token counts are estimates (about 4 characters per token); `max_tokens` truncates and marks `length`.
Test: tests/test_generate_synthetic.py; speed: benchmarks/gen_synthetic.py.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Iterator, Sequence

from curate.errors import InputError
from curate.generate.base import Completion, Request, SamplingParams, approx_tokens
from curate.tasks.countdown import apply_op, check_answer, leaves, parse_expression, solve_cached, to_string

VERBOSITY = ("terse", "normal", "verbose")


@dataclass(frozen=True)
class SyntheticConfig:
    backtracking: bool = True
    verbosity: str = "normal"
    wrong_share: float = 0.0
    max_dead_ends: int = 4
    think: bool = True

    def __post_init__(self) -> None:
        if self.verbosity not in VERBOSITY:
            raise ValueError(f"verbosity must be one of {VERBOSITY}, got {self.verbosity!r}")
        if not 0.0 <= self.wrong_share <= 1.0:
            raise ValueError(f"wrong_share must be in [0, 1], got {self.wrong_share}")
        if self.max_dead_ends < 0:
            raise ValueError("max_dead_ends must be >= 0")


def _steps(tree) -> list[tuple[int, str, int, int]]:
    """Post-order (a, op, b, result) steps that build the tree by pairwise combination."""
    out: list[tuple[int, str, int, int]] = []

    def walk(t) -> int:
        if isinstance(t, int):
            return t
        a, b = walk(t[1]), walk(t[2])
        r = apply_op(t[0], a, b)
        out.append((a, t[0], b, r))
        return r

    walk(tree)
    return out


def _fmt(values: list) -> str:
    return ", ".join(str(v[1]) for v in values)


_TRY = ("Let me try {a} {op} {b} = {r}.", "What about {a} {op} {b} = {r}?", "Try {a} {op} {b} = {r}.")
_BACK = ("That doesn't work. Let me backtrack.", "Wait, that's a dead end. Let me go back.",
         "Hmm, no. Alternatively, let me try something else.", "That won't reach {t}. Let me reconsider.")
_GOOD = ("Now the remaining numbers are {rest}.", "Remaining: {rest}.", "Left with {rest}.")


class SyntheticBackend:
    name = "synthetic"
    needs_model = False  # writes traces itself (--model only names the writer)
    loads_model = False

    def __init__(self, model: str = "countdown-dfs", config: SyntheticConfig | None = None,
                 sampling: SamplingParams | None = None) -> None:
        self.model = model or "countdown-dfs"
        self.revision = "1"
        self.config = config or SyntheticConfig()
        self.sampling = sampling or SamplingParams()

    def identity_params(self) -> dict:
        c = self.config
        return {"backtracking": c.backtracking, "verbosity": c.verbosity, "wrong_share": c.wrong_share,
                "max_dead_ends": c.max_dead_ends, "think": c.think}

    def close(self) -> None:
        pass

    def generate(self, requests: Sequence[Request]) -> Iterator[Completion]:
        for req in requests:
            t0 = time.perf_counter()
            text = self.trace(req)
            tokens = approx_tokens(text)
            finish = "stop"
            if tokens > self.sampling.max_tokens:
                text, tokens, finish = text[: self.sampling.max_tokens * 4], self.sampling.max_tokens, "length"
            yield Completion(request_id=req.id, text=text, finish_reason=finish,
                             prompt_tokens=approx_tokens(req.messages[-1]["content"]), completion_tokens=tokens,
                             latency_s=time.perf_counter() - t0)

    # ------------------------------------------------------------------ the trace
    def trace(self, req: Request) -> str:
        p = req.problem
        ref = p.reference if isinstance(p.reference, dict) else {}
        if p.source == "chain_sum" and "numbers" in ref:
            rng = random.Random(f"{p.id}:{req.sample_index}:{req.seed}")
            return chain_sum_trace([int(n) for n in ref["numbers"]], rng, rng.random() < self.config.wrong_share,
                                   self.config)
        if p.source != "countdown" or "numbers" not in ref or "target" not in ref:
            raise InputError(
                f"the synthetic backend writes Countdown and chain-sum traces; problem {p.id} is from {p.source!r}",
                hint="select those problems: --problems \"source IN ('countdown', 'chain_sum')\"",
            )
        numbers, target = [int(n) for n in ref["numbers"]], int(ref["target"])
        tree = None
        if p.metadata.get("solution"):
            try:
                tree = parse_expression(p.metadata["solution"])
                if sorted(leaves(tree)) != sorted(numbers) or check_answer(p.metadata["solution"], numbers, target)[0] is False:
                    tree = None
            except (ValueError, SyntaxError):
                tree = None
        if tree is None:
            tree = solve_cached(tuple(numbers), target)
        rng = random.Random(f"{p.id}:{req.sample_index}:{req.seed}")
        wrong = rng.random() < self.config.wrong_share
        if tree is None:  # unsolvable under the rules: the only honest correct trace does not exist
            wrong = True
        return _Writer(self.config, rng, numbers, target, tree, wrong).write()


class _Writer:
    """Writes one trace. `pool` holds (tree, value) pairs still available for combining."""

    def __init__(self, cfg: SyntheticConfig, rng: random.Random, numbers: list[int], target: int, tree, wrong: bool):
        self.cfg, self.rng, self.numbers, self.target, self.tree, self.wrong = cfg, rng, numbers, target, tree, wrong
        self.lines: list[str] = []
        self.verbose = cfg.verbosity == "verbose"
        self.terse = cfg.verbosity == "terse"

    def say(self, s: str) -> None:
        self.lines.append(s)

    def write(self) -> str:
        rng, t = self.rng, self.target
        self.say(f"I need to reach {t} using {', '.join(map(str, self.numbers))}, each exactly once.")
        if self.verbose:
            big = max(self.numbers)
            self.say(f"The largest number is {big}, so " + (
                "the target is within reach of addition and subtraction." if t <= sum(self.numbers)
                else "I will probably need multiplication to get that high."))
        dead_budget = rng.randint(0, self.cfg.max_dead_ends) if self.cfg.backtracking else 0
        if self.wrong:  # wander into dead ends, then commit to a wrong answer
            pool = [(n, n) for n in self.numbers]
            for _ in range(dead_budget):
                self.dead_end(pool)
            boxed, claimed = self.wrong_ending()
        else:
            boxed, claimed = self.walk(self.tree, dead_budget), t
            self.verify(self.tree)
        ok = check_answer(boxed, self.numbers, t)[0]
        if ok == self.wrong:  # a label we cannot stand behind is a bug, never data
            raise AssertionError(f"synthetic trace for {self.numbers} -> {t}: {boxed!r} should be {'wrong' if self.wrong else 'right'}")
        think = "\n".join(self.lines)
        summary = self.summary(boxed, claimed)
        body = f"<think>\n{think}\n</think>\n\n{summary}" if self.cfg.think else f"{think}\n\n{summary}"
        return body

    def walk(self, tree, dead_budget: int) -> str:
        """Follow the solution's steps, inserting real dead-end explorations before some of them."""
        pool: list = [(n, n) for n in self.numbers]
        steps = _steps(tree)
        dead_at = sorted(self.rng.choices(range(len(steps)), k=dead_budget)) if steps else []
        for i, (a, op, b, r) in enumerate(steps):
            for _ in range(dead_at.count(i)):
                self.dead_end(pool)
            pool = self.apply(pool, a, op, b)
            if len(pool) > 1:
                self.say(self.rng.choice(_GOOD).format(rest=_fmt(pool)))
        if not self.terse:
            self.say(f"That gives {self.target}, which is the target!")
        return to_string(tree)

    def apply(self, pool: list, a: int, op: str, b: int) -> list:
        """Combine the first pool entries valued a and b (in that order), narrating the move."""
        ia = next(i for i, (_, v) in enumerate(pool) if v == a)
        ib = next(i for i, (_, v) in enumerate(pool) if v == b and i != ia)
        r = apply_op(op, a, b)
        self.say(self.rng.choice(_TRY).format(a=a, op=op, b=b, r=r))
        ta, tb = pool[ia][0], pool[ib][0]
        rest = [x for k, x in enumerate(pool) if k not in (ia, ib)]
        return rest + [((op, ta, tb), r)]

    def legal_moves(self, pool: list) -> list:
        moves = []
        for i in range(len(pool)):
            for j in range(len(pool)):
                if i != j:
                    for op in "+-*/":
                        if op in "+*" and i > j:
                            continue
                        r = apply_op(op, pool[i][1], pool[j][1])
                        if r is not None:
                            moves.append((i, j, op, r))
        return moves

    def dead_end(self, pool: list) -> None:
        """Explore a random branch to the end; it is written as a dead end only if it truly misses."""
        rng = self.rng
        cur = list(pool)
        shown = 0
        while len(cur) > 1:
            moves = self.legal_moves(cur)
            if not moves:
                break
            i, j, op, r = rng.choice(moves)
            a, b = cur[i][1], cur[j][1]
            if len(cur) == 2 and r == self.target:  # the random branch solved it: try another last move
                others = [m for m in moves if m[3] != self.target]
                if not others:
                    return
                i, j, op, r = rng.choice(others)
                a, b = cur[i][1], cur[j][1]
            self.say(rng.choice(_TRY).format(a=a, op=op, b=b, r=r))
            shown += 1
            cur = [x for k, x in enumerate(cur) if k not in (i, j)] + [((op, cur[i][0], cur[j][0]), r)]
            if self.terse or (shown >= 2 and rng.random() < 0.5):
                break
        if len(cur) == 1 and self.verbose:
            self.say(f"That ends at {cur[0][1]}, not {self.target}.")
        self.say(rng.choice(_BACK).format(t=self.target))
        self.last_miss = cur[0] if len(cur) == 1 else None

    def verify(self, tree) -> None:
        if self.terse:
            return
        steps = _steps(tree)
        chain = ", ".join(f"{a} {op} {b} = {r}" for a, op, b, r in steps)
        self.say(f"Let me check: {chain}. Each of {', '.join(map(str, self.numbers))} is used exactly once. Correct.")

    def wrong_ending(self) -> tuple[str, int]:
        """Narrate a random full path that misses, then box it: with a slipped last step that claims the
        target, or as an honest near miss. Returns (boxed expression, value claimed in the summary)."""
        rng = self.rng
        for _ in range(20):
            pool: list = [(n, n) for n in self.numbers]
            path = []
            while len(pool) > 1:
                moves = self.legal_moves(pool)
                if not moves:
                    break
                i, j, op, r = rng.choice(moves)
                path.append((pool[i][1], op, pool[j][1], r))
                pool = [x for k, x in enumerate(pool) if k not in (i, j)] + [((op, pool[i][0], pool[j][0]), r)]
            if len(pool) == 1 and pool[0][1] != self.target:
                break
        else:  # no miss exists (degenerate input): leave a number out, which is always wrong
            expr = " + ".join(map(str, self.numbers[:-1])) or "0"
            self.say(f"Maybe {expr} works.")
            return expr, self.target
        expr, value = to_string(pool[0][0]), pool[0][1]
        slip = rng.random() < 0.5
        for k, (a, op, b, r) in enumerate(path):
            shown = self.target if slip and k == len(path) - 1 else r  # the slip: claims the target
            self.say(rng.choice(_TRY).format(a=a, op=op, b=b, r=shown))
        if slip:
            self.say(f"That gives {self.target}, which is the target!")
            return expr, self.target
        self.say(f"I can't find an exact solution. The closest is {expr} = {value}, so I'll go with that.")
        return expr, value

    def summary(self, boxed: str, claimed: int) -> str:
        if self.terse:
            return f"\\boxed{{{boxed}}}"
        head = "Combining the numbers:" if not self.verbose else (
            f"Using each of {', '.join(map(str, self.numbers))} exactly once:")
        return f"{head} {boxed} = {claimed}.\n\n\\boxed{{{boxed}}}"


# ------------------------------------------------------------------ chain sums


def slip(rng: random.Random, value: int) -> int:
    """A realistic arithmetic slip on a partial sum: a dropped or extra carry (off by 10), or a units digit
    off by 1-3. Never the right value, never negative."""
    for _ in range(20):
        delta = rng.choice((-10, 10)) if rng.random() < 0.5 else rng.choice((-3, -2, -1, 1, 2, 3))
        if value + delta >= 0:
            return value + delta
    return value + 1


def chain_sum_trace(numbers: list[int], rng: random.Random, wrong: bool, cfg: SyntheticConfig) -> str:
    """A scratchpad of running partial sums, a summary and the boxed total. With `wrong`, one partial sum
    slips (see `slip`) and every later step adds correctly to the wrong total, so the boxed answer is wrong
    by exactly the slip."""
    from curate.tasks.chain_sum import partial_sums

    steps = partial_sums(numbers)
    bad = rng.randrange(len(steps)) if wrong and steps else None
    parts, total = [], numbers[0]
    for k, (_, n, _) in enumerate(steps):
        new = total + n
        if k == bad:
            new = slip(rng, new)
        parts.append(f"{total}+{n}={new}")
        total = new
    if (total != sum(numbers)) != (bad is not None):  # a label we cannot stand behind is a bug, never data
        raise AssertionError(f"synthetic chain sum {numbers}: ended at {total}, wrong={wrong}")
    pad = ", ".join(parts) if parts else str(total)
    think = f"<think>\n{pad}\n</think>\n\n" if cfg.think else f"{pad}\n\n"
    summary = "" if cfg.verbosity == "terse" else f"The sum is {total}.\n\n"
    return f"{think}{summary}\\boxed{{{total}}}"
