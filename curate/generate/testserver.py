"""A small OpenAI-compatible HTTP server for tests, benchmarks and offline trials of the openai backend.

Speaks POST /v1/chat/completions and /v1/completions (plus GET /v1/models) over HTTP/1.1 with
keep-alive, on asyncio streams (stdlib only). Answers come from a `respond(prompt, body) -> (text,
finish_reason)` callable: by default a deterministic echo that honours max_tokens (words count as
tokens), or the synthetic Countdown backend (`--answers synthetic`). Faults can be injected to exercise
clients: an explicit queue for the first requests (`429`, `500`, `503`, `malformed`, `hang`, `drop`) and/or a
seeded rate applied to the rest.

Run: `python -m curate.generate.testserver --port 8000 [--fault-rate 0.05] [--answers synthetic]`.
Not a production server: no streaming, no auth checks, one process.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

FAULTS = ("429", "500", "503", "400", "401", "malformed", "hang", "drop")  # any HTTP status code works


def echo_respond(prompt: str, body: dict) -> tuple[str, str]:
    """Deterministic answer: thinks about the prompt, then boxes 42; cut at max_tokens words."""
    words = f"<think> The question is: {prompt[:200]} Let me think. </think> The answer is \\boxed{{42}}".split()
    limit = int(body.get("max_tokens") or 1_000_000)
    if len(words) > limit:
        return " ".join(words[:limit]), "length"
    return " ".join(words), "stop"


@dataclass
class ServerState:
    respond: Callable[[str, dict], tuple[str, str]] = echo_respond
    fault_queue: list[str] = field(default_factory=list)
    fault_rate: float = 0.0
    hang_s: float = 3600.0
    latency_s: float = 0.0
    seed: int = 0
    requests: int = 0
    faults: dict = field(default_factory=dict)
    completed: int = 0
    bodies: list = field(default_factory=list)  # the last parsed bodies, for tests to inspect
    keep_bodies: int = 0
    reasoning_field: bool = False  # chat: put the <think> part in message.reasoning_content, like vLLM's parser

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def next_fault(self) -> str | None:
        if self.fault_queue:
            return self.fault_queue.pop(0)
        if self.fault_rate and self._rng.random() < self.fault_rate:
            return self._rng.choice(("429", "500", "503", "malformed"))
        return None


def _prompt_of(path: str, body: dict) -> str:
    if path.endswith("/chat/completions"):
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise ValueError("messages must be a non-empty list")
        return "\n".join(str(m.get("content", "")) for m in msgs)
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise ValueError("prompt must be a string")
    return prompt


async def _handle(state: ServerState, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    async def send(status: int, payload: bytes, ctype: str = "application/json", extra: str = "") -> None:
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
                  500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "Error")
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(payload)}\r\n"
                f"Connection: keep-alive\r\n{extra}\r\n")
        writer.write(head.encode() + payload)
        await writer.drain()

    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            method, path, _ = line.decode("latin-1").split(" ", 2)
            length = 0
            while True:
                h = await reader.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                k, _, v = h.decode("latin-1").partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v.strip())
            raw = await reader.readexactly(length) if length else b""
            state.requests += 1
            if method == "GET" and path.rstrip("/").endswith("/models"):
                await send(200, json.dumps({"object": "list", "data": [{"id": "test-model", "object": "model"}]}).encode())
                continue
            if method != "POST" or not path.endswith(("/chat/completions", "/completions")):
                await send(404, b'{"error": {"message": "not found"}}')
                continue
            fault = state.next_fault()
            if fault:
                state.faults[fault] = state.faults.get(fault, 0) + 1
            if fault == "drop":
                writer.close()
                return
            if fault == "hang":
                await asyncio.sleep(state.hang_s)
                writer.close()
                return
            if fault and fault.isdigit():
                await send(int(fault), json.dumps({"error": {"message": f"injected {fault}"}}).encode(),
                           extra="Retry-After: 0\r\n" if fault == "429" else "")
                continue
            if fault == "malformed":
                await send(200, b'{"id": "cmpl-x", "choices": [{"message": {"content": "trunc')
                continue
            try:
                body = json.loads(raw)
                prompt = _prompt_of(path, body)
            except (ValueError, AttributeError) as e:
                await send(400, json.dumps({"error": {"message": f"bad request: {e}"}}).encode())
                continue
            if state.keep_bodies:
                state.bodies = (state.bodies + [body])[-state.keep_bodies:]
            if state.latency_s:
                await asyncio.sleep(state.latency_s)
            text, finish = state.respond(prompt, body)
            n_prompt, n_out = len(prompt.split()), len(text.split())
            choice = {"index": 0, "finish_reason": finish}
            if path.endswith("/chat/completions"):
                msg = {"role": "assistant", "content": text}
                if state.reasoning_field and "</think>" in text:
                    thinking, _, answer = text.partition("</think>")
                    msg = {"role": "assistant", "reasoning_content": thinking.replace("<think>", "").strip(),
                           "content": answer.strip()}
                choice["message"] = msg
                if body.get("logprobs"):  # fixed fake values: every token -0.5, one alternative at -1.5
                    choice["logprobs"] = {"content": [
                        {"token": w, "logprob": -0.5, "top_logprobs": [{"token": w, "logprob": -0.5},
                                                                        {"token": "~", "logprob": -1.5}]}
                        for w in text.split()]}
            else:
                choice["text"] = text
            payload = {"id": f"cmpl-{state.requests}", "object": "chat.completion", "created": int(time.time()),
                       "model": body.get("model", "test-model"), "choices": [choice],
                       "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_out, "total_tokens": n_prompt + n_out}}
            state.completed += 1
            await send(200, json.dumps(payload).encode())
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        return
    finally:
        try:
            writer.close()
        except Exception:
            pass


class TestServer:
    """Run the server on 127.0.0.1 in a background thread: `with TestServer() as s: s.base_url`."""

    __test__ = False  # not a pytest class

    def __init__(self, state: ServerState | None = None, port: int = 0) -> None:
        self.state = state or ServerState()
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _main(self) -> None:
        self._loop = asyncio.new_event_loop()
        server = self._loop.run_until_complete(
            asyncio.start_server(lambda r, w: _handle(self.state, r, w), "127.0.0.1", self.port, backlog=1024))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    def __enter__(self) -> "TestServer":
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)


def synthetic_respond() -> Callable[[str, dict], tuple[str, str]]:
    """Answer Countdown prompts with synthetic traces (parses `Numbers:` and `Target:` from the prompt)."""
    import re

    from curate.generate.base import Request
    from curate.generate.synthetic import SyntheticBackend
    from curate.records import Problem

    backend = SyntheticBackend()

    def respond(prompt: str, body: dict) -> tuple[str, str]:
        nums = re.search(r"Numbers: \[([^\]]*)\]", prompt)
        tgt = re.search(r"Target: (\d+)", prompt)
        if not nums or not tgt:
            return echo_respond(prompt, body)
        ref = {"numbers": [int(x) for x in nums.group(1).split(",")], "target": int(tgt.group(1))}
        p = Problem(source="countdown", domain="game", prompt=prompt, reference=ref)
        req = Request(id="r", problem=p, messages=({"role": "user", "content": prompt},), sample_index=0,
                      seed=body.get("seed"))
        return backend.trace(req), "stop"

    return respond


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--fault-rate", type=float, default=0.0)
    ap.add_argument("--faults", default="", help="comma-separated faults for the first requests: " + ",".join(FAULTS))
    ap.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    ap.add_argument("--answers", choices=("echo", "synthetic"), default="echo")
    args = ap.parse_args()
    state = ServerState(respond=synthetic_respond() if args.answers == "synthetic" else echo_respond,
                        fault_queue=[f for f in args.faults.split(",") if f], fault_rate=args.fault_rate,
                        latency_s=args.latency)

    async def serve() -> None:
        server = await asyncio.start_server(lambda r, w: _handle(state, r, w), "127.0.0.1", args.port, backlog=1024)
        print(f"listening on http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1", flush=True)
        async with server:
            await server.serve_forever()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
