"""Thread counts from the CPUs a process may really use (curate/cpus.py): the affinity mask and the cgroup
quota, split among curate's own workers, one thread on a saturated machine, and what a real `python -m curate`
child pinned to one CPU ends up with in torch."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from curate import cpus
from tests.helpers import ROOT


def test_cgroup_quota_caps_the_affinity_mask(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cpus.usable_cpus(tmp_path) == min(len(os.sched_getaffinity(0)), 2)
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpus.usable_cpus(tmp_path) == len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert cpus.usable_cpus(tmp_path) == 1


@pytest.mark.parametrize("workers, usable, load, expect", [
    (1, 8, 0.5, 8), (4, 8, 0.5, 2), (16, 8, 0.5, 1),  # split among curate's own workers
    (1, 8, 8.0, 1), (1, 2, 12.0, 1),  # saturated: extra threads only wait for descheduled siblings
])
def test_threads(workers, usable, load, expect):
    assert cpus.threads(workers, usable=usable, load=load) == expect


def _child_threads(env: dict, cpu_set: set[int]) -> list[str]:
    code = ("import os; from curate import cpus; cpus.configure(); import torch; "
            "print(torch.get_num_threads(), os.environ['OMP_NUM_THREADS'], os.environ['OMP_WAIT_POLICY'])")
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_", "OPENBLAS_", "CURATE_THREADS"))}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env={**full, "PYTHONPATH": str(ROOT), **env}, preexec_fn=lambda: os.sched_setaffinity(0, cpu_set))
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_a_child_pinned_to_one_cpu_runs_torch_on_one_thread():
    pytest.importorskip("torch")
    cpu = min(os.sched_getaffinity(0))
    assert _child_threads({}, {cpu}) == ["1", "1", "PASSIVE"]
    assert _child_threads({"OMP_NUM_THREADS": "2"}, {cpu}) == ["2", "2", "PASSIVE"]  # the user's choice stands


def test_children_split_what_curate_chose(monkeypatch):
    monkeypatch.setenv(cpus.AUTO_MARK, "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    assert cpus.per_child(2)["OMP_NUM_THREADS"] == "4"
    monkeypatch.delenv(cpus.AUTO_MARK)
    assert cpus.per_child(2) == {}


def _sql_threads(tmp_path, env: dict, cpu_set: set[int]) -> str:
    """DuckDB's thread count on a real store's read connection in a child pinned to `cpu_set`."""
    code = ("import sys; from curate.store import TraceStore; from curate.tasks import add_problems; "
            "st = TraceStore(sys.argv[1]); add_problems(st, 'countdown', {}, size=1, seed=1); "
            "print(st.query(\"SELECT current_setting('threads') AS t\").to_pylist()[0]['t'])")
    full = {k: v for k, v in os.environ.items() if not k.startswith("CURATE_SQL_")}
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "store")], capture_output=True, text=True, cwd=ROOT,
                       timeout=120, env={**full, "PYTHONPATH": str(ROOT), **env},
                       preexec_fn=lambda: os.sched_setaffinity(0, cpu_set))
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_store_queries_use_the_cpus_the_process_may_run_on(tmp_path):
    cpu = min(os.sched_getaffinity(0))
    assert _sql_threads(tmp_path, {}, {cpu}) == "1"  # not os.cpu_count(): the host's cores are not ours
    assert _sql_threads(tmp_path, {"CURATE_SQL_THREADS": "3"}, {cpu}) == "3"  # the user's choice stands
    assert _sql_threads(tmp_path, {"CURATE_SQL_THREADS": "0"}, {cpu}) == "1"  # 0: the default
