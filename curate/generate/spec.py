"""A backend named but not built (`BackendSpec`), and what a backend is to the store (`BackendIdentity`).

`BackendSpec` holds the `make_backend` arguments, checked where it is made, so a worker process or Ray actor
can build the same backend later. `BackendIdentity` is what the stored generator fields and the sample ids are
made of; it comes from a built backend (`BackendIdentity.of`), from the backend class and its validated config
without building anything (`BackendSpec.declared_identity`), or from a Ray worker that built the backend and
sent it back (it pickles).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from curate.errors import InputError


@dataclass(frozen=True)
class BackendIdentity:
    """A backend as the planner and the stored rows see it: name, model, revision and the backend's own settings
    that change what it generates (`identity_params`)."""

    name: str
    model: str | None
    revision: str | None
    params: dict = field(default_factory=dict)

    @classmethod
    def of(cls, backend: Any) -> BackendIdentity:
        """What a built backend reports (a model-backed one may fill in the revision it loaded)."""
        return cls(backend.name, backend.model, backend.revision, backend.identity_params())


@dataclass(frozen=True)
class BackendSpec:
    """What a worker needs to build the backend itself (`curate.generate.make_backend` arguments)."""

    name: str
    model: str | None
    sampling: Any
    options: dict = field(default_factory=dict)
    revision: str | None = None
    config: Any = field(init=False, repr=False, compare=False)  # the backend's validated config dataclass

    def __post_init__(self) -> None:
        """Bad options or a missing model fail here on the driver, in one line, before Ray starts anything."""
        from curate.generate import backend_class, config_class
        from curate.tasks.base import build_config

        object.__setattr__(self, "config", build_config(config_class(self.name), dict(self.options)))
        if getattr(backend_class(self.name), "needs_model", True) and not self.model:
            raise InputError(f"the {self.name} backend needs --model")

    def build(self) -> Any:
        from curate.generate import make_backend

        return make_backend(self.name, self.model, self.sampling, self.options, self.revision)

    def declared_identity(self, model: str | None = None) -> BackendIdentity:
        """The identity from the backend class and the validated config, nothing built or loaded; `model` names
        it instead of the spec's model (a checkpoint's stable identity rather than its current path)."""
        from curate.generate import backend_class

        # identity_params reads only `config` (the Backend protocol says so), so the class answers without a model
        params = backend_class(self.name).identity_params(SimpleNamespace(config=self.config))
        return BackendIdentity(self.name, self.model if model is None else model, self.revision, params)

    def local_identity(self) -> BackendIdentity | None:
        """The identity a backend that loads no model (`loads_model = False`) reports, built here; else None (only
        a worker that loads the model knows, e.g. the revision it resolved)."""
        from curate.generate import backend_class

        if getattr(backend_class(self.name), "loads_model", True):
            return None
        backend = self.build()
        try:
            return BackendIdentity.of(backend)
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
