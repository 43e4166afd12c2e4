"""A harm judge over any OpenAI-compatible endpoint, for the `harm_judge` verifier (the study's HEx-PHI ASR).

`openai_judge(base_url=..., model=...)` returns an object with `generate(prompts) -> list[str]`, the whole
protocol `verifiers.safety.HarmJudgeVerifier` needs; the verifier builds it inside its worker process from the
spec `"curate.evaluate.judge:openai_judge"` and these options. Greedy decoding, short replies (a rating).
An endpoint that does not answer makes the backend raise, which the verifier records as `error` (re-run),
never as a verdict on the evaluated model.
"""
from __future__ import annotations

from curate.generate.base import Request, SamplingParams
from curate.records import Problem


class OpenAIJudge:
    def __init__(self, base_url: str, model: str, max_tokens: int = 64, max_retries: int = 2, timeout_s: float = 120.0) -> None:
        from curate.generate.openai_backend import OpenAIBackend, OpenAIConfig

        self.backend = OpenAIBackend(model, OpenAIConfig(base_url=base_url, max_retries=max_retries, timeout_s=timeout_s),
                                     SamplingParams(temperature=0.0, top_p=1.0, top_k=-1, max_tokens=max_tokens))

    def generate(self, prompts: list[str]) -> list[str]:
        reqs = [Request(id=f"judge-{i}", problem=Problem(source="judge", domain="safety", prompt=p),
                        messages=({"role": "user", "content": p},), sample_index=0) for i, p in enumerate(prompts)]
        out = {c.request_id: c.text for c in self.backend.generate(reqs)}
        return [out[r.id] for r in reqs]


def openai_judge(base_url: str, model: str, **kw) -> OpenAIJudge:
    return OpenAIJudge(base_url, model, **kw)
