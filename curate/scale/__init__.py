"""Running stages on more than one machine.

Two ways out of one machine, both writing into one store on a shared filesystem (docs/scale.md):
- a job array: `curate generate --shard i/n` per job; every job commits into the same store;
- a Ray cluster: `--executor ray [--ray-address ADDR]` on `curate generate`, `curate verify` and `curate eval`
  (`curate.scale.ray_executor` and `curate.scale.ray_label`, Ray Data pipelines; needs the optional extra
  `pip install 'curate[ray]'`). Workers write Parquet shards or return verdicts; the one writer on the driver
  commits them, so sample ids, idempotency and resume are exactly those of the local executor.

Test: `python -m pytest -q tests/test_ray_executor.py` (skipped when Ray is not installed).
"""
from __future__ import annotations

from curate.errors import InputError

EXECUTORS = ("local", "ray")


def check_executor(executor: str, address: str | None = None) -> str:
    """The executor name, checked; InputError for an unknown one or an address without Ray."""
    if executor not in EXECUTORS:
        raise InputError(f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if address and executor != "ray":
        raise InputError("--ray-address needs --executor ray")
    return executor
