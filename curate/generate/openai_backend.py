"""OpenAI-compatible backend: any `/v1/chat/completions` or `/v1/completions` server (vllm serve, SGLang,
hosted APIs), one HTTP request per sample, `concurrency` requests in flight on one asyncio loop.

- Retries with exponential backoff and full jitter (honouring Retry-After) on 429, 5xx, timeouts,
  dropped connections and malformed JSON; after `max_retries` the run stops with a BackendError that
  names the server and the last failure (completed samples are kept by the runner).
- Per-prompt client errors (400/413/422, e.g. a prompt over the context length) skip that sample and are
  counted in `self.skipped`; auth and routing errors (401/403/404) stop the run at once.
- The key comes from the environment variable named by `api_key_env` (default OPENAI_API_KEY); local
  servers need none. Several `base_urls` are used round-robin: many servers, one client.
- finish_reason and usage are kept; a reasoning parser's `reasoning_content` is put back inside
  <think>...</think> so traces look the same whichever way the server splits them.
- `top_k` and `min_p` are vLLM/SGLang extensions; set `extensions=false` for hosted APIs that reject them.
- `endpoint=completions` sends the plain user text, or with `tokenizer=PATH` the chat template rendered
  locally (so a base model served without a chat template still gets the study's format).

Test: tests/test_backend_openai.py (a real local server with injected faults); speed: benchmarks/gen_openai.py.
"""
from __future__ import annotations

import asyncio
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Iterable, Iterator

from curate.errors import BackendError
from curate.generate.base import Completion, Request, SamplingParams, normalise_finish_reason

try:  # newer openai releases ship the fork `httpx2`; older ones use httpx (same API)
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

RESERVED_BODY = {"model", "messages", "prompt", "temperature", "top_p", "top_k", "min_p", "max_tokens", "seed", "n",
                 "logprobs", "top_logprobs", "stream"}
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
SKIP_STATUS = {400, 413, 422}


@dataclass(frozen=True)
class OpenAIConfig:
    base_url: str = "http://127.0.0.1:8000/v1"
    base_urls: tuple[str, ...] = ()  # several servers, used round-robin (overrides base_url)
    api_key_env: str = "OPENAI_API_KEY"
    endpoint: str = "chat"  # chat | completions (completions sends the user text raw, no chat template)
    concurrency: int = 64
    max_retries: int = 8
    timeout_s: float = 900.0
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    extensions: bool = True
    extra_body: dict = field(default_factory=dict)
    tokenizer: str = ""  # completions endpoint: render the chat template with this tokenizer (path or hub id)

    def __post_init__(self) -> None:
        if self.endpoint not in ("chat", "completions"):
            raise ValueError(f"endpoint must be chat or completions, got {self.endpoint!r}")
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if self.max_retries < 0 or self.timeout_s <= 0 or self.backoff_s < 0:
            raise ValueError("max_retries >= 0, timeout_s > 0 and backoff_s >= 0 are required")
        for url in self.urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"base_url must start with http:// or https://, got {url!r}")
        taken = sorted(set(self.extra_body) & RESERVED_BODY)
        if taken:  # the stored params would no longer say what the server was asked
            raise ValueError(f"extra_body may not set {', '.join(taken)}: curate sends those itself "
                             "(use --model, --temperature, --max-tokens, ... so each row records them)")

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(u.rstrip("/") for u in (self.base_urls or (self.base_url,)))


class _Retry(Exception):
    def __init__(self, why: str, after: float | None = None) -> None:
        super().__init__(why)
        self.why, self.after = why, after


class _Skip(Exception):
    pass


class OpenAIBackend:
    name = "openai"
    loads_model = False  # a served model: its identity is known without loading anything here

    def __init__(self, model: str, config: OpenAIConfig | None = None, sampling: SamplingParams | None = None,
                 revision: str | None = None) -> None:
        if not model:
            raise BackendError("the openai backend needs --model (the name the server serves)")
        self.model = model
        self.revision = revision
        self.config = config or OpenAIConfig()
        self.sampling = sampling or SamplingParams()
        self.api_key = os.environ.get(self.config.api_key_env) or None
        self._tok = None
        if self.config.tokenizer and self.config.endpoint == "completions":
            try:
                from transformers import AutoTokenizer
            except ImportError:
                raise BackendError("--option tokenizer= needs transformers", hint="pip install 'curate[train]'") from None
            from curate.generate.prompting import warn_if_injected

            try:
                self._tok = AutoTokenizer.from_pretrained(self.config.tokenizer)
            except (OSError, ValueError) as e:
                raise BackendError(f"cannot load tokenizer {self.config.tokenizer!r}: {str(e).splitlines()[0]}") from None
            warn_if_injected(self._tok)
        self.skipped: list[tuple[str, str]] = []  # (request id, reason) of per-prompt client errors
        self.retries = 0
        self._rr = 0

    def identity_params(self) -> dict:
        c = self.config
        return {"endpoint": c.endpoint, "extensions": c.extensions, "extra_body": dict(c.extra_body),
                "chat_template_from": c.tokenizer or None}

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------ request body and parsing
    def body(self, req: Request) -> dict:
        s, c = self.sampling, self.config
        b: dict = {"model": self.model, "temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens}
        if req.seed is not None:
            b["seed"] = req.per_sample_seed
        if c.extensions:
            b["top_k"] = s.top_k
            b["min_p"] = s.min_p
        if c.endpoint == "chat":
            b["messages"] = list(req.messages)
            if s.logprobs:
                b["logprobs"], b["top_logprobs"] = True, 5
        else:
            if self._tok is not None:  # the study's way for base models: chat template, sent as raw text
                from curate.generate.prompting import render

                b["prompt"] = render(self._tok, req.messages)
            else:
                b["prompt"] = req.messages[-1]["content"]
            if s.logprobs:
                b["logprobs"] = 5
        b.update(c.extra_body)
        return b

    def parse(self, req: Request, data: dict, latency: float) -> Completion:
        try:
            choice = data["choices"][0]
            if self.config.endpoint == "chat":
                msg = choice["message"]
                text = msg.get("content") or ""
                thinking = msg.get("reasoning_content") or msg.get("reasoning")
                if thinking:
                    text = f"<think>\n{thinking}\n</think>\n\n{text}"
            else:
                text = choice["text"]
            if not isinstance(text, str):
                raise TypeError("content is not a string")
            usage = data.get("usage") or {}
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            raise _Retry(f"malformed response (missing {e})") from None
        lp, ent = _logprob_stats(choice.get("logprobs"))
        return Completion(request_id=req.id, text=text, finish_reason=normalise_finish_reason(choice.get("finish_reason")),
                          prompt_tokens=usage.get("prompt_tokens"), completion_tokens=usage.get("completion_tokens"),
                          latency_s=latency, teacher_logprob=lp, teacher_entropy=ent)

    # ------------------------------------------------------------------ the async loop
    async def _one(self, client, req: Request) -> Completion | None:
        c = self.config
        path = "/chat/completions" if c.endpoint == "chat" else "/completions"
        body = self.body(req)
        last = ""
        for attempt in range(c.max_retries + 1):
            url = c.urls[self._rr % len(c.urls)] + path
            self._rr += 1
            t0 = time.perf_counter()
            try:
                resp = await client.post(url, json=body)
                if resp.status_code in SKIP_STATUS:
                    raise _Skip(f"HTTP {resp.status_code}: {_error_text(resp)}")
                if resp.status_code in RETRY_STATUS or resp.status_code >= 500:
                    raise _Retry(f"HTTP {resp.status_code}: {_error_text(resp)}", _retry_after(resp))
                if resp.status_code != 200:
                    raise BackendError(f"{url} answered HTTP {resp.status_code}: {_error_text(resp)}",
                                       hint="check --model, the base URL and the key in $" + c.api_key_env)
                try:
                    data = resp.json()
                except ValueError:
                    raise _Retry("malformed JSON in response") from None
                if not isinstance(data, dict):
                    raise _Retry("malformed response (not a JSON object)")
                return self.parse(req, data, time.perf_counter() - t0)
            except _Skip as e:
                self.skipped.append((req.id, str(e)))
                return None
            except _Retry as e:
                last, after = e.why, e.after
            except httpx.TimeoutException:
                last, after = f"timed out after {c.timeout_s:g}s", None
            except (httpx.TransportError, httpx.DecodingError) as e:
                last, after = f"{type(e).__name__}: {e}", None
            if attempt == c.max_retries:
                break
            self.retries += 1
            delay = min(c.backoff_max_s, c.backoff_s * (2 ** attempt)) * random.random()
            await asyncio.sleep(max(delay, after or 0.0))
        raise BackendError(f"{', '.join(c.urls)}: request failed after {c.max_retries + 1} attempts ({last})",
                           hint="is the server up and serving this model? raise max_retries or timeout_s with -o")

    async def agenerate(self, requests: Iterable[Request]) -> AsyncIterator[Completion]:
        c = self.config
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        limits = httpx.Limits(max_connections=c.concurrency, max_keepalive_connections=c.concurrency)
        timeout = httpx.Timeout(c.timeout_s, connect=min(c.timeout_s, 30.0))
        it = iter(requests)
        pending: set[asyncio.Task] = set()
        async with httpx.AsyncClient(headers=headers, limits=limits, timeout=timeout, trust_env=False) as client:
            try:
                while True:
                    while len(pending) < c.concurrency:
                        req = next(it, None)
                        if req is None:
                            break
                        pending.add(asyncio.ensure_future(self._one(client, req)))
                    if not pending:
                        return
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    failure = next((t.exception() for t in done if t.exception() is not None), None)
                    for task in done:  # hand over what succeeded before stopping on a failure
                        if task.exception() is None and task.result() is not None:
                            yield task.result()
                    if failure is not None:
                        raise failure  # `finally` cancels the rest; the runner keeps what was yielded
            finally:
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.gather(*pending, return_exceptions=True)

    def generate(self, requests: Iterable[Request]) -> Iterator[Completion]:
        """Drive the async loop from synchronous code; requests are pulled lazily as slots free up."""
        loop = asyncio.new_event_loop()
        agen = self.agenerate(requests)
        try:
            while True:
                try:
                    yield loop.run_until_complete(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            loop.run_until_complete(agen.aclose())
            loop.close()


def _error_text(resp) -> str:
    try:
        data = resp.json()
        msg = data.get("error", data) if isinstance(data, dict) else data
        msg = msg.get("message", msg) if isinstance(msg, dict) else msg
        return str(msg)[:300]
    except ValueError:
        return resp.text[:300]


def _retry_after(resp) -> float | None:
    try:
        return float(resp.headers.get("retry-after"))
    except (TypeError, ValueError):
        return None


def _logprob_stats(lp) -> tuple[float | None, float | None]:
    """Mean token logprob, and mean entropy over the returned top alternatives (a lower bound: top-5 only)."""
    if not lp:
        return None, None
    try:
        if "content" in lp:  # chat format
            toks = lp["content"] or []
            means = [t["logprob"] for t in toks]
            ents = [-sum(math.exp(a["logprob"]) * a["logprob"] for a in t.get("top_logprobs") or []) for t in toks]
        else:  # completions format
            means = [x for x in lp.get("token_logprobs") or [] if x is not None]
            ents = [-sum(math.exp(v) * v for v in (d or {}).values()) for d in lp.get("top_logprobs") or []]
    except (KeyError, TypeError):
        return None, None
    mean = sum(means) / len(means) if means else None
    ent = sum(ents) / len(ents) if ents else None
    return mean, ent
