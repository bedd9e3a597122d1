"""Cap mode: ``Capper`` against fake chat servers, and the gateway's cap-mode stream.

The fake chat endpoint (:func:`fakes.chat_script`, plugged into ``fakes.FakeServer``
for its tokenizer) answers the same script whole or as server-sent deltas;
:meth:`Capper.generate` is :meth:`Capper.stream` drained, so each test can hold one
to the other on the same server. The fake's own chat endpoint (a reasoning model
with a native budget) shows the answer's ``max_tokens`` and ``stop`` honoured.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import httpx
import pytest

from fakes import BASE_URL, MODEL, Body, FakeServer, Reply, chat_script, delta, profile
from thinkq.errors import ForcingError, ServerError
from thinkq.measure.cap import Capper
from thinkq.measure.generation import Generation, Piece, Sampling
from thinkq.measure.prompts import Cue
from thinkq.measure.server import Server
from thinkq.serve import Gateway

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


def script(
    thinking: Sequence[str] = THINKING,
    answer: Sequence[str] = ANSWER,
    usage: Body | None = DETAILS,
    *,
    keys: Sequence[str] = ("reasoning_content",),
) -> Callable[[Body], Reply]:
    return chat_script(thinking, answer, usage, keys=keys)


def run(transport: FakeServer | httpx.MockTransport, action: Callable[[Capper], Awaitable[T]]) -> T:
    """Run ``action`` on a :class:`Capper` over ``transport``, then close the server."""
    if isinstance(transport, FakeServer):
        transport = transport.transport()

    async def main() -> T:
        async with Server(BASE_URL, MODEL, transport=transport) as server:
            return await action(Capper(server))

    return asyncio.run(main())


async def collect(
    capper: Capper, budget: int, out: list[Piece] | None = None, *, cue: Cue = CUE
) -> list[Piece]:
    """The pieces of one streamed request (also appended to ``out`` as they come)."""
    got = [] if out is None else out
    async for piece in capper.stream(QUESTION, budget, cue=cue, seed=5):
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


def test_generate_sends_the_stream_body_with_usage_and_sampling_per_call() -> None:
    fake = FakeServer(chat=script())

    async def action(capper: Capper) -> Generation:
        cue = Cue("", 16, ("\n",))
        return await capper.generate(QUESTION, 32, cue=cue, seed=5, sampling=Sampling(0.0, 1.0))

    run(fake, action)
    streamed(fake)
    whole, stream = fake.bodies("/v1/chat/completions")
    assert whole == {
        "model": MODEL,
        "messages": QUESTION,
        "max_tokens": 32 + 16,  # the budget, then the answer's own limit
        "thinking_token_budget": 32,
        "temperature": 0.0,
        "top_p": 1.0,
        "seed": 5,
        "stream": True,
        "stream_options": {"include_usage": True},
    }  # no "stop": the server would apply it to the thinking too
    assert stream == whole | {"temperature": 0.6, "top_p": 0.95}  # the capper's default


# ---------------------------------------------------------------- pieces


def test_pieces_arrive_delta_by_delta_thinking_before_answer() -> None:
    got = streamed(FakeServer(chat=script()))
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
    fake = FakeServer(chat=script(usage=usage, keys=keys))
    whole, stream = generated(fake), done(streamed(fake))
    fields = ("budget", "thinking", "answer", "thinking_tokens", "answer_tokens")
    assert [getattr(stream, f) for f in fields] == [getattr(whole, f) for f in fields]
    assert (stream.prompt_tokens, stream.mode) == (whole.prompt_tokens, "cap")
    assert stream.thinking == "Six sevens are 42."


def test_both_reasoning_keys_in_one_delta_are_one_piece() -> None:
    fake = FakeServer(chat=script(keys=("reasoning_content", "reasoning")))
    got = streamed(fake)
    assert [p.text for p in got if p.kind == "thinking"] == list(THINKING)
    assert done(got).thinking == "Six sevens are 42."


# ---------------------------------------------------------------- token counts


def test_reasoning_tokens_from_the_last_usage_event() -> None:
    fake = FakeServer(chat=script(usage=DETAILS))
    generation = done(streamed(fake))
    assert (generation.thinking_tokens, generation.answer_tokens) == (20, 10)
    assert generation.prompt_tokens == 12
    assert fake.bodies("/tokenize") == []  # usage was enough


@pytest.mark.parametrize("family", ["llama-cpp-python", "llama.cpp", "vllm"])
def test_reasoning_tokens_by_tokenizer_without_details(family: Any) -> None:
    chat = script(("ab", "c</think>"), (" 42",), NO_DETAILS)
    fake = FakeServer(family=family, chat=chat)
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


def test_no_thinking_counts_zero_and_an_answer_without_usage_is_tokenized() -> None:
    fake = FakeServer(chat=script((), (" 42",), None))
    got = streamed(fake, 0)
    assert [p.kind for p in got] == ["answer", "done"]
    generation = done(got)
    assert (generation.thinking_tokens, generation.answer_tokens) == (0, 3)  # " ", "4", "2"
    texts = [c.body.get("prompt") for c in fake.calls if c.path == "/tokenize"]
    assert " 42" in texts
    assert set(texts) <= {" 42", "", None}  # no thinking was tokenized


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "usage",
    [
        {"completion_tokens": 70, "completion_tokens_details": {"reasoning_tokens": 65}},
        None,  # counted: 65 characters
    ],
)
def test_over_the_cap_raises_after_the_pieces(usage: Body | None) -> None:
    fake = FakeServer(chat=script(("x" * 40, "x" * 25), (" 42",), usage))
    got: list[Piece] = []
    with pytest.raises(ForcingError, match="over a cap of 64") as info:
        run(fake, lambda capper: collect(capper, 64, got))
    assert "thought for 65 tokens" in str(info.value)
    assert "'thinking_token_budget'" in str(info.value)
    assert [p.kind for p in got] == ["thinking", "thinking", "answer"]  # no done


def test_at_the_cap_is_fine() -> None:
    fake = FakeServer(chat=script(("x" * 64,), (" 42",), None))
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
        return script()({**body, "stream": False})

    with pytest.raises(ServerError, match="stream of /chat/completions has no choices"):
        streamed(FakeServer(chat=chat))


def test_a_negative_budget_is_refused_before_any_request() -> None:
    fake = FakeServer(chat=script())
    with pytest.raises(ValueError, match="budget"):
        streamed(fake, -1)
    assert fake.calls == []


# ---------------------------------------------------------------- max_tokens and stop


def test_the_answer_stops_at_max_tokens_and_the_stream_is_closed() -> None:
    fake = FakeServer(answer=("The", " answer", " is", " 42", "."))
    got = run(fake, lambda capper: collect(capper, 3, cue=Cue("", 2, ())))
    assert [(p.kind, p.text) for p in got[:-1]] == [
        ("thinking", " w0"), ("thinking", " w1"), ("thinking", " w2"),
        ("answer", "The"), ("answer", " answer"),
    ]  # fmt: skip
    generation = done(got)
    assert (generation.answer, generation.answer_tokens) == ("The answer", 2)
    assert generation.thinking_tokens == 3  # its events: the stream closed before usage
    (body,) = fake.bodies("/v1/chat/completions")
    assert body["max_tokens"] == 3 + 2


@pytest.mark.parametrize(
    ("stop", "answer"),
    [
        (("\n",), "The answer"),  # a stop string inside one token
        ((" is 4",), "The answer"),  # a stop string over two tokens
        ((".", " answer"), "The"),  # the first stop string in the text wins
        (("is 5",), "The answer is 42."),  # held back, then given back at the end
    ],
)
def test_the_answer_stops_before_its_first_stop_string(stop: tuple[str, ...], answer: str) -> None:
    fake = FakeServer(answer=("The", " answer\n", " is", " 42", "."))
    if "\n" not in stop:
        fake.answer = ("The", " answer", " is", " 42", ".")
    got = run(fake, lambda capper: collect(capper, 2, cue=Cue("", 16, stop)))
    generation = done(got)
    assert generation.answer == answer
    assert "".join(p.text for p in got if p.kind == "answer") == answer
    assert generation.thinking == " w0 w1"
    assert "stop" not in fake.bodies("/v1/chat/completions")[0]


def test_generate_and_stream_agree_on_cut_answers() -> None:
    fake = FakeServer(answer=("The", " answer", " is", " 42", "."), usage=False)
    cue = Cue("", 3, ("42",))

    async def both(capper: Capper) -> tuple[Generation, Generation]:
        whole = await capper.generate(QUESTION, 2, cue=cue)
        return whole, done(await collect(capper, 2, cue=cue))

    whole, stream = run(fake, both)
    assert whole.answer == stream.answer == "The answer is"
    assert whole.answer_tokens == stream.answer_tokens == 3


# ---------------------------------------------------------------- the gateway's stream


def gateway_pieces(fake: FakeServer, *, close_after: int | None = None) -> Any:
    """The pieces of one streamed chat request through a cap-mode gateway over ``fake``,
    and the gateway (closed after ``close_after`` pieces, if given)."""

    async def never() -> None:
        await asyncio.Event().wait()

    async def main() -> tuple[list[Piece], Gateway, Any]:
        gateway = Gateway(profile(), Server(BASE_URL, MODEL, transport=fake.transport()),
                          mode="cap", resolve_every=0.0)  # fmt: skip
        async with gateway:
            inner: list[Any] = []
            stream = gateway.capper.stream

            def recorded(*args: Any, **kwargs: Any) -> Any:
                inner.append(stream(*args, **kwargs))
                return inner[-1]

            gateway.capper.stream = recorded  # type: ignore[method-assign]
            job = gateway.admit(
                0, kind="chat", messages=QUESTION, text="", cue=CUE, sampling=Sampling(), seed=5
            )
            source = gateway.stream(job, never)
            got = []
            async for piece in source:
                got.append(piece)
                if close_after is not None and len(got) == close_after:
                    await source.aclose()
                    break
            return got, gateway, inner[0]

    return asyncio.run(main())


def test_gateway_streams_cap_mode_piece_by_piece() -> None:
    fake = FakeServer(chat=script())
    got, gateway, _ = gateway_pieces(fake)
    assert [p.text for p in got[:-1]] == [*THINKING, *ANSWER]  # not one piece per kind
    assert done(got).thinking_tokens == 20
    (body,) = fake.bodies("/v1/chat/completions")
    assert body["stream"] is True
    assert body["thinking_token_budget"] == gateway.controller.plan.budgets[0]
    assert (gateway.queue.acquired, gateway.queue.released, gateway.queue.busy) == (1, 1, 0)


def test_closing_the_gateways_stream_early_closes_the_upstream_stream() -> None:
    got, gateway, inner = gateway_pieces(FakeServer(chat=script()), close_after=1)
    assert [(p.kind, p.text) for p in got] == [("thinking", "Six")]
    assert inner.ag_frame is None  # closed at once, not left to the event loop's shutdown
    assert (gateway.queue.acquired, gateway.queue.released, gateway.queue.busy) == (1, 1, 0)
    assert [r.outcome for r in gateway.records] == ["disconnected"]
