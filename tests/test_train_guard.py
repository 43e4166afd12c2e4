"""Training shuts down as one unit, without torch: the run lock (refused while alive, stale once its holder
died), the ranks lock, and a stand-in torchrun whose "rank" runs in its own session as torchrun's do.
Killing the launcher's process group, SIGKILL to the launcher alone, or SIGTERM to it leaves no rank alive.
Process checks only look at the processes these tests start."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from curate.errors import InputError
from curate.train.guard import RunLock
from tests.helpers import alive, descendants, wait_gone

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and flock")


def test_lock_refuses_a_second_launcher_and_names_the_holder(tmp_path):
    out = tmp_path / "run"
    with RunLock(out):
        with pytest.raises(InputError) as e:
            RunLock(out).acquire()
        assert f"is in use by a running `curate train` (pid {os.getpid()}" in e.value.message
    with RunLock(out):  # released: the next run may start
        pass


def test_a_lock_left_by_a_dead_launcher_is_stale(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / ".train.lock").write_text(f"{dead.pid} {os.uname().nodename}\n")
    with RunLock(out) as lock:
        assert lock.path.read_text().split()[0] == str(os.getpid())


def test_launcher_waits_for_ranks_of_an_earlier_run(tmp_path):
    import fcntl

    out = tmp_path / "run"
    out.mkdir()
    fd = os.open(out / ".ranks.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_SH)  # a rank that is still alive
    try:
        with pytest.raises(InputError, match="ranks of an earlier run"):
            RunLock(out, ranks_wait_s=0.3).acquire()
    finally:
        os.close(fd)
    with RunLock(out, ranks_wait_s=0.3):  # the refused attempt did not keep the run lock
        pass


# A stand-in for `curate train` -> torchrun -> rank: the same guard code, no torch. The "rank" starts in its
# own session like torchrun's workers, holds the ranks lock and runs the launcher watchdog.
RANK = "from curate.train.guard import watch_launcher; import time; watch_launcher(0.1); print('ready', flush=True); time.sleep(120)"
TORCHRUN = f"""
import subprocess, sys, time
subprocess.Popen([sys.executable, '-c', {RANK!r}], start_new_session=True)
time.sleep(120)
"""
LAUNCHER = """
import sys
from pathlib import Path
from curate.errors import CurateError
from curate.train.guard import RunLock, run_torchrun
lock = RunLock(Path(sys.argv[1])).acquire()
try:
    run_torchrun([sys.executable, '-c', sys.argv[2]], lock)
except CurateError as e:
    print('error:', e.message, flush=True)
    sys.exit(e.exit_code)
"""


def _start(tmp_path: Path) -> tuple[subprocess.Popen, set[int]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    launcher = subprocess.Popen([sys.executable, "-c", textwrap.dedent(LAUNCHER), str(tmp_path / "run"), TORCHRUN],
                                start_new_session=True, env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        tree = descendants(launcher.pid)
        if len(tree) >= 2 and (tmp_path / "run" / ".ranks.lock").exists():
            break
        time.sleep(0.1)
    time.sleep(1.0)  # the rank's watchdog and ranks lock are up once it has imported the guard
    tree = descendants(launcher.pid)
    assert len(tree) == 2, tree  # torchrun stand-in + its rank
    return launcher, tree


@pytest.mark.parametrize("how", ["group SIGKILL", "launcher SIGKILL", "launcher SIGTERM"])
def test_no_rank_outlives_its_launcher(tmp_path, how):
    launcher, tree = _start(tmp_path)
    if how == "group SIGKILL":
        os.killpg(launcher.pid, signal.SIGKILL)
    elif how == "launcher SIGKILL":
        os.kill(launcher.pid, signal.SIGKILL)
    else:
        os.kill(launcher.pid, signal.SIGTERM)
    rc = launcher.wait(timeout=60)
    assert wait_gone(tree, 5.0) == set(), how
    if how == "launcher SIGTERM":
        assert rc == 128 + signal.SIGTERM
        assert "training stopped by SIGTERM" in launcher.stdout.read()
        assert not any(alive(p) for p in tree)  # the launcher returned only after its ranks were gone
    with RunLock(tmp_path / "run", ranks_wait_s=1.0):  # nothing holds the run any more
        pass
