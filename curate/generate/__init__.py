"""Generation: backends (synthetic, openai-compatible, hf transformers, vllm) behind one protocol, and the
resumable runner. `generate(...)` is what `curate generate` calls.

Backends are built by name with `make_backend(name, model, sampling, options)`; `options` are the
backend's config fields (`-o key=value` on the command line), validated by its frozen config dataclass.
Heavy backends import their packages lazily, so the synthetic path needs neither torch nor vllm.
"""
from __future__ import annotations

from typing import Any

from curate.errors import InputError
from curate.generate.base import Backend, Completion, Request, SamplingParams
from curate.generate.runner import RunConfig, RunReport, parse_shard, run

__all__ = ["BACKENDS", "make_backend", "generate", "Backend", "Completion", "Request", "SamplingParams",
           "RunConfig", "RunReport", "parse_shard"]

BACKENDS = ("synthetic", "openai", "hf", "vllm")


def _config_cls(name: str) -> type:
    if name == "synthetic":
        from curate.generate.synthetic import SyntheticConfig
        return SyntheticConfig
    if name == "openai":
        from curate.generate.openai_backend import OpenAIConfig
        return OpenAIConfig
    if name == "hf":
        from curate.generate.hf_backend import HFConfig
        return HFConfig
    if name == "vllm":
        from curate.generate.vllm_backend import VLLMConfig
        return VLLMConfig
    raise InputError(f"unknown backend {name!r}", hint=f"choose one of: {', '.join(BACKENDS)}")


def make_backend(name: str, model: str | None, sampling: SamplingParams, options: dict[str, Any] | None = None,
                 revision: str | None = None) -> Backend:
    from curate.tasks.base import build_config

    config = build_config(_config_cls(name), dict(options or {}))
    if name == "synthetic":
        from curate.generate.synthetic import SyntheticBackend
        return SyntheticBackend(model or "countdown-dfs", config, sampling)
    if not model:
        raise InputError(f"the {name} backend needs --model")
    if name == "openai":
        from curate.generate.openai_backend import OpenAIBackend
        return OpenAIBackend(model, config, sampling, revision)
    if name == "hf":
        from curate.generate.hf_backend import HFBackend
        return HFBackend(model, config, sampling, revision)
    from curate.generate.vllm_backend import VLLMBackend
    return VLLMBackend(model, config, sampling, revision)


def generate(store, where: str | None, backend: str, model: str | None, *, sampling: SamplingParams,
             options: dict[str, Any] | None = None, revision: str | None = None, run_config: RunConfig | None = None,
             dry_run: bool = False, progress: bool = True, executor: str = "local",
             ray_address: str | None = None) -> RunReport:
    """Generate into the store on this machine, or on a Ray cluster with executor="ray" (same ids, same shards;
    a dry run always plans here)."""
    import dataclasses

    from curate.scale import check_executor

    cfg = dataclasses.replace(run_config or RunConfig(), sampling=sampling)  # one source of truth for params
    if check_executor(executor, ray_address) == "ray" and not dry_run:
        from curate.scale.ray_executor import BackendSpec, generate as ray_generate

        spec = BackendSpec(backend, model, sampling, dict(options or {}), revision)
        return ray_generate(store, spec, where, cfg, progress=progress, address=ray_address)
    b = make_backend(backend, model, sampling, options, revision)
    try:
        return run(store, b, where, cfg, dry_run=dry_run, progress=progress)
    finally:
        b.close()
