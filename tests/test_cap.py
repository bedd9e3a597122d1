"""Cap mode streamed: ``Capper.stream`` against fake chat servers, and the gateway's pieces.

The fake chat endpoint (:func:`chat_script`, plugged into ``fake_servers.FakeServer``
for its tokenizer) answers the same script whole or as server-sent deltas, so each
test can hold :meth:`Capper.stream` to :meth:`Capper.generate` on the same server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import httpx
import pytest

from fake_servers import BASE_URL, MODEL, Body, FakeServer, Reply, sse
from thinkq.errors import ForcingError, ServerError
from thinkq.measure.cap import Capper
from thinkq.measure.generation import Generation, Piece
from thinkq.measure.prompts import Cue
from thinkq.measure.server import Server
from thinkq.serve.runs import Job, pieces

T = TypeVar("T")

QUESTION = [{"role": "user", "content": "What is 6 * 7?"}]
CUE = Cue("", 16, ())
THINKING = ("Six", " sevens", " are 42.")
ANSWER = ("The answer", " is", " 42")
DETAILS = {
    "prompt_tokens": 12,
    "completion_tokens": 30,
    "completion_tokens_details": {"reasoning_tokens": 20},
}
NO_DETAILS = {"prompt_tokens": 12, "completion_tokens": 9, "completion_tokens_details": None}


def delta(part: Body, finish: str | None = None) -> Body:
    return {"choices": [{"index": 0, "delta": part, "finish_reason": finish}]}


def chat_script(
    thinking: Sequence[str] = THINKING,
    answer: Sequence[str] = ANSWER,
    usage: Body | None = DETAILS,
    *,
    keys: Sequence[str] = ("reasoning_content",),
) -> Callable[[Body], Reply]:
    """A chat endpoint that thinks ``thinking`` and answers ``answer``, whole or streamed.

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


def run(transport: FakeServer | httpx.MockTransport, action: Callable[[Capper], Awaitable[T]]) -> T:
    """Run ``action`` on a :class:`Capper` over ``transport``, then close the server."""
    if isinstance(transport, FakeServer):
        transport = transport.transport()

    async def main() -> T:
        async with Server(BASE_URL, MODEL, transport=transport) as server:
            return await action(Capper(server))

    return asyncio.run(main())


async def collect(capper: Capper, budget: int, out: list[Piece] | None = None) -> list[Piece]:
    """The pieces of one streamed request (also appended to ``out`` as they come)."""
    got = [] if out is None else out
    async for piece in capper.stream(QUESTION, budget, cue=CUE, seed=5):
        got.append(piece)
    return got


def streamed(fake: FakeServer, budget: int = 32) -> list[Piece]:
    return run(fake, lambda capper: collect(capper, budget))


def generated(fake: FakeServer, budget: int = 32) -> Generation:
    return run(fake, lambda capper: capper.generate(QUESTION, budget, cue=CUE, seed=5))


def done(got: list[Piece]) -> Generation:
    assert got[-1].kind == "done"
    assert got[-1].generation is not None
    return got[-1].generation


# ---------------------------------------------------------------- the request


def test_stream_sends_the_generate_body_with_stream_and_usage() -> None:
    fake = FakeServer(chat=chat_script())
    generated(fake)
    streamed(fake)
    whole, stream = fake.bodies("/v1/chat/completions")
    assert whole["thinking_token_budget"] == 32
    assert stream == whole | {"stream": True, "stream_options": {"include_usage": True}}


# ---------------------------------------------------------------- pieces


def test_pieces_arrive_delta_by_delta_thinking_before_answer() -> None:
    got = streamed(FakeServer(chat=chat_script()))
    assert [(p.kind, p.text) for p in got[:-1]] == [
        *(("thinking", t) for t in THINKING),
        *(("answer", t) for t in ANSWER),
    ]
    assert [p.kind for p in got].count("done") == 1
    generation = done(got)
    assert generation.thinking == "".join(THINKING)
    assert generation.answer == "".join(ANSWER)


@pytest.mark.parametrize("usage", [DETAILS, NO_DETAILS, None])
@pytest.mark.parametrize("keys", [("reasoning_content",), ("reasoning",)])
def test_stream_gives_what_generate_gives(usage: Body | None, keys: Sequence[str]) -> None:
    fake = FakeServer(chat=chat_script(usage=usage, keys=keys))
    whole, stream = generated(fake), done(streamed(fake))
    fields = ("budget", "thinking", "answer", "thinking_tokens", "answer_tokens")
    assert [getattr(stream, f) for f in fields] == [getattr(whole, f) for f in fields]
    assert (stream.prompt_tokens, stream.mode) == (whole.prompt_tokens, "cap")
    assert stream.thinking == "Six sevens are 42."


def test_both_reasoning_keys_in_one_delta_are_one_piece() -> None:
    fake = FakeServer(chat=chat_script(keys=("reasoning_content", "reasoning")))
    got = streamed(fake)
    assert [p.text for p in got if p.kind == "thinking"] == list(THINKING)
    assert done(got).thinking == "Six sevens are 42."


# ---------------------------------------------------------------- token counts


def test_reasoning_tokens_from_the_last_usage_event() -> None:
    fake = FakeServer(chat=chat_script(usage=DETAILS))
    generation = done(streamed(fake))
    assert (generation.thinking_tokens, generation.answer_tokens) == (20, 10)
    assert generation.prompt_tokens == 12
    assert fake.bodies("/tokenize") == []  # usage was enough


@pytest.mark.parametrize("family", ["llama-cpp-python", "llama.cpp", "vllm"])
def test_reasoning_tokens_by_tokenizer_without_details(family: Any) -> None:
    script = chat_script(("ab", "c</think>"), (" 42",), NO_DETAILS)
    fake = FakeServer(family=family, chat=script)
    generation = done(streamed(fake, 8))
    assert generation.thinking == "abc</think>"
    assert generation.thinking_tokens == 4  # a, b, c and the special token; no BOS
    assert generation.answer_tokens == 5
    texts = [
        c.body.get("input") or c.body.get("content") or c.body.get("prompt")
        for c in fake.calls
        if c.path.endswith("/tokenize")
    ]
    assert "abc</think>" in texts
    assert "ab" not in texts  # the whole thinking is counted, not delta by delta


def test_no_thinking_counts_zero_without_tokenizing() -> None:
    fake = FakeServer(chat=chat_script((), (" 42",), None))
    got = streamed(fake, 0)
    assert [p.kind for p in got] == ["answer", "done"]
    generation = done(got)
    assert (generation.thinking_tokens, generation.answer_tokens) == (0, 0)
    assert fake.paths() == ["/v1/chat/completions"]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "usage",
    [
        {"completion_tokens": 70, "completion_tokens_details": {"reasoning_tokens": 65}},
        None,  # counted: 65 characters
    ],
)
def test_over_the_cap_raises_after_the_pieces(usage: Body | None) -> None:
    fake = FakeServer(chat=chat_script(("x" * 40, "x" * 25), (" 42",), usage))
    got: list[Piece] = []
    with pytest.raises(ForcingError, match="over a cap of 64") as info:
        run(fake, lambda capper: collect(capper, 64, got))
    assert "thought for 65 tokens" in str(info.value)
    assert "'thinking_token_budget'" in str(info.value)
    assert [p.kind for p in got] == ["thinking", "thinking", "answer"]  # no done


def test_at_the_cap_is_fine() -> None:
    fake = FakeServer(chat=chat_script(("x" * 64,), (" 42",), None))
    assert done(streamed(fake, 64)).thinking_tokens == 64


def test_error_status_is_a_server_error() -> None:
    def chat(body: Body) -> Reply:
        return httpx.Response(503, json={"error": {"message": "loading model"}})

    with pytest.raises(ServerError) as info:
        streamed(FakeServer(chat=chat))
    assert (info.value.status, info.value.transient) == (503, True)
    assert str(info.value).endswith(": loading model")


def test_a_connection_lost_mid_stream_is_a_server_error() -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield f"data: {json.dumps(delta({'reasoning_content': 'Six'}))}\n\n".encode()
        raise httpx.ReadError("connection reset by peer")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=broken())

    got: list[Piece] = []
    with pytest.raises(ServerError, match="connection reset by peer") as info:
        run(httpx.MockTransport(handler), lambda capper: collect(capper, 32, got))
    assert info.value.transient
    assert [(p.kind, p.text) for p in got] == [("thinking", "Six")]


def test_a_stream_without_choices_is_a_server_error() -> None:
    def chat(body: Body) -> Reply:  # a server that ignores "stream": a JSON reply
        return chat_script()({**body, "stream": False})

    with pytest.raises(ServerError, match="stream of /chat/completions has no choices"):
        streamed(FakeServer(chat=chat))


def test_a_negative_budget_is_refused_before_any_request() -> None:
    fake = FakeServer(chat=chat_script())
    with pytest.raises(ValueError, match="budget"):
        streamed(fake, -1)
    assert fake.calls == []


# ---------------------------------------------------------------- the gateway's pieces


def job() -> Job:
    return Job(task=0, arrival=0.0, kind="chat", messages=QUESTION, text="", cue=CUE, seed=5)


def test_gateway_pieces_stream_cap_mode() -> None:
    async def action(capper: Capper) -> list[Piece]:
        return [piece async for piece in pieces(capper, job(), 32)]

    fake = FakeServer(chat=chat_script())
    got = run(fake, action)
    assert [p.text for p in got[:-1]] == [*THINKING, *ANSWER]  # not one piece per kind
    assert done(got).thinking_tokens == 20
    assert fake.bodies("/v1/chat/completions")[0]["stream"] is True


def test_closing_gateway_pieces_early_closes_the_upstream_stream() -> None:
    async def action(capper: Capper) -> tuple[Piece, bool]:
        inner = capper.stream(QUESTION, 32, cue=CUE, seed=5)
        capper.stream = lambda *args, **kwargs: inner  # type: ignore[method-assign]
        outer = pieces(capper, job(), 32)
        first = await anext(outer)
        await outer.aclose()
        return first, getattr(inner, "ag_frame", "open") is None

    first, closed = run(FakeServer(chat=chat_script()), action)
    assert (first.kind, first.text) == ("thinking", "Six")
    assert closed  # at once, not left to the event loop's shutdown
