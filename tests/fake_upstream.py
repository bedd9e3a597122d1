"""A fake OpenAI-compatible upstream for the gateway's unit tests (``httpx.MockTransport``).

It behaves like llama-cpp-python where budget forcing looks: ``/extras/tokenize``
(ChatML's special texts are one token each), ``/v1/models``, and ``/v1/completions``
that stops for length after ``max_tokens`` tokens while ``logit_bias`` suppresses the
end tokens (the thinking phase) and answers in three tokens otherwise, streamed or
not; ``/v1/chat/completions`` thinks exactly up to ``thinking_token_budget`` (cap
mode). ``down`` makes every request fail to connect; ``delay`` is the service time (s).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from thinkq import Profile
from thinkq.measure.server import Server

MODEL = "fake-model"
ANSWER = ("The", " answer", " is 5")


def profile(**changes: Any) -> Profile:
    """Two task types whose budgets fall as the rate rises (prior rate 0.2/s)."""
    values: dict[str, Any] = {
        "names": ["math", "chat"],
        "share": [1.0, 1.0],
        "A": [0.6, 0.3],
        "b": [0.02, 0.05],
        "D": [0.2, 0.5],
        "t0": [0.1, 0.1],
        "c": [0.01, 0.01],
        "rate": 0.2,
        "alpha": 5.0,
        "max_tokens": 400,
        "default_task": "chat",
    }
    return Profile.from_arrays(**(values | changes))


class Upstream:
    """The fake server's state and its request handler."""

    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.down = False
        self.completions: list[dict[str, Any]] = []

    def server(self, *, timeout: float = 30.0) -> Server:
        transport = httpx.MockTransport(self.handle)
        return Server("http://upstream.test/v1", MODEL, timeout=timeout, transport=transport)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        path = request.url.path
        if path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": [{"id": MODEL}]})
        body = json.loads(request.content) if request.content else {}
        if path == "/extras/tokenize":
            text = body["input"]
            tokens = [1000 + len(text)] if text.startswith("<|") else [ord(ch) for ch in text]
            return httpx.Response(200, json={"tokens": tokens})
        if path == "/v1/completions":
            self.completions.append(body)
            if self.delay:
                await asyncio.sleep(self.delay)
            return self._completion(body)
        if path == "/v1/chat/completions":  # cap mode: think up to the native budget
            self.completions.append(body)
            cap = int(body["thinking_token_budget"])
            message = {"role": "assistant", "content": "".join(ANSWER)}
            message["reasoning_content"] = "t" * cap
            usage = {
                "prompt_tokens": 7,
                "completion_tokens": cap + len(ANSWER),
                "completion_tokens_details": {"reasoning_tokens": cap},
            }
            if body.get("stream"):
                deltas = [{"reasoning_content": "t"} for _ in range(cap)]
                deltas += [{"content": piece} for piece in ANSWER]
                events = [{"choices": [{"index": 0, "delta": d}]} for d in deltas]
                return _sse([*events, {"choices": [], "usage": usage}])
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return httpx.Response(200, json={"choices": [choice], "usage": usage})
        return httpx.Response(404, json={"detail": "Not Found"})

    @staticmethod
    def _completion(body: dict[str, Any]) -> httpx.Response:
        n = int(body["max_tokens"])
        if "logit_bias" in body:  # the thinking phase: exactly max_tokens tokens
            pieces, finish = ["t"] * n, "length"
        else:
            pieces = list(ANSWER[:n])
            finish = "length" if n <= len(ANSWER) else "stop"
        usage = {"prompt_tokens": 7, "completion_tokens": len(pieces)}
        if not body.get("stream"):
            choice = {"index": 0, "text": "".join(pieces), "finish_reason": finish}
            return httpx.Response(200, json={"choices": [choice], "usage": usage})
        events = [
            {"choices": [{"index": 0, "text": piece, "finish_reason": None}]} for piece in pieces
        ]
        events.append({"choices": [{"index": 0, "text": "", "finish_reason": finish}]})
        events.append({"choices": [], "usage": usage})
        return _sse(events)


def _sse(events: list[dict[str, Any]]) -> httpx.Response:
    text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})


class Clock:
    """A monotonic clock the test moves by hand (seconds)."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
