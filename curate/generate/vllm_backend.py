"""vLLM offline backend: `vllm.LLM` + `SamplingParams`, one request per sample, chunked so results
reach the store as the run goes.

Written against vLLM's documented offline API: `LLM(model=..., revision=..., tensor_parallel_size=...,
dtype=..., gpu_memory_utilization=..., max_model_len=..., enforce_eager=..., seed=...)`,
`LLM.get_tokenizer()`, and `LLM.generate(prompts, sampling_params=[...], use_tqdm=False)` returning
`RequestOutput`s (`prompt_token_ids`, `outputs[0].text / token_ids / finish_reason /
cumulative_logprob / logprobs`). Chat prompts are rendered with the model tokenizer's chat template
here (so the injected-system-prompt check applies), raw prompts send the user text as is. Each sample
gets its own SamplingParams with a per-sample seed; prefix caching shares the prompt across the n
samples of a problem.

Data parallelism: run one process per GPU group with `curate generate --shard i/n` (every shard
commits into the same store); `data_parallel_size` is passed to vLLM only for versions that accept it.
Needs `pip install 'curate[vllm]'` and a GPU. Test: tests/test_backend_vllm.py (runs only with both).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from curate.errors import BackendError
from curate.generate.base import Completion, Request, SamplingParams
from curate.generate.prompting import render, warn_if_injected


@dataclass(frozen=True)
class VLLMConfig:
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    dtype: str = "auto"
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    enforce_eager: bool = False
    raw: bool = False
    chunk_size: int = 2048  # requests per LLM.generate call (results are stored after each)
    top_logprobs: int = 20  # alternatives kept per token for the entropy estimate when --logprobs
    engine_args: dict = field(default_factory=dict)  # any other vllm.LLM keyword argument

    def __post_init__(self) -> None:
        if self.tensor_parallel_size < 1 or self.data_parallel_size < 1 or self.chunk_size < 1:
            raise ValueError("tensor_parallel_size, data_parallel_size and chunk_size must be >= 1")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError("gpu_memory_utilization must be in (0, 1]")


class VLLMBackend:
    name = "vllm"

    @staticmethod
    def resources(options: dict, cluster: dict) -> tuple[dict, int]:
        """One Ray actor per tensor-parallel group of GPUs."""
        tp = int(options.get("tensor_parallel_size", 1))
        return {"num_gpus": tp, "num_cpus": 1}, max(1, int(cluster.get("GPU", 0) // tp))

    def __init__(self, model: str, config: VLLMConfig | None = None, sampling: SamplingParams | None = None,
                 revision: str | None = None) -> None:
        try:
            import vllm
        except ImportError:
            raise BackendError("the vllm backend needs vLLM, which is not installed: pip install 'curate[vllm]'",
                               hint="vLLM needs Linux and a CUDA GPU; elsewhere use --backend openai against a "
                                    "`vllm serve` endpoint") from None
        self.vllm = vllm
        self.config = c = config or VLLMConfig()
        self.sampling = sampling or SamplingParams()
        self.model, self.revision = model, revision
        kwargs = dict(model=model, revision=revision, tensor_parallel_size=c.tensor_parallel_size, dtype=c.dtype,
                      gpu_memory_utilization=c.gpu_memory_utilization, enforce_eager=c.enforce_eager, **c.engine_args)
        if c.max_model_len:
            kwargs["max_model_len"] = c.max_model_len
        if c.data_parallel_size > 1:
            kwargs["data_parallel_size"] = c.data_parallel_size
        try:
            self.llm = vllm.LLM(**kwargs)
        except Exception as e:  # vLLM raises many types for bad models, OOM, missing GPUs
            raise BackendError(f"vLLM could not start {model!r}: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from None
        self.tokenizer = self.llm.get_tokenizer()
        if not c.raw:
            warn_if_injected(self.tokenizer)

    def identity_params(self) -> dict:
        return {"raw": self.config.raw, "dtype": self.config.dtype}

    def close(self) -> None:
        self.llm = None

    def params_for(self, req: Request):
        s = self.sampling
        return self.vllm.SamplingParams(
            n=1, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k if s.top_k > 0 else -1, min_p=s.min_p,
            max_tokens=s.max_tokens, seed=req.per_sample_seed,
            logprobs=self.config.top_logprobs if s.logprobs else None)

    def generate(self, requests: Iterable[Request]) -> Iterator[Completion]:
        chunk: list[Request] = []
        for req in requests:
            chunk.append(req)
            if len(chunk) >= self.config.chunk_size:
                yield from self._chunk(chunk)
                chunk = []
        if chunk:
            yield from self._chunk(chunk)

    def _chunk(self, reqs: list[Request]) -> Iterator[Completion]:
        rendered: dict[tuple, str] = {}
        prompts = []
        for r in reqs:
            if r.messages not in rendered:
                rendered[r.messages] = r.messages[-1]["content"] if self.config.raw else render(self.tokenizer, r.messages)
            prompts.append(rendered[r.messages])
        t0 = time.perf_counter()
        try:
            outs = self.llm.generate(prompts, sampling_params=[self.params_for(r) for r in reqs], use_tqdm=False)
        except Exception as e:
            raise BackendError(f"vLLM generate failed: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from None
        latency = time.perf_counter() - t0
        for req, out in zip(reqs, outs):
            o = out.outputs[0]
            n_tok = len(o.token_ids)
            lp = o.cumulative_logprob / n_tok if (o.cumulative_logprob is not None and n_tok) else None
            yield Completion(request_id=req.id, text=o.text, finish_reason="stop" if o.finish_reason == "stop" else
                             "length" if o.finish_reason == "length" else "unknown",
                             prompt_tokens=len(out.prompt_token_ids or []), completion_tokens=n_tok, latency_s=latency,
                             teacher_logprob=lp, teacher_entropy=_entropy(o.logprobs))


def _entropy(logprobs) -> float | None:
    """Mean over positions of -sum p log p across the returned top alternatives (a lower bound)."""
    import math

    if not logprobs:
        return None
    vals = []
    for pos in logprobs:
        vals.append(-sum(math.exp(x.logprob) * x.logprob for x in pos.values()))
    return sum(vals) / len(vals) if vals else None
