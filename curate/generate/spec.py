"""BackendSpec: a backend named but not built (the `make_backend` arguments), checked where it is made, so a
worker process or Ray actor can build the same backend later."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from curate.errors import InputError


@dataclass(frozen=True)
class BackendSpec:
    """What a worker needs to build the backend itself (`curate.generate.make_backend` arguments)."""

    name: str
    model: str | None
    sampling: Any
    options: dict = field(default_factory=dict)
    revision: str | None = None

    def __post_init__(self) -> None:
        """Bad options or a missing model fail here on the driver, in one line, before Ray starts anything."""
        from curate.generate import backend_class, config_class
        from curate.tasks.base import build_config

        build_config(config_class(self.name), dict(self.options))
        if getattr(backend_class(self.name), "needs_model", True) and not self.model:
            raise InputError(f"the {self.name} backend needs --model")

    def build(self) -> Any:
        from curate.generate import make_backend

        return make_backend(self.name, self.model, self.sampling, self.options, self.revision)

    def local_identity(self, cfg: Any) -> Any:
        """The generator identity built here for backends that load no model (`loads_model = False`); else None."""
        from curate.generate import backend_class

        if getattr(backend_class(self.name), "loads_model", True):
            return None
        from curate.generate.runner import generator_identity

        backend = self.build()
        try:
            return ReportedIdentity(generator_identity(backend, cfg))
        finally:
            backend.close()

    def resources(self, cluster: dict) -> tuple[dict, int]:
        """(Ray resources of one actor, how many actors the cluster holds): the backend's own `resources`, else
        one CPU actor per CPU."""
        from curate.generate import backend_class

        own = getattr(backend_class(self.name), "resources", None)
        if own is not None:
            return own(self.options, cluster)
        return {"num_cpus": 1}, max(1, int(cluster.get("CPU", 1)))


class ReportedIdentity:
    """A backend as the planner sees it: only the generator identity a worker's real backend reported."""

    def __init__(self, gen: dict) -> None:
        self.name, self.model, self.revision, self._params = gen["backend"], gen["model"], gen["revision"], gen["params"]

    def identity_params(self) -> dict:
        return dict(self._params)
