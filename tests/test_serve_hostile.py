"""Hostile clients: whatever a request holds, it ends in a deliberate status, counted once.

Each case of :data:`CORPUS` (encodings, nesting, sizes, types, headers, a body that
never arrives whole) and each body that hypothesis builds is sent straight to the
ASGI app (no HTTP client in between to tidy it up) in front of the fake upstream.
Every one must get 2xx or 4xx with one short error line, never a 500, and add
exactly one to ``thinkq_requests_total``, under the outcome it deserves.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakes import FakeServer, profile
from test_serve_app import metric
from thinkq.measure.templates import TEMPLATES
from thinkq.serve import Gateway, create_app
from thinkq.serve.metrics import OUTCOMES

KEY = "k"
PATH = "/v1/chat/completions"
CHAT: dict[str, Any] = {"messages": [{"role": "user", "content": "What is 2 + 3?"}]}
DEEP = 100_000
#: The longest error line a client gets back (characters).
LONGEST_MESSAGE = 500
#: What the fake says to a prompt longer than its context (llama-cpp-python's words).
TOO_LONG = (
    "This model's maximum context length is 4096 tokens. However, you requested 9000 "
    "tokens (8000 in the messages, 1000 in the completion)."
)


def chat(**changes: Any) -> bytes:
    return json.dumps(CHAT | changes).encode()


def message(content: Any, role: Any = "user") -> bytes:
    return json.dumps({"messages": [{"role": role, "content": content}]}).encode()


def escaped(text: str) -> bytes:
    """A chat body whose one message is ``text``, written with JSON escapes only."""
    return b'{"messages": [{"role": "user", "content": "' + text.encode() + b'"}]}'


@dataclass
class Case:
    """One hostile request and what it must get: a status, an outcome, a word."""

    body: bytes
    status: int
    outcome: str
    says: str = ""
    path: str = PATH
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    leaves: bool = False  # the client goes before its body is whole
    authorization: bytes | None = b"Bearer k"
    upstream: Callable[[FakeServer], None] | None = None


def _too_long(fake: FakeServer) -> None:
    fake.complete = lambda body: httpx.Response(400, json={"error": {"message": TOO_LONG}})


CORPUS: dict[str, Case] = {
    # encodings
    "lone high surrogate": Case(escaped("\\ud800"), 400, "bad_request", "surrogate"),
    "lone low surrogate": Case(escaped("a\\udfffb"), 400, "bad_request", "surrogate"),
    "reversed pair": Case(escaped("\\udc00\\ud800"), 400, "bad_request", "surrogate"),
    "surrogate in a role": Case(message("hi", "\ud800"), 400, "bad_request", "surrogate"),
    "surrogate in stop": Case(chat(stop=["\udbff"]), 400, "bad_request", "surrogate"),
    "surrogate in the task": Case(
        chat(metadata={"task": "\ud800"}), 400, "bad_request", "surrogate"
    ),
    "surrogate in an ignored field": Case(chat(user="\udc00"), 400, "bad_request", "surrogate"),
    "a valid pair": Case(escaped("\\ud83d\\ude00"), 200, "ok"),
    "escaped backslash, no surrogate": Case(escaped("\\\\ud800"), 200, "ok"),
    "invalid UTF-8": Case(b'{"messages": "\xff\xfe"}', 400, "bad_request", "not UTF-8"),
    "a surrogate in UTF-8": Case(
        message("\ud800").replace(b"\\ud800", b"\xed\xa0\x80"), 400, "bad_request", "not UTF-8"
    ),
    "UTF-16 body": Case(chat().decode().encode("utf-16"), 400, "bad_request", "not UTF-8"),
    "a byte-order mark": Case(b"\xef\xbb\xbf" + chat(), 400, "bad_request", "not JSON"),
    "NUL characters": Case(message("a\x00b"), 200, "ok"),
    # nesting
    "arrays 100,000 deep": Case(b"[" * DEEP + b"]" * DEEP, 400, "bad_request", "nested"),
    "objects 100,000 deep in a field": Case(
        b'{"messages": [], "x": ' + b'{"a": ' * DEEP + b"1" + b"}" * DEEP + b"}",
        400,
        "bad_request",
        "nested",
    ),
    "content 100,000 deep": Case(
        b'{"messages": [{"role": "user", "content": ' + b"[" * DEEP + b"]" * DEEP + b"}]}",
        400,
        "bad_request",
        "nested",
    ),
    "500 deep in metadata": Case(
        chat(metadata=json.loads('{"a": ' * 500 + "1" + "}" * 500)), 200, "ok"
    ),
    "deep with a surrogate": Case(
        b'{"messages": [], "x": ' + b"[" * 900 + b'"\\ud800"' + b"]" * 900 + b"}",
        400,
        "bad_request",
    ),
    # not a request
    "empty body": Case(b"", 400, "bad_request", "not JSON"),
    "not JSON": Case(b"{messages", 400, "bad_request", "not JSON"),
    "JSON null": Case(b"null", 400, "bad_request"),
    "JSON array": Case(b"[1, 2]", 400, "bad_request"),
    "JSON string": Case(b'"hi"', 400, "bad_request"),
    "no messages": Case(b"{}", 400, "bad_request", "messages"),
    "empty messages": Case(chat(messages=[]), 400, "bad_request", "messages"),
    "content a number": Case(message(7), 400, "bad_request", "content"),
    "content parts of every kind": Case(
        message([{"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "2"}]),
        200,
        "ok",
    ),
    "content parts not objects": Case(message(["a", 1]), 400, "bad_request", "content"),
    "no role": Case(b'{"messages": [{"content": "hi"}]}', 400, "bad_request", "role"),
    "an odd role": Case(message("hi", "narrator"), 200, "ok"),
    "10,000 messages": Case(chat(messages=[{"role": "user", "content": "x"}] * 10_000), 200, "ok"),
    # numbers and types
    "max_tokens 10^12": Case(chat(max_tokens=10**12), 400, "bad_request", "max_tokens"),
    "max_completion_tokens 10^12": Case(
        chat(max_completion_tokens=10**12), 400, "bad_request", "max_tokens"
    ),
    "a number of 5,000 digits": Case(
        b'{"messages": [], "seed": ' + b"7" * 5000 + b"}", 400, "bad_request", "not JSON"
    ),
    "max_tokens 10^400": Case(chat(max_tokens=10**400), 400, "bad_request", "max_tokens"),
    "max_tokens 0": Case(chat(max_tokens=0), 400, "bad_request", "max_tokens"),
    "max_tokens a fraction": Case(chat(max_tokens=1.5), 400, "bad_request", "max_tokens"),
    "max_tokens a list": Case(chat(max_tokens=[8]), 400, "bad_request", "max_tokens"),
    "temperature NaN": Case(b'{"messages": [], "temperature": NaN}', 400, "bad_request"),
    "temperature Infinity": Case(
        b'{"messages": [{"role": "user", "content": "x"}], "temperature": Infinity}',
        400,
        "bad_request",
        "temperature",
    ),
    "temperature 1e400": Case(
        b'{"messages": [{"role": "user", "content": "x"}], "temperature": 1e400}',
        400,
        "bad_request",
        "temperature",
    ),
    "seed 10^30": Case(chat(seed=10**30), 400, "bad_request", "seed"),
    "seed -1": Case(chat(seed=-1), 200, "ok"),
    "n 2": Case(chat(n=2), 400, "bad_request", "n"),
    "stop a number": Case(chat(stop=3), 400, "bad_request", "stop"),
    "1,000 stop strings": Case(chat(stop=[f"s{i}" for i in range(1000)]), 200, "ok"),
    "stream a string": Case(chat(stream="sometimes"), 400, "bad_request", "stream"),
    "metadata a list": Case(chat(metadata=[1]), 400, "bad_request", "metadata"),
    # task names
    "task a 10 KB name": Case(chat(metadata={"task": "t" * 10_000}), 400, "bad_request", "tttt..."),
    "task a list": Case(chat(metadata={"task": ["math"]}), 400, "bad_request", "not a string"),
    "task header 10 KB": Case(
        chat(), 400, "bad_request", "unknown task", headers=[(b"x-thinkq-task", b"t" * 10_000)]
    ),
    "task header in Latin-1": Case(
        chat(), 400, "bad_request", "unknown task", headers=[(b"x-thinkq-task", b"\xe9\xff")]
    ),
    # completions
    "two prompts": Case(
        b'{"prompt": ["a", "b"]}', 400, "bad_request", "one prompt", path="/v1/completions"
    ),
    "token ids as the prompt": Case(
        b'{"prompt": [1, 2, 3]}', 400, "bad_request", "prompt", path="/v1/completions"
    ),
    "a surrogate prompt": Case(
        b'{"prompt": "\\ud800"}', 400, "bad_request", "surrogate", path="/v1/completions"
    ),
    # sizes and headers
    "body over the limit": Case(b" " * (1 << 20) + chat(), 413, "bad_request", "larger than"),
    "Content-Length of 5,000 digits": Case(
        chat(), 413, "bad_request", "larger than", headers=[(b"content-length", b"9" * 5000)]
    ),
    "Content-Length in superscript digits": Case(
        chat(), 200, "ok", headers=[(b"content-length", b"\xb2\xb3")]
    ),
    "Content-Length not a number": Case(chat(), 200, "ok", headers=[(b"content-length", b"x")]),
    "a body that never arrives whole": Case(chat(), 499, "disconnected", leaves=True),
    # the upstream's context
    "a prompt over the context": Case(
        message("x" * 9000), 400, "bad_request", "context", upstream=_too_long
    ),
    "a streamed prompt over the context": Case(
        chat(stream=True), 400, "bad_request", "context", upstream=_too_long
    ),
}


class Sent:
    """What the app answered one request: its status (499 if none) and its body."""

    def __init__(self) -> None:
        self.status = 499  # until a response starts: the client never saw one
        self.chunks: list[bytes] = []

    def text(self) -> str:
        return b"".join(self.chunks).decode()


async def send(app: Any, case: Case) -> Sent:
    """``case`` straight to the ASGI app, in 64 KiB pieces (the last one never, if it leaves)."""
    headers = [(b"content-type", b"application/json"), *case.headers]
    if case.authorization is not None:
        headers.append((b"authorization", case.authorization))
    if not any(name == b"content-length" for name, _ in headers):
        headers.append((b"content-length", str(len(case.body)).encode()))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "path": case.path, "raw_path": case.path.encode(), "query_string": b"",
        "headers": headers, "scheme": "http", "server": ("gateway.test", 80),
        "client": ("127.0.0.1", 1),
    }  # fmt: skip
    pieces = [case.body[i : i + (1 << 16)] for i in range(0, len(case.body), 1 << 16)] or [b""]
    if case.leaves:
        pieces = [*pieces[:-1], pieces[-1][:10]]
    gone = asyncio.Event()
    sent = Sent()

    async def receive() -> dict[str, Any]:
        if pieces:
            more = len(pieces) > 1 or case.leaves
            return {"type": "http.request", "body": pieces.pop(0), "more_body": more}
        if case.leaves:
            return {"type": "http.disconnect"}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def reply(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent.status = message["status"]
        elif message["type"] == "http.response.body":
            sent.chunks.append(message.get("body", b""))

    try:
        await app(scope, receive, reply)
    finally:
        gone.set()
    return sent


def counts(gateway: Gateway) -> dict[str, float]:
    text = gateway.metrics.exposition().decode()
    return {o: metric(text, "thinkq_requests_total", outcome=o) for o in OUTCOMES}


async def check(app: Any, gateway: Gateway, case: Case) -> Sent:
    """Send ``case``; assert its status, its one error line and its one count."""
    before = counts(gateway)
    sent = await asyncio.wait_for(send(app, case), 60)
    after = counts(gateway)
    assert sent.status == case.status, sent.text()[:300]
    assert {o: after[o] - before[o] for o in OUTCOMES if after[o] != before[o]} == {case.outcome: 1}
    if 400 <= sent.status < 499:
        error = json.loads(sent.text())["error"]["message"]
        assert "\n" not in error
        assert len(error) <= LONGEST_MESSAGE, error[:100]
        assert case.says in error
    return sent


def gateway_of(fake: FakeServer) -> Gateway:
    return Gateway(profile(), fake.server(), template=TEMPLATES["chatml"], resolve_every=0.0)


@pytest.mark.parametrize("name", list(CORPUS))
def test_every_hostile_request_gets_a_deliberate_status_and_one_count(name: str) -> None:
    case = CORPUS[name]
    fake = FakeServer()
    if case.upstream is not None:
        case.upstream(fake)

    async def main() -> None:
        async with gateway_of(fake) as gateway:
            app = create_app(gateway, api_key=KEY)
            await check(app, gateway, case)
            assert (gateway.queue.busy, gateway.queue.acquired) == (0, gateway.queue.released)

    asyncio.run(main())


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (b"Bearer k", 200),
        (b"bearer k", 200),
        (b"BEARER k", 200),
        (b"Bearer  k", 200),
        (b"Bearer kk", 401),
        (b"Basic k", 401),
        (b"k", 401),
        (b"Bearer", 401),
        (b"", 401),
        (None, 401),
        (b"Bearer \xff" * 5000, 401),
    ],
)
def test_the_auth_scheme_is_case_insensitive_and_every_refusal_is_counted(
    authorization: bytes | None, status: int
) -> None:
    async def main() -> None:
        async with gateway_of(FakeServer()) as gateway:
            app = create_app(gateway, api_key=KEY)
            outcome = "ok" if status == 200 else "unauthorized"
            await check(app, gateway, Case(chat(), status, outcome, authorization=authorization))

    asyncio.run(main())


def test_a_context_overflow_in_the_answer_phase_ends_the_stream_with_an_error_event() -> None:
    fake = FakeServer()
    calls = {"n": 0}

    def complete(body: dict[str, Any]) -> Any:
        calls["n"] += 1
        if "logit_bias" in body:  # the thinking phase fits; the answer's prompt does not
            n = body["max_tokens"]
            events = [{"choices": [{"index": 0, "text": f" w{i}", "finish_reason": None}]}
                      for i in range(n)]  # fmt: skip
            events[-1]["choices"][0]["finish_reason"] = "length"
            text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
            return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})
        return httpx.Response(400, json={"error": {"message": TOO_LONG}})

    fake.complete = complete

    async def main() -> None:
        async with gateway_of(fake) as gateway:
            app = create_app(gateway, api_key=KEY)
            case = Case(chat(stream=True, metadata={"task": "math"}), 200, "bad_request")
            sent = await check(app, gateway, case)
            assert "maximum context length" in sent.text()
            assert sent.text().endswith("data: [DONE]\n\n")

    asyncio.run(main())


# ------------------------------------------------------------------ generated bodies

_SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc00", "\ud83d\ude00"])
_TEXT = st.text(max_size=20) | _SURROGATES
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=20,
)
_FIELDS = st.sampled_from(
    ["content", "role", "messages", "max_tokens", "stop", "metadata", "temperature", "top_p",
     "seed", "stream", "stream_options", "n", "model", "body"]
)  # fmt: skip


def _hostile_body(where: str, value: Any, ascii_only: bool) -> bytes:
    body: Any = {"messages": [{"role": "user", "content": "hi"}]}
    if where in ("content", "role"):
        body["messages"][0][where] = value
    elif where == "body":
        body = value
    else:
        body[where] = value
    return json.dumps(body, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=_FIELDS, value=_JSON, ascii_only=st.booleans())
def test_generated_bodies_get_200_or_400_and_one_count(
    where: str, value: Any, ascii_only: bool
) -> None:
    body = _hostile_body(where, value, ascii_only)

    async def main() -> None:
        async with gateway_of(FakeServer()) as gateway:
            app = create_app(gateway, api_key=KEY)
            before = counts(gateway)
            sent = await asyncio.wait_for(send(app, Case(body, 0, "")), 60)
            after = counts(gateway)
            assert sent.status in (200, 400), sent.text()[:300]
            changed = {o: after[o] - before[o] for o in OUTCOMES if after[o] != before[o]}
            assert changed == {"ok" if sent.status == 200 else "bad_request": 1}
            if sent.status == 400:
                error = json.loads(sent.text())["error"]["message"]
                assert "\n" not in error
                assert len(error) <= LONGEST_MESSAGE

    asyncio.run(main())
