"""A reward model as a scorer: the verdict's score is the reward a sequence-classification model gives a response.

The study scores AlpacaEval answers with a reward model and reports the mean score; this is that scorer. It loads
a local (or cached) `AutoModelForSequenceClassification` with one output (`num_labels=1`), renders each
(prompt, answer after the last `</think>`) pair with the reward model's own chat template when it has one
(user turn, assistant turn, no system prompt), else as `User: ...\\n\\nAssistant: ...`, and scores them in
batches of `batch_size` on `device` (`auto`: CUDA when present, else CPU).

Verdicts: `score` is the raw reward (the model's units, not percent); `status` is `correct` when the reward is
at least `threshold` (default 0) and `incorrect` below it, so avg@k reads as the share above the threshold, while
the `reward` metric (curate/evaluate/metrics.py) reads the scores themselves. A response with nothing after its
thinking is scored as an empty answer, as a reward model would see it: it is still a response to the prompt.
A model that cannot be loaded or scored gives `error` verdicts (the benchmark is then incomplete, never a lower
number); the load failure is remembered, so later batches fail at once instead of loading again.

A verdict's version is `1-<hash>` of the reward model's folder, `max_length`, `threshold` and `dtype`, so
scoring with another reward model rescores the answers instead of reusing stored rewards.
Known issues: a pair longer than `max_length` tokens is cut at the right (the reward then reads a shortened
answer; the verdict's reason says so); the reward model's scale is its own, so means from two reward models are
not comparable. There are no self-test probes: a reward has no known right value to check.
`batch_size` > 1 makes the verifier pool hand a worker that many responses at once (`verify_batch`), and
`max_workers = 1` keeps one copy of the model per labeling run.
Test: tests/test_evaluate_reward.py.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, ClassVar, Sequence

from verifiers.base import Verifier
from verifiers.extract import strip_thinking
from verifiers.registry import MissingOption
from verifiers.verdict import Verdict


class RewardModelVerifier(Verifier):
    """Reward-model scorer (score = reward of the answer after thinking); needs model=PATH."""

    name = "reward_model"
    version = "1"
    domains: tuple[str, ...] = ()  # never chosen automatically: it needs a model; name it explicitly
    max_workers: ClassVar[int] = 1  # one copy of the model per labeling run
    loads_model: ClassVar[bool] = True  # `curate eval` frees the evaluated model's memory before labeling
    timeout_s = 600.0  # one batch, loading the model included (the pool's hard kill; `timeout_s=` changes it)

    def __init__(self, model: str | None = None, batch_size: int = 8, device: str = "auto", max_length: int = 4096,
                 threshold: float = 0.0, dtype: str = "auto", timeout_s: float = 600.0) -> None:
        if not model:  # how to set it is the caller's hint (`curate verify --option`, an eval's --set)
            raise MissingOption("model", "needs the reward model: option 'model' is not set "
                                         "(a local folder with a one-output sequence classifier)")
        path = os.path.expanduser(str(model))
        if str(model).startswith(("/", "./", "../", "~")) and not os.path.isdir(path):
            raise ValueError(f"{model}: no such folder (the reward model)")
        if batch_size < 1 or max_length < 8 or timeout_s <= 0:
            raise ValueError("batch_size must be >= 1, max_length >= 8 and timeout_s > 0")
        self.timeout_s = float(timeout_s)
        self.model_path = path
        # verdicts are kept per (verifier, version): another reward model, cut or threshold must rescore, never
        # reuse the stored rewards, so the version names them
        ident = json.dumps([os.path.abspath(path) if os.path.isdir(path) else str(model), int(max_length),
                            float(threshold), dtype])
        self.version = f"{type(self).version}-{hashlib.sha256(ident.encode()).hexdigest()[:10]}"
        self.batch_size = int(batch_size)
        self.device = device
        self.max_length = int(max_length)
        self.threshold = float(threshold)
        self.dtype = dtype
        self._loaded: Any = None
        self._load_error: str | None = None

    def deadline_s(self, problem: Any) -> float:  # noqa: ARG002 - one batch, loading the model included
        return float(self.timeout_s)

    def soft_timeout_s(self, problem: Any) -> float | None:  # noqa: ARG002
        return None  # a signal inside torch is not safe to raise from; the pool's hard kill is the limit

    def _load(self) -> tuple[Any, Any, str]:
        if self._loaded is None:
            if self._load_error is not None:
                raise RuntimeError(self._load_error)
            try:
                import torch
                from transformers import AutoModelForSequenceClassification, AutoTokenizer

                device = self.device if self.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
                dtype = torch.float32 if device == "cpu" and self.dtype == "auto" else self.dtype
                if isinstance(dtype, str) and dtype != "auto":
                    dtype = getattr(torch, dtype)
                tok = AutoTokenizer.from_pretrained(self.model_path)
                model = AutoModelForSequenceClassification.from_pretrained(self.model_path, dtype=dtype)
                if model.config.num_labels != 1:
                    raise ValueError(f"the reward model has {model.config.num_labels} labels; a reward model has one")
                if tok.pad_token is None:
                    tok.pad_token = tok.eos_token
                tok.padding_side = "right"
                # sequence classifiers read the last token that is not padding: they must know the pad id
                model.config.pad_token_id = tok.pad_token_id
                self._loaded = (tok, model.to(device).eval(), device)
            except Exception as e:
                self._load_error = f"cannot load reward model {self.model_path}: {type(e).__name__}: {str(e)[:200]}"
                raise RuntimeError(self._load_error) from None
        return self._loaded

    def render(self, tok: Any, prompt: str, answer: str) -> str:
        """The text the reward model reads: its own chat template when it has one."""
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template([{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                                           tokenize=False)
        return f"User: {prompt}\n\nAssistant: {answer}"

    def check(self, problem: Any, response: str) -> Verdict:
        return self.verify_batch([problem], [response])[0]

    def verify_batch(self, problems: Sequence[Any], responses: Sequence[str]) -> list[Verdict]:
        """Score every (problem, response) pair, `batch_size` at a time; never raises."""
        try:
            tok, model, device = self._load()
        except Exception as e:
            return [self.verdict("error", reason=str(e)) for _ in responses]
        out: list[Verdict] = []
        for start in range(0, len(responses), self.batch_size):
            probs, resps = problems[start:start + self.batch_size], responses[start:start + self.batch_size]
            try:
                out += self._score(tok, model, device, probs, resps)
            except Exception as e:  # out of memory, a broken model: infrastructure, re-run later
                out += [self.verdict("error", reason=f"scoring failed: {type(e).__name__}: {str(e)[:200]}") for _ in resps]
        return out

    def _score(self, tok: Any, model: Any, device: str, problems: Sequence[Any], responses: Sequence[str]) -> list[Verdict]:
        import torch

        answers = [strip_thinking(r if isinstance(r, str) else "").strip() for r in responses]
        texts = [self.render(tok, str(getattr(p, "prompt", "")), a) for p, a in zip(problems, answers)]
        # the chat template already wrote the special tokens it wants; a plain pair gets the tokenizer's own
        enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length,
                  add_special_tokens=not getattr(tok, "chat_template", None))
        full = [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]
        with torch.inference_mode():
            logits = model(**{k: v.to(device) for k, v in enc.items()}).logits
        rewards = logits[:, 0].float().cpu().tolist()
        out = []
        for r, a, n, resp in zip(rewards, answers, full, responses):
            if not isinstance(resp, str):
                out.append(self.verdict("error", reason=f"response is {type(resp).__name__}, not str"))
                continue
            why = f"reward {r:.4g}" + (f"; cut to {self.max_length} of {n} tokens" if n > self.max_length else "") + \
                ("; nothing after thinking" if not a else "")
            out.append(self.verdict("correct" if r >= self.threshold else "incorrect", score=r, answer=f"{r:.6g}",
                                    reason=why))
        return out
