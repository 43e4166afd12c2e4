"""Stopping `curate verify` stops everything it started: the pool's workers, each worker's sandbox zygote and
the program the zygote is running, within a second, for every signal that stops the command, and without a
traceback. Runs the real command line in a subprocess on a store whose one trace sleeps; the process checks
look only at that subprocess's own tree. Run: `python -m pytest -q tests/test_label_signals.py`."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curate.records import Problem, Sample
from curate.store import TraceStore
from tests.helpers import default_signals

ROOT = Path(__file__).resolve().parents[1]
STOP_WITHIN_S = 1.0


def _proc_table() -> dict[int, tuple[int, str, str]]:
    """pid -> (ppid, state, start time) for every process (start time tells a reused pid apart)."""
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[int(pid)] = (int(fields[1]), fields[0], fields[19])
    return out


def _tree(root: int) -> dict[int, str]:
    """Every live process below `root` (and root itself), with its start time."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in table and table[pid][1] != "Z":
            out[pid] = table[pid][2]
        todo.extend(children.get(pid, []))
    return out


def _alive(snapshot: dict[int, str]) -> list[int]:
    table = _proc_table()
    return [pid for pid, start in snapshot.items() if pid in table and table[pid][2] == start and table[pid][1] != "Z"]


def _sleeping_store(path: Path) -> TraceStore:
    st = TraceStore(path)
    p = Problem("livecodebench", "code", "Print 1.", {"tests": [{"input": "", "output": "1\n"}]})
    st.add_problems([p])
    st.add_samples([Sample(p.id, "```python\nimport time\ntime.sleep(30)\nprint(1)\n```", "s", "m")])
    return st


def _program_running(root: int) -> bool:
    """A sandboxed program runs below root: a process whose parent is the zygote (its cmdline names _zygote.py)."""
    for pid in _tree(root):
        try:
            if b"_zygote.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return any(_proc_table().get(c, (None,))[0] == pid for c in _tree(pid) if c != pid)
        except OSError:
            continue
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL],
                         ids=lambda s: signal.Signals(s).name)
def test_a_signal_to_verify_stops_its_whole_tree_within_a_second(tmp_path, sig):
    st = _sleeping_store(tmp_path / "store")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "curate", "verify", "--store", str(st.path), "--verifier", "code",
                             "--workers", "1"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=default_signals)
    try:
        deadline = time.monotonic() + 120
        while not _program_running(proc.pid):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(timeout=5)
            time.sleep(0.1)
        snapshot = _tree(proc.pid)
        assert len(snapshot) >= 4, snapshot  # the command, the forkserver, a worker, its zygote, the program
        os.kill(proc.pid, sig)
        t0 = time.monotonic()
        while _alive(snapshot) and time.monotonic() - t0 < STOP_WITHIN_S:
            time.sleep(0.02)
        left = _alive(snapshot)
        assert left == [], {pid: Path(f"/proc/{pid}/cmdline").read_bytes()[:100] for pid in left}
        _, err = proc.communicate(timeout=10)
        assert b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode()[-2000:]
    finally:
        for pid in _alive(_tree(proc.pid)) if proc.poll() is None else []:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
