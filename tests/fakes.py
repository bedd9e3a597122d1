"""One fake OpenAI-compatible server for every unit test: an ``httpx.MockTransport``.

:class:`FakeServer` answers like llama-cpp-python, llama.cpp, vLLM or SGLang
(``family``: their tokenizer and template endpoints), or like a plain OpenAI API
without them (``"openai"``), and records every request. Its tokenizer maps each text
of ``specials`` to one id and every other character to its own id (``1000 +
ord(ch)``); llama-cpp-python puts :data:`BOS` before every text, as the real one does.

It generates like the real servers, one token at a time:

* ``/v1/completions`` with ``logit_bias`` (the thinking phase of budget forcing)
  writes ``max_tokens`` tokens ``" w0", " w1", ...`` and stops for ``"length"``
  (``short_by`` tokens fewer, and ``"stop"``, to break forcing); without it, it
  writes the tokens of ``answer``.
* ``/v1/chat/completions`` is a reasoning model with a native budget (cap mode): it
  thinks ``" w0", " w1", ...`` as ``reasoning_content`` for as many tokens as the
  budget field (``thinking_token_budget`` or ``thinking_budget_tokens``) says
  (``thinking`` tokens without one), then answers ``answer``.
* Both stop after ``max_tokens`` tokens in all (finish ``"length"``) and before the
  first ``stop`` string in the text written (finish ``"stop"``), and report
  ``usage`` (with ``completion_tokens_details.reasoning_tokens`` for chat) unless
  ``usage`` is false. Streamed (``"stream": true``) they send one event per token, a
  last event with the finish reason, then, when asked with ``stream_options:
  {"include_usage": true}``, one with ``usage`` and no choices, then ``[DONE]``
  (``stream_usage`` false: never, as llama-cpp-python).

Hooks make it misbehave: ``down`` refuses every connection, :meth:`fail_on` gives a
generation request an error status, ``broken`` maps paths to the error status they
always answer, ``cut_after`` breaks the connection after that
many tokens of a reply (a plain reply is cut in its body), ``delay`` is each
generation's service time (seconds). ``prompt_ms`` (new, held) makes a plain
``/v1/completions`` reply carry llama.cpp's ``timings``: ``prompt_ms`` the first for a
prompt not seen before (``prompt_n`` its characters), the second for one seen
(``prompt_n`` 1), as llama-server's prompt cache does. ``complete`` (or ``chat``) replaces the reply
of ``/v1/completions`` (``/v1/chat/completions``); a reply that is an
``httpx.Response`` is sent as it is.

:func:`profile` and :class:`Clock` are the gateway tests' two-type profile and
hand-moved clock.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from thinkq import Profile
from thinkq.measure.server import Server

Family = Literal["llama-cpp-python", "llama.cpp", "vllm", "sglang", "openai"]
Body = dict[str, Any]
Reply = Body | httpx.Response

BASE_URL = "http://llm.test:8000/v1"
MODEL = "fake-model"
BOS = 1
#: The answer's tokens, the answer, and its length in tokens.
ANSWER_PIECES = (" 4", "2")
ANSWER = "".join(ANSWER_PIECES)
ANSWER_TOKENS = len(ANSWER_PIECES)
PROMPT_TOKENS = 17
BUDGET_FIELDS = ("thinking_token_budget", "thinking_budget_tokens")

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


def written(
    tokens: Sequence[tuple[str, str]], *, max_tokens: int | None, stop: object
) -> tuple[list[tuple[str, str]], str]:
    """What a server writes of ``tokens`` (kind, text) and why it stops.

    At most ``max_tokens`` tokens (``"length"``); a token that completes a ``stop``
    string ends the text before that string (``"stop"``), as llama.cpp and vLLM do.
    """
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    out: list[tuple[str, str]] = []
    text = ""
    for kind, token in tokens:
        if max_tokens is not None and len(out) >= max_tokens:
            return out, "length"
        found = [i for i in ((text + token).find(s) for s in stops if s) if i >= 0]
        if found:
            kept = (text + token)[: min(found)][len(text) :]
            if kept:
                out.append((kind, kept))
            return out, "stop"
        out.append((kind, token))
        text += token
    return out, "stop"


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
    answer: tuple[str, ...] = ANSWER_PIECES
    thinking: int = 4
    usage: bool = True
    stream_usage: bool = True
    short_by: int = 0
    delay: float = 0.0
    down: bool = False
    cut_after: int | None = None
    failures: dict[int, int] = field(default_factory=dict)
    broken: dict[str, int] = field(default_factory=dict)
    complete: Callable[[Body], Reply] | None = None
    chat: Callable[[Body], Reply] | None = None
    calls: list[Call] = field(default_factory=list)
    generations: int = 0
    prompt_ms: tuple[float, float] | None = None
    seen: set[str] = field(default_factory=set)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def server(self, *, timeout: float = 30.0, **options: Any) -> Server:
        """A :class:`Server` of :data:`MODEL` at :data:`BASE_URL` over this fake."""
        return Server(BASE_URL, MODEL, timeout=timeout, transport=self.transport(), **options)

    def paths(self) -> list[str]:
        return [c.path for c in self.calls]

    def bodies(self, path: str) -> list[Body]:
        return [c.body for c in self.calls if c.path == path]

    def generated(self) -> list[Body]:
        """The bodies of the generation requests (completions and chat), in order."""
        return [c.body for c in self.calls if c.path in ("/v1/completions", "/v1/chat/completions")]

    def fail_on(self, number: int, status: int = 500) -> None:
        """Make the ``number``-th generation request (1-based) answer ``status``."""
        self.failures[number] = status

    # ---------------------------------------------------------------- routing

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        body = json.loads(request.content) if request.content else {}
        path = request.url.path
        self.calls.append(Call(request.method, path, body, request.headers))
        if path in self.broken:
            return httpx.Response(self.broken[path], json={"error": {"message": "loading model"}})
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
        if route is not None and path.endswith("completions"):
            self.generations += 1
            status = self.failures.get(self.generations)
            if status is not None:
                return httpx.Response(status, json={"error": {"message": "injected failure"}})
            if self.delay:
                await asyncio.sleep(self.delay)
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

    # ---------------------------------------------------------------- generation

    def _completions(self, body: Body) -> Reply:
        if self.complete is not None:
            return self.complete(body)
        if "logit_bias" in body:  # thinking with the end tokens suppressed
            n = max(body["max_tokens"] - self.short_by, 0)
            out = [("text", w) for w in thinking_words(n)]
            finish = "length" if n == body["max_tokens"] else "stop"
        else:
            tokens = [("text", t) for t in self.answer]
            out, finish = written(tokens, max_tokens=body.get("max_tokens"), stop=body.get("stop"))
        usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": len(out)}
        usage["total_tokens"] = PROMPT_TOKENS + len(out)
        if not body.get("stream"):
            reply = completion("".join(t for _, t in out), finish, tokens=None)
            return self._plain(reply | ({"usage": usage} if self.usage else {}) | self._timed(body))
        events = [{"choices": [{"index": 0, "text": t, "finish_reason": None}]} for _, t in out]
        if not events:
            events.append({"choices": [{"index": 0, "text": "", "finish_reason": None}]})
        events[-1]["choices"][0]["finish_reason"] = finish
        return self._events(body, events, usage)

    def _timed(self, body: Body) -> Body:
        """llama.cpp's ``timings`` of a prompt, new or seen (none without ``prompt_ms``)."""
        if self.prompt_ms is None:
            return {}
        prompt = str(body.get("prompt"))
        new = prompt not in self.seen
        self.seen.add(prompt)
        ms = self.prompt_ms[0] if new else self.prompt_ms[1]
        return {"timings": {"prompt_ms": ms, "prompt_n": len(prompt) if new else 1}}

    def _chat(self, body: Body) -> Reply | None:
        if self.chat is not None:
            return self.chat(body)
        budget = next((body[f] for f in BUDGET_FIELDS if f in body), self.thinking)
        tokens = [("reasoning_content", w) for w in thinking_words(int(budget))]
        tokens += [("content", t) for t in self.answer]
        out, finish = written(tokens, max_tokens=body.get("max_tokens"), stop=body.get("stop"))
        thought = sum(1 for kind, _ in out if kind == "reasoning_content")
        usage = {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": len(out),
            "total_tokens": PROMPT_TOKENS + len(out),
            "completion_tokens_details": {"reasoning_tokens": thought},
        }
        if not body.get("stream"):
            message = {"role": "assistant", "content": "", "reasoning_content": ""}
            for kind, text in out:
                message[kind] += text
            reply: Body = {"choices": [{"index": 0, "message": message, "finish_reason": finish}]}
            return self._plain(reply | ({"usage": usage} if self.usage else {}))
        first = {"role": "assistant", "content": ""}
        deltas = [first] + [{kind: text} for kind, text in out]
        events = [{"choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
        events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        return self._events(body, events, usage)

    def _plain(self, reply: Body) -> httpx.Response:
        if self.cut_after is None:
            return httpx.Response(200, json=reply)
        return httpx.Response(200, headers={"content-type": "application/json"}, content=_cut([]))

    def _events(self, body: Body, events: list[Body], usage: Body) -> httpx.Response:
        if self.usage and self.stream_usage and body.get("stream_options", {}).get("include_usage"):
            events = [*events, {"choices": [], "usage": usage}]
        if self.cut_after is None:
            return sse(events)
        lines = [f"data: {json.dumps(e)}\n\n".encode() for e in events[: self.cut_after]]
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=_cut(lines)
        )


async def _cut(chunks: list[bytes]) -> AsyncIterator[bytes]:
    """A body that sends ``chunks``, then loses its connection."""
    for chunk in chunks:
        yield chunk
    raise httpx.ReadError("connection reset by peer")


def delta(part: Body, finish: str | None = None) -> Body:
    """A streamed chat event whose one choice has ``part`` as its ``delta``."""
    return {"choices": [{"index": 0, "delta": part, "finish_reason": finish}]}


def chat_script(
    thinking: Sequence[str],
    answer: Sequence[str],
    usage: Body | None,
    *,
    keys: Sequence[str] = ("reasoning_content",),
) -> Callable[[Body], Reply]:
    """A ``chat`` endpoint that thinks ``thinking`` and answers ``answer``, whole or streamed.

    The thinking goes under each of ``keys``; streamed, ``usage`` comes in a last
    event only when the request asks for it (``include_usage``), as vLLM does.
    """

    def chat(body: Body) -> Reply:
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(answer)}
            message |= {key: "".join(thinking) for key in keys}
            reply: Body = {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
            return reply if usage is None else reply | {"usage": usage}
        events = [delta({"role": "assistant", "content": ""})]
        events += [delta(dict.fromkeys(keys, text)) for text in thinking]
        events += [delta({"content": text}) for text in answer]
        events.append(delta({}, "stop"))
        if usage is not None and body.get("stream_options", {}).get("include_usage"):
            events.append({"choices": [], "usage": usage})
        return sse(events)

    return chat


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


class Clock:
    """A monotonic clock the test moves by hand (seconds)."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
