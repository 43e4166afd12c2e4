"""curate.child.Pool: children side by side in CPU slots or on GPUs, thread shares, exit reporting."""
from __future__ import annotations

import sys

import pytest

from curate import cpus
from curate.child import Pool


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def rendezvous(mine, other) -> list[str]:
    """A child that announces itself and then waits (10 s at most) for the other one: both can finish only
    when they run at the same time."""
    return py(f"import pathlib, time, sys\npathlib.Path({str(mine)!r}).touch()\n"
              f"t = time.time()\nwhile not pathlib.Path({str(other)!r}).exists():\n"
              f"    time.sleep(0.02)\n    if time.time() - t > 10: sys.exit(3)\n")


def drain(pool: Pool) -> dict:
    out = {}
    while len(pool):
        for f in pool.wait(poll=0.02):
            out[f.key] = f
    return out


def test_two_cpu_slots_run_two_children_at_once(tmp_path):
    pool = Pool(cpu_slots=2)
    a, b = tmp_path / "a", tmp_path / "b"
    pool.start("a", rendezvous(a, b), tmp_path / "a.log")
    assert pool.can_start()
    pool.start("b", rendezvous(b, a), tmp_path / "b.log")
    assert not pool.can_start(), "both CPU slots are taken"
    done = drain(pool)
    assert {k: f.returncode for k, f in done.items()} == {"a": 0, "b": 0}
    assert all(f.gpu is None and f.seconds > 0 for f in done.values())


def test_one_cpu_slot_waits_and_a_failure_is_reported_with_its_log(tmp_path):
    pool = Pool(cpu_slots=1)
    pool.start("bad", py("import sys; print('error: no such thing'); sys.exit(2)"), tmp_path / "bad.log")
    assert not pool.can_start()
    with pytest.raises(RuntimeError):
        pool.start("other", py("pass"), tmp_path / "other.log")
    [f] = pool.wait(poll=0.02)
    assert (f.key, f.returncode) == ("bad", 2)
    assert "error: no such thing" in f.log.read_text()
    assert pool.can_start() and pool.wait() == []


def test_cpu_children_share_the_threads_curate_chose(tmp_path, monkeypatch):
    monkeypatch.setenv(cpus.AUTO_MARK, "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    pool = Pool(cpu_slots=2)
    show = py("import os; print('threads', os.environ['OMP_NUM_THREADS'], os.environ.get('CUDA_VISIBLE_DEVICES'))")
    pool.start("one", show, tmp_path / "one.log")
    drain(pool)
    assert "threads 2 None" in (tmp_path / "one.log").read_text()

    monkeypatch.delenv(cpus.AUTO_MARK)  # the user set the counts: children keep them
    pool.start("two", show, tmp_path / "two.log")
    drain(pool)
    assert "threads 4 None" in (tmp_path / "two.log").read_text()


def test_gpu_children_take_free_gpus_and_give_them_back(tmp_path):
    pool = Pool(gpus=["3", "5"], cpu_slots=1)
    show = py("import os; print('gpu', os.environ['CUDA_VISIBLE_DEVICES'])")
    a, b = tmp_path / "a", tmp_path / "b"
    assert pool.start("a", rendezvous(a, b), tmp_path / "a.log", wants_gpu=True) == "3"
    assert pool.start("b", rendezvous(b, a), tmp_path / "b.log", wants_gpu=True) == "5"
    assert not pool.can_start(wants_gpu=True) and pool.can_start(wants_gpu=False), "a CPU slot is still free"
    done = drain(pool)
    assert {f.gpu for f in done.values()} == {"3", "5"} and all(f.returncode == 0 for f in done.values())
    assert pool.start("c", show, tmp_path / "c.log", wants_gpu=True) in ("3", "5")
    drain(pool)
    assert "gpu " in (tmp_path / "c.log").read_text()


def test_max_running_caps_gpu_and_cpu_children_together(tmp_path):
    pool = Pool(gpus=["0", "1", "2"], cpu_slots=3, max_running=2)
    a, b = tmp_path / "a", tmp_path / "b"
    pool.start("a", rendezvous(a, b), tmp_path / "a.log", wants_gpu=True)
    pool.start("b", rendezvous(b, a), tmp_path / "b.log")
    assert not pool.can_start(wants_gpu=True) and not pool.can_start()
    assert all(f.returncode == 0 for f in drain(pool).values())
