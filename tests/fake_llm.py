"""A fake llama-cpp-python server for unit tests: an ``httpx.MockTransport`` handler.

It lists one model, tokenizes the chatml end texts to single ids, and answers
``/v1/completions`` with ``max_tokens`` tokens of ``"t"`` (finish reason
``length``) when the end tokens are suppressed; the answer phase returns ``answer``.
Hooks make it misbehave: ``fail_on(n)`` makes request ``n`` fail with a status,
``short_by`` makes thinking stop early.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

SPECIAL = {"<|im_end|>": 2, "<|endoftext|>": 0}


@dataclass
class FakeLLM:
    """State of the fake server; ``transport()`` gives an ``httpx.MockTransport``."""

    model: str = "fake"
    answer: str = " 42"
    short_by: int = 0
    failures: dict[int, int] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    completions: int = 0

    def fail_on(self, number: int, status: int = 500) -> None:
        """Make the ``number``-th completion request (1-based) answer ``status``."""
        self.failures[number] = status

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        body = json.loads(request.content) if request.content else {}
        self.requests.append({"path": path, **body})
        if path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": self.model}]})
        if path == "/extras/tokenize":
            text = body["input"]
            ids = [SPECIAL[text]] if text in SPECIAL else [ord(ch) + 100 for ch in text]
            return httpx.Response(200, json={"tokens": ids})
        if path == "/v1/completions":
            self.completions += 1
            status = self.failures.get(self.completions)
            if status is not None:
                return httpx.Response(status, json={"error": {"message": "injected failure"}})
            return self._complete(body)
        return httpx.Response(404, json={"detail": "Not Found"})

    def _complete(self, body: dict[str, Any]) -> httpx.Response:
        if body.get("logit_bias"):  # phase 1: thinking
            n = max(body["max_tokens"] - self.short_by, 0)
            finish = "length" if n == body["max_tokens"] else "stop"
            text = "t" * n
        else:
            n, finish, text = 2, "stop", self.answer
        usage = {"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n}
        choice = {"text": text, "index": 0, "finish_reason": finish}
        return httpx.Response(200, json={"choices": [choice], "usage": usage})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)
