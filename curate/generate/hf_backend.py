"""Transformers backend: batched `model.generate` on CPU or GPU, for small models and tests.

Prompts go through the tokenizer's chat template (`raw=true` sends the plain user text), batches are
left-padded, sampling follows SamplingParams (temperature 0 means greedy). Per row it keeps prompt and
completion token counts, finish_reason (`stop` when EOS was generated, else `length`), the batch's wall
time, and with `logprobs` the mean token logprob and entropy of the raw logits.

Sampling (temperature > 0) draws every row's next token from its own random stream, seeded by the request's
`per_sample_seed` (problem id, sample index and run seed): `_PerRowSampler` applies temperature, top-k,
top-p and min-p to each row's logits and samples with that row's `torch.Generator` (on the model's device),
and `generate` then decodes greedily over the result. So a sample's text does not depend on which samples
share its batch, on the batch size, or on whether an interrupted run was resumed (tests/test_backend_hf.py
checks all three). Requests are sorted by prompt length within a window of `batch_size * 8` to limit padding.
Known issues: padding changes the shapes of the matrix products, so logits can differ in the last bits
between batch compositions; a draw that lands exactly on such a boundary could still flip a token.
Needs `pip install 'curate[train]'` (torch, transformers). Test: tests/test_backend_hf.py.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable, Iterator

from curate.errors import BackendError, InputError
from curate.generate.base import Completion, Request, SamplingParams
from curate.generate.prompting import render, warn_if_injected


@dataclass(frozen=True)
class HFConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    batch_size: int = 8
    raw: bool = False
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be auto, float32, bfloat16 or float16, got {self.dtype!r}")


class HFBackend:
    name = "hf"

    @staticmethod
    def resources(options: dict, cluster: dict) -> tuple[dict, int]:
        """One Ray actor per GPU when the cluster has GPUs and the device is not pinned to the CPU."""
        if str(options.get("device", "auto")) != "cpu" and cluster.get("GPU", 0) >= 1:
            return {"num_gpus": 1, "num_cpus": 1}, int(cluster["GPU"])
        return {"num_cpus": 1}, max(1, int(cluster.get("CPU", 1)))

    def __init__(self, model: str, config: HFConfig | None = None, sampling: SamplingParams | None = None,
                 revision: str | None = None) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:
            raise BackendError(f"the hf backend needs torch and transformers ({e})",
                               hint="pip install 'curate[train]'") from None
        self.config = config or HFConfig()
        self.sampling = sampling or SamplingParams()
        self.model = model
        self.torch = torch
        c = self.config
        device = c.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = {"auto": torch.bfloat16 if device.startswith("cuda") else torch.float32, "float32": torch.float32,
                 "bfloat16": torch.bfloat16, "float16": torch.float16}[c.dtype]
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model, revision=revision, trust_remote_code=c.trust_remote_code)
            self.lm = AutoModelForCausalLM.from_pretrained(model, revision=revision, dtype=dtype,
                                                           trust_remote_code=c.trust_remote_code).to(device).eval()
        except (OSError, ValueError) as e:
            raise BackendError(f"cannot load model {model!r}: {str(e).splitlines()[0]}") from None
        self.device = device
        self.revision = revision or getattr(self.lm.config, "_commit_hash", None)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        eos = self.lm.generation_config.eos_token_id if self.lm.generation_config.eos_token_id is not None \
            else self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        if not c.raw:
            if not getattr(self.tokenizer, "chat_template", None):
                raise InputError(f"{model}: the tokenizer has no chat template", hint="set --option raw=true to send plain text")
            self.injected_system = warn_if_injected(self.tokenizer)

    def identity_params(self) -> dict:
        return {"raw": self.config.raw, "dtype": self.config.dtype}

    def close(self) -> None:
        self.lm = None

    def prompt_text(self, req: Request) -> str:
        return req.messages[-1]["content"] if self.config.raw else render(self.tokenizer, req.messages)

    def generate(self, requests: Iterable[Request]) -> Iterator[Completion]:
        bs = self.config.batch_size
        window: list[Request] = []
        for req in requests:
            window.append(req)
            if len(window) >= bs * 8:
                yield from self._window(window)
                window = []
        if window:
            yield from self._window(window)

    def _window(self, reqs: list[Request]) -> Iterator[Completion]:
        texts = {r.id: self.prompt_text(r) for r in reqs}
        ordered = sorted(reqs, key=lambda r: len(texts[r.id]))
        bs = self.config.batch_size
        for start in range(0, len(ordered), bs):
            batch = ordered[start:start + bs]
            yield from self._batch(batch, [texts[r.id] for r in batch])

    def _batch(self, batch: list[Request], prompts: list[str]) -> Iterator[Completion]:
        torch, s = self.torch, self.sampling
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        kwargs: dict = {"max_new_tokens": s.max_tokens, "pad_token_id": self.tokenizer.pad_token_id,
                        "eos_token_id": sorted(self.eos_ids) or None}
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if s.temperature > 0:  # sampled per row by the processor, then picked greedily (see the module docstring)
            from transformers import LogitsProcessorList

            kwargs["logits_processor"] = LogitsProcessorList([_PerRowSampler(torch, s, [r.per_sample_seed for r in batch])])
        if s.logprobs:
            kwargs.update(return_dict_in_generate=True, output_logits=True)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = self.lm.generate(**enc, **kwargs)
        latency = time.perf_counter() - t0
        seqs = out.sequences if s.logprobs else out
        gen = seqs[:, enc["input_ids"].shape[1]:].tolist()
        prompt_lens = enc["attention_mask"].sum(dim=1).tolist()
        stats = self._logprob_stats(out, gen) if s.logprobs else [(None, None)] * len(batch)
        for row, req in enumerate(batch):
            ids = gen[row]
            end = next((k for k, t in enumerate(ids) if t in self.eos_ids), None)
            finish = "stop" if end is not None else ("length" if len(ids) >= s.max_tokens else "stop")
            kept = ids[: end + 1] if end is not None else [t for t in ids if t != self.tokenizer.pad_token_id]
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            yield Completion(request_id=req.id, text=text, finish_reason=finish, prompt_tokens=int(prompt_lens[row]),
                             completion_tokens=len(kept), latency_s=latency, teacher_logprob=stats[row][0],
                             teacher_entropy=stats[row][1])

    def _logprob_stats(self, out, gen: list[list[int]]) -> list[tuple[float | None, float | None]]:
        torch = self.torch
        logits = torch.stack(out.logits, dim=1).float()  # batch x steps x vocab (raw, before sampling warpers)
        logp = torch.log_softmax(logits, dim=-1)
        ent = -(logp.exp() * logp).sum(-1)
        res = []
        for row, ids in enumerate(gen):
            end = next((k for k, t in enumerate(ids) if t in self.eos_ids), len(ids) - 1) + 1
            idx = torch.tensor(ids[:end]).unsqueeze(-1)
            chosen = logp[row, :end].gather(-1, idx).squeeze(-1)
            res.append((float(chosen.mean()), float(ent[row, :end].mean())) if end else (None, None))
        return res


class _PerRowSampler:
    """A logits processor that samples each row's next token from its own generator and leaves only that token
    finite, so greedy decoding picks it. Rows without a seed draw from torch's global generator.

    The draw is the exponential race torch.multinomial(p, 1, generator=g) runs for one sample (argmax of
    p / q with q ~ Exp(1)), so the same generators pick the same tokens (tests/test_backend_hf.py compares
    them). Each row's q is drawn for a block of steps at once (BLOCK_VALUES per row): on the CPU one draw of k x vocab values equals k
    draws of one vocab each, so the tokens are those of a per-step draw at a fraction of the calls. The
    generators live on the logits' device, so a GPU run never copies probabilities to the CPU; its texts
    differ from a CPU run's anyway (another generator and, by default, bfloat16 logits)."""

    # Values per row and block: 64 steps of a 4k vocabulary, 8 of a 32k one, one of a 150k one (where a block
    # would save nothing and cost memory). It must not depend on the batch: on a GPU, one draw of k x vocab
    # values is not k draws of one vocab, so a batch-dependent block would make texts depend on their batch.
    BLOCK_VALUES = 1 << 18

    def __init__(self, torch, s: SamplingParams, seeds: list[int | None]) -> None:
        self.torch, self.s, self.seeds = torch, s, seeds
        self.generators: list | None = None
        self.q = None
        self.step = 0

    def _draws(self, probs):
        """This step's Exp(1) values, one row per sample; each row's block is drawn again once it is used up."""
        torch = self.torch
        if self.generators is None:
            self.generators = [None if seed is None else torch.Generator(device=probs.device).manual_seed(seed)
                               for seed in self.seeds]
            vocab = probs.shape[-1]
            self.q = torch.empty((len(self.seeds), max(1, min(64, self.BLOCK_VALUES // vocab)), vocab),
                                 dtype=probs.dtype, device=probs.device)
        at = self.step % self.q.shape[1]
        if at == 0:
            for i, g in enumerate(self.generators):
                self.q[i].exponential_(1, generator=g)
        self.step += 1
        return self.q[:, at]

    def __call__(self, input_ids, scores):
        torch, s = self.torch, self.s
        logits = scores.float() / s.temperature
        if s.top_k > 0 and s.top_k < logits.shape[-1]:
            kth = torch.topk(logits, s.top_k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        if s.min_p > 0:
            probs = probs.masked_fill(probs < s.min_p * probs.max(dim=-1, keepdim=True).values, 0.0)
        if s.top_p < 1.0:  # keep the smallest set of most likely tokens whose mass reaches top_p
            sorted_p, order = torch.sort(probs, dim=-1, descending=True)
            before = sorted_p.cumsum(-1) - sorted_p  # mass of the tokens ranked above each one
            sorted_p = sorted_p.masked_fill(before >= s.top_p, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        picks = (probs / self._draws(probs)).argmax(dim=-1)
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(len(picks), device=scores.device), picks] = 0.0
        return out
