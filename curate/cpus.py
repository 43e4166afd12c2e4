"""How many CPU threads curate's own compute (torch in `train` and the hf backend) should use.

`os.cpu_count()` counts the machine, not what this process may run on. `usable_cpus()` takes the
smaller of the affinity mask and the cgroup CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`).
`threads(workers)` splits that among the processes curate starts itself, and drops to one thread when
the machine is already saturated (the 1-minute load average is at or above the usable CPUs): intra-op
threads on a busy machine only wait for each other (each parallel region ends when its slowest thread,
the one descheduled by a neighbour, does).

`configure()` runs once when the command line starts, before torch is imported: unless the user set
them, it sets OMP_NUM_THREADS / MKL_NUM_THREADS to `threads()` and OMP_WAIT_POLICY=PASSIVE (idle OpenMP
threads sleep instead of spinning against the neighbours). Children inherit these; `per_child(n)` is
what to give each of n children that run at once. Test: tests/test_cpus.py.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
AUTO_MARK = "CURATE_THREADS_AUTO"  # set when curate chose the counts (so it may split them for children)


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in CPUs, or None when unlimited or unknown."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def usable_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may run on: min(affinity mask, cgroup quota rounded up), at least 1."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_quota(cgroup_root)
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def threads(workers: int = 1, usable: int | None = None, load: float | None = None) -> int:
    """Threads per process for `workers` compute processes curate runs at once."""
    usable = usable_cpus() if usable is None else usable
    load = _load() if load is None else load
    if load >= usable:  # saturated: more threads only spin and wait on descheduled siblings
        return 1
    return max(1, usable // max(1, workers))


def per_child(n: int) -> dict[str, str]:
    """Thread settings for each of `n` children running at once (empty when the user chose the counts)."""
    if os.environ.get(AUTO_MARK) != "1":
        return {}
    t = str(max(1, int(os.environ.get("OMP_NUM_THREADS", "1")) // max(1, n)))
    return {v: t for v in THREAD_VARS}


def configure(workers: int = 1) -> None:
    """Set the thread variables for this process and its children, unless the user set OMP_NUM_THREADS."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if "OMP_NUM_THREADS" in os.environ:
        return
    t = str(threads(workers))
    for v in THREAD_VARS:
        os.environ.setdefault(v, t)
    os.environ[AUTO_MARK] = "1"
