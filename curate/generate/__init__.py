"""Generation: backends (synthetic, openai-compatible, hf transformers, vllm) behind one protocol, and the
resumable runner. `generate(...)` is what `curate generate` calls.

Backends are built by name with `make_backend(name, model, sampling, options)`; `options` are the
backend's config fields (`--option key=value` on the command line), validated by its frozen config dataclass.
A backend is one module (a class with `name`, `identity_params`, `generate`, `close`, and optionally
`needs_model`, `loads_model` and `resources` for Ray) plus one line in `_CLASSES` below; nothing else names it.
Heavy backends import their packages lazily, so the synthetic path needs neither torch nor vllm.
"""
from __future__ import annotations

from typing import Any

from curate.errors import InputError
from curate.generate.base import Backend, Completion, Request, SamplingParams
from curate.generate.runner import RunConfig, RunReport, parse_shard, run

__all__ = ["BACKENDS", "make_backend", "backend_class", "config_class", "generate", "Backend", "Completion", "Request", "SamplingParams",
           "RunConfig", "RunReport", "parse_shard"]

# name -> (module, backend class, config class); modules import their heavy packages lazily
_CLASSES = {
    "synthetic": ("curate.generate.synthetic", "SyntheticBackend", "SyntheticConfig"),
    "openai": ("curate.generate.openai_backend", "OpenAIBackend", "OpenAIConfig"),
    "hf": ("curate.generate.hf_backend", "HFBackend", "HFConfig"),
    "vllm": ("curate.generate.vllm_backend", "VLLMBackend", "VLLMConfig"),
}
BACKENDS = tuple(_CLASSES)


def _classes(name: str) -> tuple[type, type]:
    import importlib

    if name not in _CLASSES:
        raise InputError(f"unknown backend {name!r}", hint=f"choose one of: {', '.join(BACKENDS)}")
    module, backend, config = _CLASSES[name]
    mod = importlib.import_module(module)
    return getattr(mod, backend), getattr(mod, config)


def backend_class(name: str) -> type:
    """The backend class registered as `name` (its module is imported, not its model)."""
    return _classes(name)[0]


def config_class(name: str) -> type:
    """The frozen config dataclass of backend `name` (its module is imported, not its model)."""
    return _classes(name)[1]


def make_backend(name: str, model: str | None, sampling: SamplingParams, options: dict[str, Any] | None = None,
                 revision: str | None = None) -> Backend:
    from curate.tasks.base import build_config

    cls, config_cls = _classes(name)
    config = build_config(config_cls, dict(options or {}))
    if not getattr(cls, "needs_model", True):
        return cls(model, config, sampling) if model else cls(config=config, sampling=sampling)  # its default model
    if not model:
        raise InputError(f"the {name} backend needs --model")
    return cls(model, config, sampling, revision)


def generate(store, where: str | None, backend: str, model: str | None, *, sampling: SamplingParams,
             options: dict[str, Any] | None = None, revision: str | None = None, run_config: RunConfig | None = None,
             dry_run: bool = False, progress: bool = True, executor: str = "local",
             ray_address: str | None = None) -> RunReport:
    """Generate into the store on this machine, or on a Ray cluster with executor="ray" (same ids, same shards;
    a dry run always plans here)."""
    import dataclasses

    from curate.generate.spec import BackendSpec
    from curate.scale import resolve_executor

    cfg = dataclasses.replace(run_config or RunConfig(), sampling=sampling)  # one source of truth for params
    ex = resolve_executor(executor, ray_address)
    spec = BackendSpec(backend, model, sampling, dict(options or {}), revision)
    if not dry_run:
        return ex.generate(store, spec, where, cfg, progress=progress)
    b = spec.build()  # a dry run always plans here
    try:
        return run(store, b, where, cfg, dry_run=True, progress=progress)
    finally:
        b.close()
