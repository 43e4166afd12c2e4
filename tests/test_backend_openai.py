"""openai backend against a real asyncio HTTP server on 127.0.0.1, with injected 429/5xx, malformed JSON,
dropped connections and a hanging request: nothing lost, nothing duplicated, failures named."""
from __future__ import annotations

import socket

import pytest

from curate.errors import BackendError
from curate.generate.base import Request, SamplingParams
from curate.generate.openai_backend import OpenAIBackend, OpenAIConfig
from curate.generate.prompting import build_messages
from curate.generate.testserver import ServerState, TestServer
from curate.records import Problem


def requests(n: int, seed: int | None = 0) -> list[Request]:
    out = []
    for i in range(n):
        p = Problem(source="t", domain="math", prompt=f"What is {i} + {i}?", reference=str(2 * i))
        out.append(Request(id=f"r{i:03d}", problem=p, messages=build_messages(p), sample_index=0, seed=seed))
    return out


def backend(url: str, **kw) -> OpenAIBackend:
    sampling = SamplingParams(max_tokens=kw.pop("max_tokens", 256))
    cfg = OpenAIConfig(base_url=url, backoff_s=0.01, backoff_max_s=0.05, **{"timeout_s": 5.0, **kw})
    return OpenAIBackend("test-model", cfg, sampling)


def test_chat_happy_path_keeps_usage_and_params():
    with TestServer(ServerState(keep_bodies=100)) as srv:
        b = backend(srv.base_url, concurrency=8)
        reqs = requests(40)
        outs = list(b.generate(reqs))
        bodies = srv.state.bodies
    assert sorted(c.request_id for c in outs) == [r.id for r in reqs]
    for c in outs:
        assert c.finish_reason == "stop" and "\\boxed{42}" in c.text
        assert c.prompt_tokens and c.completion_tokens and c.latency_s is not None
    body = bodies[0]
    assert body["model"] == "test-model" and body["temperature"] == 0.6 and body["top_p"] == 0.95
    assert body["top_k"] == 20 and body["max_tokens"] == 256 and "seed" in body
    assert body["messages"][0]["role"] == "user" and body["messages"][0]["content"].endswith("\\boxed{}.")
    assert len({b["seed"] for b in bodies}) == len(bodies)  # per-sample seeds differ


def test_completions_endpoint_and_max_tokens_truncation():
    with TestServer() as srv:
        b = backend(srv.base_url, endpoint="completions", max_tokens=3, extensions=False)
        outs = list(b.generate(requests(5)))
    assert len(outs) == 5
    assert all(c.finish_reason == "length" and c.completion_tokens == 3 for c in outs)


def test_injected_faults_are_retried_without_loss():
    faults = ["429", "500", "malformed", "hang", "503", "drop", "429", "502"]
    with TestServer(ServerState(fault_queue=list(faults), hang_s=30)) as srv:
        b = backend(srv.base_url, concurrency=4, timeout_s=1.0)
        reqs = requests(30)
        outs = list(b.generate(reqs))
        state = srv.state
    ids = [c.request_id for c in outs]
    assert sorted(ids) == [r.id for r in reqs] and len(set(ids)) == len(ids)
    assert b.retries == len(faults)
    assert sum(state.faults.values()) == len(faults)
    assert state.completed == 30


def test_fault_rate_under_concurrency():
    with TestServer(ServerState(fault_rate=0.2, seed=3)) as srv:
        b = backend(srv.base_url, concurrency=32)
        outs = list(b.generate(requests(200)))
    assert len({c.request_id for c in outs}) == 200 and b.retries > 10


def test_client_error_skips_one_prompt_and_auth_error_stops():
    with TestServer(ServerState(fault_queue=["400"])) as srv:
        b = backend(srv.base_url, concurrency=1)
        outs = list(b.generate(requests(5)))
    assert len(outs) == 4 and len(b.skipped) == 1 and "HTTP 400" in b.skipped[0][1]
    with TestServer(ServerState(fault_queue=["401"])) as srv:
        with pytest.raises(BackendError, match="401"):
            list(backend(srv.base_url, concurrency=1).generate(requests(3)))


def test_unreachable_server_is_named():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        with pytest.raises(BackendError, match=f"127.0.0.1:{port}.*after 3 attempts"):
            list(backend(f"http://127.0.0.1:{port}/v1", max_retries=2).generate(requests(2)))


def test_always_malformed_server_is_named():
    with TestServer(ServerState(fault_rate=1.0, seed=0)) as srv:
        srv.state.next_fault = lambda: "malformed"  # every answer is broken JSON
        with pytest.raises(BackendError, match="malformed"):
            list(backend(srv.base_url, max_retries=2, concurrency=2).generate(requests(3)))


def test_key_from_environment_and_several_servers(monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-test")
    with TestServer() as a, TestServer() as b_:
        b = OpenAIBackend("test-model", OpenAIConfig(base_urls=(a.base_url, b_.base_url), api_key_env="MY_KEY"))
        assert b.api_key == "sk-test"
        outs = list(b.generate(requests(10)))
        assert len(outs) == 10 and a.state.completed == 5 and b_.state.completed == 5


def test_bad_config_rejected():
    with pytest.raises(ValueError, match="endpoint"):
        OpenAIConfig(endpoint="responses")
    with pytest.raises(ValueError, match="http"):
        OpenAIConfig(base_url="localhost:8000")
    with pytest.raises(BackendError, match="--model"):
        OpenAIBackend("")


def test_reasoning_content_is_put_back_in_think_tags_and_logprobs_kept():
    with TestServer(ServerState(reasoning_field=True)) as srv:
        b = OpenAIBackend("test-model", OpenAIConfig(base_url=srv.base_url), SamplingParams(max_tokens=256, logprobs=True))
        out = next(b.generate(requests(1)))
    assert out.text.startswith("<think>\nThe question is:") and "</think>\n\nThe answer is \\boxed{42}" in out.text
    assert out.teacher_logprob == pytest.approx(-0.5)
    import math

    assert out.teacher_entropy == pytest.approx(-(math.exp(-0.5) * -0.5 + math.exp(-1.5) * -1.5))


def test_completions_with_local_chat_template(tmp_path):
    pytest.importorskip("transformers")
    from curate.generate.tiny import build_tiny_tokenizer

    tok_dir = tmp_path / "tok"
    build_tiny_tokenizer(tok_dir)
    with TestServer(ServerState(keep_bodies=5)) as srv:
        b = OpenAIBackend("test-model", OpenAIConfig(base_url=srv.base_url, endpoint="completions", tokenizer=str(tok_dir)))
        assert len(list(b.generate(requests(2)))) == 2
        prompt = srv.state.bodies[0]["prompt"]
    assert prompt.startswith("<|user|>\nWhat is") and prompt.endswith("<|assistant|>\n")
    assert b.identity_params()["chat_template_from"] == str(tok_dir)
