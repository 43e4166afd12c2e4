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

import contextlib
from dataclasses import dataclass
from typing import Any

from curate.errors import InputError

EXECUTORS = ("local", "ray")


def check_executor(executor: str, address: str | None = None) -> str:
    """The executor name, checked; InputError for an unknown one or an address without Ray."""
    if executor not in EXECUTORS:
        raise InputError(f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if address and executor != "ray":
        raise InputError("--ray-address needs --executor ray")
    return executor


@dataclass(frozen=True)
class Executor:
    """Where a stage's work runs, chosen once (`resolve_executor`): this machine's processes or a Ray cluster.

    Stages call these methods and never branch on the executor's name; sample ids, shards and verdicts are the
    same either way."""

    name: str = "local"
    address: str | None = None

    @property
    def is_cluster(self) -> bool:
        """True when a cluster schedules the work (local process fan-out such as `--jobs` does not apply)."""
        return self.name != "local"

    def label_store(self, store: Any, **kwargs: Any) -> Any:
        """Judge unlabeled samples (curate.label.label_store's arguments)."""
        if self.name == "ray":
            from curate.scale.ray_label import label_store

            return label_store(store, address=self.address, **kwargs)
        from curate.label import label_store

        return label_store(store, **kwargs)

    def generate(self, store: Any, spec: Any, where: str | None, cfg: Any, *, identity: Any = None,
                 backend: Any = None, progress: bool = True) -> Any:
        """Generate the missing samples of the selected problems. `spec` (a BackendSpec) is what a worker builds;
        `identity` (a BackendIdentity), when given, is the backend as the planner sees it; `backend`, when given,
        is the one to use here instead of building `spec` (Ray workers always build `spec`); on Ray, a `backend`
        with a `skipped` list receives the prompts the workers' servers refused, as that list does locally."""
        if self.name == "ray":
            from curate.scale.ray_executor import generate

            return generate(store, spec, where, cfg, identity=identity, progress=progress, address=self.address,
                            refused=getattr(backend, "skipped", None))
        from curate.generate.runner import run

        if backend is not None:
            return run(store, backend, where, cfg, progress=progress, identity=identity)
        built = spec.build()
        try:
            return run(store, built, where, cfg, progress=progress, identity=identity)
        finally:
            built.close()

    def session(self) -> contextlib.AbstractContextManager:
        """One cluster connection for many stage calls (starting Ray costs seconds); nothing locally."""
        if self.name != "ray":
            return contextlib.nullcontext()
        from curate.scale.ray_executor import session

        return session(self.address)


def resolve_executor(executor: str = "local", address: str | None = None) -> Executor:
    """The executor named on the command line, checked once."""
    return Executor(check_executor(executor, address), address)
