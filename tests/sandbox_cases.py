"""What the two sandbox test modules share: fast limits, the isolation level in force, a leftover-process check
scoped to this test process's tree, and a small code problem to judge."""
from __future__ import annotations

import os
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import descendants
from verifiers.sandbox import NOBODY, Limits, RunResult, isolation, run_python

FAST = Limits(timeout_s=1.5, memory_mb=512)
LEVEL, _PY = isolation()
NS = LEVEL in ("root-ns", "user-ns")
CHECK_TEST = "def check(f):\n    assert f(2) == 5, 'wrong'\n"


def leftovers() -> list[str]:
    """Processes of a sandbox run below this test process: cmdline or cwd in a curate-sbx- dir, or uid nobody.
    Programs in their own PID namespaces still show below it with their parent chain, so nothing else running
    on the machine is ever counted."""
    out = []
    for pid in descendants(os.getpid()):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            status = Path(f"/proc/{pid}/status").read_text()  # not stat(): non-dumpable processes show as root
        except OSError:
            continue
        uid = int(status.split("\nUid:", 1)[1].split()[0])
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")  # zygote-forked programs keep the zygote's cmdline
        except OSError:
            cwd = ""
        if b"curate-sbx-" in cmd or "curate-sbx-" in cwd or (LEVEL == "root-ns" and uid == NOBODY):
            out.append(f"{pid} uid={uid} {cmd[:80]!r}")
    return out


@pytest.fixture(autouse=True)
def no_leftovers():
    """Every test in a module that imports this fixture leaves no sandbox process behind."""
    yield
    deadline = time.monotonic() + 2.0
    while leftovers() and time.monotonic() < deadline:  # namespace teardown is asynchronous
        time.sleep(0.05)
    assert leftovers() == []


def run(src: str, **kw) -> RunResult:
    return run_python(textwrap.dedent(src), limits=kw.pop("limits", FAST), **kw)


@dataclass
class P:
    prompt: str = "def add3(x):\n    \"\"\"Add three.\"\"\"\n"
    reference: dict = field(default_factory=lambda: {"test": CHECK_TEST, "entry_point": "add3", "timeout_s": 1.5})
    metadata: dict = field(default_factory=dict)


def code(body: str) -> str:
    return "<think>hm</think>\n```python\n" + textwrap.dedent(body) + "\n```"
