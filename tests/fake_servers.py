"""Fake OpenAI-compatible servers of the four families, as ``httpx.MockTransport``s.

:class:`FakeServer` answers like llama-cpp-python, llama.cpp, vLLM or SGLang
(``family``), or
like a plain OpenAI API without tokenizer endpoints (``"openai"``), and records every
request. Its tokenizer maps each text of ``specials`` to one id and every other
character to its own id (``1000 + ord(ch)``); llama-cpp-python puts :data:`BOS` before
every text, as the real one does.

``/v1/completions`` emulates a server that honours ``max_tokens`` and ``logit_bias``:
with ``logit_bias`` (phase 1) it writes ``max_tokens`` tokens ``" w0", " w1", ...``
and stops for ``"length"``; without (phase 2) it writes :data:`ANSWER`. Setting
``complete`` (or ``chat`` for ``/v1/chat/completions``) replaces the reply; a reply
that is an ``httpx.Response`` is sent as it is. Streaming requests get server-sent
events: one per token, then one with ``usage`` and no choices, then ``[DONE]``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

Family = Literal["llama-cpp-python", "llama.cpp", "vllm", "sglang", "openai"]
Body = dict[str, Any]
Reply = Body | httpx.Response

BASE_URL = "http://llm.test:8000/v1"
MODEL = "fake-model"
BOS = 1
ANSWER = " 42"
ANSWER_TOKENS = 2
PROMPT_TOKENS = 17

#: Qwen's special tokens (their real ids).
QWEN_SPECIALS: dict[str, int] = {
    "<|endoftext|>": 151643,
    "<|im_start|>": 151644,
    "<|im_end|>": 151645,
    "<think>": 151667,
    "</think>": 151668,
}

_NOT_FOUND = {
    "llama.cpp": {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}},
    "other": {"detail": "Not Found"},
}


def encode(text: str, specials: Mapping[str, int]) -> list[int]:
    """The ids of ``text``: a special text is one id, any other character its own."""
    ids: list[int] = []
    i = 0
    while i < len(text):
        special = next((s for s in specials if text.startswith(s, i)), None)
        if special is not None:
            ids.append(specials[special])
            i += len(special)
        else:
            ids.append(1000 + ord(text[i]))
            i += 1
    return ids


def decode(ids: Sequence[int], specials: Mapping[str, int]) -> str:
    names = {v: k for k, v in specials.items()}
    return "".join(names[i] if i in names else chr(i - 1000) for i in ids if i != BOS)


def chatml(messages: Sequence[Mapping[str, str]]) -> str:
    """What the fake's own chat template renders (with the generation prompt)."""
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n"


def sse(events: Sequence[Body]) -> httpx.Response:
    """A server-sent event stream of ``events`` ending with ``[DONE]``."""
    text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})


def completion(
    text: str, finish: str | None, *, tokens: int | None, prompt_tokens: int = PROMPT_TOKENS
) -> Body:
    """A ``/v1/completions`` reply; ``tokens=None`` leaves out ``usage``."""
    reply: Body = {
        "object": "text_completion",
        "model": MODEL,
        "choices": [{"index": 0, "text": text, "finish_reason": finish}],
    }
    if tokens is not None:
        reply["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": tokens,
            "total_tokens": prompt_tokens + tokens,
        }
    return reply


def thinking_words(n: int) -> list[str]:
    """The ``n`` tokens the fake thinks: ``" w0"``, ``" w1"``, ..."""
    return [f" w{i}" for i in range(n)]


@dataclass
class Call:
    method: str
    path: str
    body: Body
    headers: httpx.Headers


@dataclass
class FakeServer:
    """One fake server; :meth:`transport` serves it, :attr:`calls` records requests."""

    family: Family = "vllm"
    models: list[str] = field(default_factory=lambda: [MODEL])
    specials: dict[str, int] = field(default_factory=lambda: dict(QWEN_SPECIALS))
    complete: Callable[[Body], Reply] | None = None
    chat: Callable[[Body], Reply] | None = None
    calls: list[Call] = field(default_factory=list)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def paths(self) -> list[str]:
        return [c.path for c in self.calls]

    def bodies(self, path: str) -> list[Body]:
        return [c.body for c in self.calls if c.path == path]

    # ---------------------------------------------------------------- routing

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        path = request.url.path
        self.calls.append(Call(request.method, path, body, request.headers))
        routes: dict[tuple[str, str], Callable[[Body], Reply | None]] = {
            ("GET", "/v1/models"): self._models,
            ("POST", "/extras/tokenize"): self._extras_tokenize,
            ("POST", "/tokenize"): self._tokenize,
            ("POST", "/v1/tokenize"): self._v1_tokenize,
            ("POST", "/detokenize"): self._detokenize,
            ("POST", "/apply-template"): self._apply_template,
            ("POST", "/v1/completions"): self._completions,
            ("POST", "/v1/chat/completions"): self._chat,
        }
        route = routes.get((request.method, path))
        reply = route(body) if route else None
        if reply is None:
            return httpx.Response(404, json=_NOT_FOUND.get(self.family, _NOT_FOUND["other"]))
        return reply if isinstance(reply, httpx.Response) else httpx.Response(200, json=reply)

    def _models(self, body: Body) -> Reply:
        return {"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]}

    def _extras_tokenize(self, body: Body) -> Reply | None:
        if self.family != "llama-cpp-python":
            return None
        return {"tokens": [BOS, *encode(body["input"], self.specials)]}

    def _tokenize(self, body: Body) -> Reply | None:
        if self.family == "llama.cpp":
            if "content" not in body:
                return httpx.Response(400, json={"error": {"message": '"content" must be given'}})
            bos = [BOS] if body.get("add_special") else []
            return {"tokens": bos + encode(body["content"], self.specials)}
        if self.family == "vllm":
            if "messages" in body:
                ids = encode(chatml(body["messages"]), self.specials)
            elif "prompt" in body:
                bos = [BOS] if body.get("add_special_tokens", True) else []
                ids = bos + encode(body["prompt"], self.specials)
            else:  # vLLM answers a validation error with 400
                error = {"object": "error", "message": "Field required", "code": 400}
                return httpx.Response(400, json=error)
            return {"count": len(ids), "max_model_len": 4096, "tokens": ids}
        return None

    def _v1_tokenize(self, body: Body) -> Reply | None:
        if self.family != "sglang":
            return None
        ids = encode(body["prompt"], self.specials)
        return {"tokens": ids, "count": len(ids), "char_count": len(body["prompt"])}

    def _detokenize(self, body: Body) -> Reply | None:
        if self.family != "vllm":
            return None
        return {"prompt": decode(body["tokens"], self.specials)}

    def _apply_template(self, body: Body) -> Reply | None:
        if self.family != "llama.cpp":
            return None
        return {"prompt": chatml(body["messages"])}

    def _completions(self, body: Body) -> Reply:
        if self.complete is not None:
            return self.complete(body)
        thinking = "logit_bias" in body
        words = thinking_words(body["max_tokens"]) if thinking else [ANSWER]
        tokens = body["max_tokens"] if thinking else ANSWER_TOKENS
        finish = "length" if thinking else "stop"
        if not body.get("stream"):
            return completion("".join(words), finish, tokens=tokens)
        events: list[Body] = [
            {"choices": [{"index": 0, "text": w, "finish_reason": None}]} for w in words
        ]
        events[-1]["choices"][0]["finish_reason"] = finish
        usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": tokens}
        return sse([*events, {"choices": [], "usage": usage}])

    def _chat(self, body: Body) -> Reply | None:
        return self.chat(body) if self.chat is not None else None
