"""hf backend with a tiny random Llama built from a config and a tokenizer trained locally (no downloads)."""
from __future__ import annotations

import warnings

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from curate.errors import InputError  # noqa: E402
from curate.generate import RunConfig, SamplingParams, generate  # noqa: E402
from curate.generate.base import Request  # noqa: E402
from curate.generate.hf_backend import HFBackend, HFConfig  # noqa: E402
from curate.generate.prompting import build_messages, detect_injected_system  # noqa: E402
from curate.generate.tiny import build_tiny_model  # noqa: E402
from curate.records import Problem  # noqa: E402
from curate.store import TraceStore  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny")))


@pytest.fixture(scope="module")
def stopper(tmp_path_factory):
    return str(build_tiny_model(tmp_path_factory.mktemp("stopper"), stop_immediately=True))


def reqs(n: int) -> list[Request]:
    out = []
    for i in range(n):
        p = Problem(source="t", domain="math", prompt=f"What is {i} + {'1' * (i % 5 + 1)}?", reference="x")
        out.append(Request(id=f"r{i}", problem=p, messages=build_messages(p), sample_index=0, seed=0))
    return out


def test_greedy_batched_equals_unbatched_and_length_is_marked(tiny):
    greedy = SamplingParams(temperature=0.0, max_tokens=6)
    one = {c.request_id: c for c in HFBackend(tiny, HFConfig(batch_size=1), greedy).generate(reqs(5))}
    many = {c.request_id: c for c in HFBackend(tiny, HFConfig(batch_size=4), greedy).generate(reqs(5))}
    assert set(one) == set(many) == {f"r{i}" for i in range(5)}
    for rid, c in one.items():
        assert c.text == many[rid].text  # left padding does not change greedy output
        assert c.prompt_tokens == many[rid].prompt_tokens > 5
        if c.finish_reason == "length":
            assert c.completion_tokens == 6
        else:
            assert c.finish_reason == "stop" and c.completion_tokens <= 6


def test_eos_gives_stop_and_sampling_with_logprobs(stopper, tiny):
    outs = list(HFBackend(stopper, HFConfig(batch_size=3), SamplingParams(temperature=0.0, max_tokens=8)).generate(reqs(3)))
    assert all(c.finish_reason == "stop" and c.completion_tokens == 1 and c.text == "" for c in outs)
    sampled = list(HFBackend(tiny, HFConfig(batch_size=2), SamplingParams(max_tokens=5, logprobs=True)).generate(reqs(3)))
    assert len(sampled) == 3
    for c in sampled:
        assert c.teacher_logprob is not None and c.teacher_logprob < 0 and c.teacher_entropy > 0


def test_runner_with_hf_backend(tiny, tmp_path):
    st = TraceStore(tmp_path / "s")
    st.add_problems([Problem(source="t", domain="math", prompt=f"Add {i} and 2.", reference=str(i + 2)) for i in range(4)])
    r = generate(st, None, "hf", tiny, sampling=SamplingParams(max_tokens=4), options={"batch_size": "4"},
                 run_config=RunConfig(n=2), progress=False)
    assert r.generated == 8
    rows = st.query("SELECT backend, model, finish_reason, prompt_tokens, completion_tokens FROM samples").to_pylist()
    assert len(rows) == 8 and all(x["backend"] == "hf" and x["completion_tokens"] <= 4 for x in rows)
    again = generate(st, None, "hf", tiny, sampling=SamplingParams(max_tokens=4), options={"batch_size": "4"},
                     run_config=RunConfig(n=2), progress=False)
    assert again.generated == 0


class _Tok:
    """Just enough tokenizer to render a chat template (checks detection logic, not transformers)."""

    all_special_tokens = ["<|im_start|>", "<|im_end|>"]

    def __init__(self, system: str | None) -> None:
        self.system = system

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        head = f"<|im_start|>system\n{self.system}<|im_end|>\n" if self.system else ""
        body = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return head + body + "<|im_start|>assistant\n"


def test_injected_system_prompt_is_detected_and_warned(tiny):
    assert detect_injected_system(_Tok("You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")) is not None
    assert detect_injected_system(_Tok(None)) is None
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    assert detect_injected_system(tok) is None
    tok.chat_template = "<|system|>\nYou are a helpful assistant made by someone.\n" + tok.chat_template
    tok.save_pretrained(tiny + "-sys")
    import shutil

    for f in ("config.json", "model.safetensors", "generation_config.json"):
        shutil.copy(f"{tiny}/{f}", f"{tiny}-sys/{f}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        HFBackend(tiny + "-sys", HFConfig(), SamplingParams(max_tokens=2))
    assert any("injects a system prompt" in str(w.message) for w in caught)


def test_missing_chat_template_and_bad_model(tiny, tmp_path):
    from transformers import AutoTokenizer
    import shutil

    shutil.copytree(tiny, tmp_path / "plain")
    tok = AutoTokenizer.from_pretrained(tiny)
    tok.chat_template = None
    tok.save_pretrained(tmp_path / "plain")
    import os

    if os.path.exists(tmp_path / "plain" / "chat_template.jinja"):
        os.remove(tmp_path / "plain" / "chat_template.jinja")
    with pytest.raises(InputError, match="chat template"):
        HFBackend(str(tmp_path / "plain"), HFConfig(), SamplingParams(max_tokens=2))
    raw = HFBackend(str(tmp_path / "plain"), HFConfig(raw=True), SamplingParams(temperature=0, max_tokens=2))
    assert len(list(raw.generate(reqs(2)))) == 2
    from curate.errors import BackendError

    with pytest.raises(BackendError, match="cannot load"):
        HFBackend(str(tmp_path / "nope"), HFConfig(), SamplingParams())


def test_sampled_text_does_not_depend_on_batch_composition(tiny):
    """At T > 0 each sample draws from its own seeded stream: batch size, neighbours and order do not matter."""
    hot = SamplingParams(temperature=1.0, top_p=0.95, top_k=50, max_tokens=12)
    rs = reqs(6)
    alone = {c.request_id: c.text for c in HFBackend(tiny, HFConfig(batch_size=1), hot).generate(rs)}
    packed = {c.request_id: c.text for c in HFBackend(tiny, HFConfig(batch_size=4), hot).generate(rs[::-1])}
    resumed = {c.request_id: c.text for c in HFBackend(tiny, HFConfig(batch_size=3), hot).generate(rs[2:5])}
    assert alone == packed
    assert all(resumed[k] == alone[k] for k in resumed)
    assert len(set(alone.values())) > 1  # a random model's samples differ across prompts
    other = [Request(id=r.id, problem=r.problem, messages=r.messages, sample_index=1, seed=0) for r in rs]
    again = {c.request_id: c.text for c in HFBackend(tiny, HFConfig(batch_size=4), hot).generate(other)}
    assert again != alone  # another sample index is another stream


def test_per_sample_seed_depends_on_problem_index_and_seed_only():
    p = Problem(source="t", domain="math", prompt="What is 1 + 1?", reference="2")
    m = build_messages(p)
    a = Request(id="id-under-model-a", problem=p, messages=m, sample_index=2, seed=7)
    b = Request(id="id-under-model-b", problem=p, messages=m, sample_index=2, seed=7)
    assert a.per_sample_seed == b.per_sample_seed
    assert a.per_sample_seed != Request(id="x", problem=p, messages=m, sample_index=3, seed=7).per_sample_seed
    assert a.per_sample_seed != Request(id="x", problem=p, messages=m, sample_index=2, seed=8).per_sample_seed
    assert Request(id="x", problem=p, messages=m, sample_index=2, seed=None).per_sample_seed is None


def test_per_row_sampler_draws_what_torch_multinomial_draws():
    """The sampler's exponential race picks exactly the token torch.multinomial(p, 1, generator=g) picks from
    the same generator state, so texts stored before stay reproducible; top-k masked rows included, and across
    the blocks the draws are made in."""
    import torch

    from curate.generate.hf_backend import _PerRowSampler
    from curate.generate.base import SamplingParams

    torch.manual_seed(3)
    seeds = list(range(100, 108))
    for top_k, block in ((-1, None), (5, None), (5, 150)):
        sampler = _PerRowSampler(torch, SamplingParams(temperature=0.7, top_k=top_k, top_p=1.0), seeds)
        if block:  # draws refilled every 3 steps: still the tokens of one draw per step
            sampler.BLOCK_VALUES = block
        reference = [torch.Generator().manual_seed(s) for s in seeds]
        for _ in range(20):
            scores = torch.randn(len(seeds), 50) * 3
            out = sampler(None, scores)
            picks = out.argmax(dim=-1).tolist()
            assert torch.isfinite(out).sum().item() == len(seeds)
            logits = scores / 0.7
            if top_k > 0:
                logits = logits.masked_fill(logits < torch.topk(logits, top_k, dim=-1).values[..., -1:], float("-inf"))
            probs = torch.softmax(logits, dim=-1)
            assert picks == [int(torch.multinomial(probs[i], 1, generator=g)) for i, g in enumerate(reference)]
