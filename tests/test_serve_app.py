"""The gateway's HTTP app against the fake upstream (``fakes.FakeServer``, no network)."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import numpy as np
from starlette.responses import JSONResponse

import thinkq
from fakes import ANSWER, ANSWER_TOKENS, Clock, FakeServer, profile, thinking_words
from thinkq.measure.server import Server
from thinkq.measure.templates import TEMPLATES
from thinkq.serve import Gateway, create_app, upstream_transport

TIMEOUT = 60.0  # generous: only to turn a hang into a failure
CHAT = {"messages": [{"role": "user", "content": "What is 2 + 3?"}], "max_tokens": 8}

Scenario = Callable[[httpx.AsyncClient, Gateway, FakeServer], Awaitable[None]]


@asynccontextmanager
async def gateway_client(
    upstream: FakeServer,
    *,
    api_key: str | None = None,
    body_limit: int = 1 << 20,
    upstream_timeout: float = 30.0,
    **options: Any,
) -> AsyncIterator[tuple[httpx.AsyncClient, Gateway]]:
    options = {"resolve_every": 0.0, "template": TEMPLATES["chatml"]} | options
    server = upstream.server(timeout=upstream_timeout)
    gateway = Gateway(options.pop("profile", profile()), server, **options)
    async with gateway:
        app = create_app(gateway, api_key=api_key, body_limit=body_limit)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway.test", timeout=TIMEOUT
        ) as client:
            yield client, gateway


def run(scenario: Scenario, upstream: FakeServer | None = None, **options: Any) -> None:
    upstream = upstream or FakeServer()

    async def main() -> None:
        async with gateway_client(upstream, **options) as (client, gateway):
            await asyncio.wait_for(scenario(client, gateway, upstream), TIMEOUT)

    asyncio.run(main())


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if not match or match[1] != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', match[2] or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(match[3])
    return total


# ------------------------------------------------------------------ responses


def test_chat_response_carries_thinking_answer_and_reasoning_tokens() -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway, upstream: FakeServer) -> None:
        reply = await client.post(
            "/v1/chat/completions", json=CHAT, headers={"X-Thinkq-Task": "math"}
        )
        assert reply.status_code == 200
        data = reply.json()
        budget = gateway.state()["budgets"]["math"]
        assert budget > 0
        message = data["choices"][0]["message"]
        assert message["reasoning_content"] == "".join(thinking_words(budget))
        assert message["content"] == ANSWER
        assert data["usage"]["completion_tokens_details"]["reasoning_tokens"] == budget
        assert data["usage"]["completion_tokens"] == budget + ANSWER_TOKENS
        assert data["object"] == "chat.completion"
        thinking, answer = upstream.bodies("/v1/completions")
        assert thinking["max_tokens"] == budget
        assert answer["max_tokens"] == 8

    run(scenario)


def test_a_reply_is_written_as_starlettes_json_response_writes_it() -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway, upstream: FakeServer) -> None:
        completion = {"prompt": "What is 2 + 3?", "max_tokens": 8}
        for path, body in (("/v1/chat/completions", CHAT), ("/v1/completions", completion)):
            reply = await client.post(path, json=body, headers={"X-Thinkq-Task": "math"})
            assert reply.status_code == 200
            assert reply.headers["content-type"] == "application/json"
            assert reply.content == JSONResponse(reply.json()).body  # UTF-8, no spaces
            assert "é 😀".encode() in reply.content  # not escaped

    run(scenario, FakeServer(answer=(" é", " 😀")))


def test_streamed_completion_sends_reasoning_then_content_then_usage() -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway, upstream: FakeServer) -> None:
        body = {"prompt": "2 + 3 =", "stream": True, "stream_options": {"include_usage": True}}
        reply = await client.post("/v1/completions", json=body | {"metadata": {"task": "math"}})
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in reply.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        thinking = "".join(c["choices"][0].get("reasoning_content", "") for c in chunks[:-1])
        answer = "".join(c["choices"][0].get("text", "") for c in chunks[:-1])
        budget = gateway.state()["budgets"]["math"]
        assert thinking == "".join(thinking_words(budget))
        assert answer == ANSWER
        assert chunks[-1]["usage"]["completion_tokens_details"]["reasoning_tokens"] == budget
        assert upstream.generated()[0]["prompt"] == "2 + 3 ="  # a completion is not templated

    run(scenario)


def test_cap_mode_sends_the_budget_in_the_native_field() -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway, upstream: FakeServer) -> None:
        budget = gateway.state()["budgets"]["math"]
        headers = {"X-Thinkq-Task": "math"}
        reply = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
        assert reply.status_code == 200
        data = reply.json()
        assert data["choices"][0]["message"]["reasoning_content"] == "".join(thinking_words(budget))
        assert data["usage"]["completion_tokens_details"]["reasoning_tokens"] == budget
        (sent,) = upstream.generated()
        assert sent["thinking_token_budget"] == budget
        assert sent["messages"] == CHAT["messages"]
        streamed = await client.post(
            "/v1/chat/completions", json=CHAT | {"stream": True}, headers=headers
        )
        deltas = [
            json.loads(line[6:])["choices"][0]["delta"]
            for line in streamed.text.splitlines()
            if line.startswith("data: {")
        ]
        assert "".join(d.get("reasoning_content", "") for d in deltas) == "".join(
            thinking_words(budget)
        )
        assert "".join(d.get("content", "") for d in deltas) == ANSWER

    run(scenario, mode="cap")


def test_cap_mode_stops_the_answer_at_max_tokens_and_at_stop() -> None:
    answer = ("The", " answer", " is", " 42", ".\n", "Done")
    headers = {"X-Thinkq-Task": "math"}

    def content(reply: httpx.Response) -> str:
        deltas = [
            json.loads(line[6:])["choices"][0]["delta"]
            for line in reply.text.splitlines()
            if line.startswith("data: {") and '"delta"' in line
        ]
        return "".join(d.get("content", "") for d in deltas)

    async def scenario(client: httpx.AsyncClient, gateway: Gateway, upstream: FakeServer) -> None:
        budget = gateway.state()["budgets"]["math"]
        assert budget > 0
        post = CHAT | {"max_tokens": 2}
        short = (await client.post("/v1/chat/completions", json=post, headers=headers)).json()
        assert short["choices"][0]["message"]["content"] == "The answer"
        assert short["choices"][0]["finish_reason"] == "length"
        assert short["usage"]["completion_tokens"] == budget + 2
        assert short["usage"]["completion_tokens_details"]["reasoning_tokens"] == budget
        stopped = CHAT | {"max_tokens": 100, "stop": ["\n", "Done"]}
        reply = await client.post("/v1/chat/completions", json=stopped, headers=headers)
        choice = reply.json()["choices"][0]
        assert (choice["message"]["content"], choice["finish_reason"]) == (
            "The answer is 42.",
            "stop",
        )
        streamed = CHAT | {"max_tokens": 100, "stop": " is", "stream": True}
        reply = await client.post("/v1/chat/completions", json=streamed, headers=headers)
        assert content(reply) == "The answer"
        streamed = CHAT | {"max_tokens": 3, "stream": True}
        reply = await client.post("/v1/chat/completions", json=streamed, headers=headers)
        assert content(reply) == "The answer is"
        sent = upstream.bodies("/v1/chat/completions")
        assert [b["max_tokens"] for b in sent] == [
            budget + 2,
            budget + 100,
            budget + 100,
            budget + 3,
        ]
        assert not any("stop" in b for b in sent)  # it would cut the thinking upstream

    run(scenario, FakeServer(answer=answer), mode="cap")


def test_models_failures_are_translated_like_every_upstream_failure() -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway, upstream: FakeServer) -> None:
        upstream.down = True
        down = await client.get("/v1/models")
        assert down.status_code == 502
        assert down.json()["error"]["type"] == "upstream_error"
        assert down.json()["error"]["message"].startswith("upstream: base_url: cannot connect")
        upstream.down = False
        upstream.broken["/v1/models"] = 503
        refused = await client.get("/v1/models")
        assert refused.status_code == 502
        assert refused.json()["error"]["message"].endswith("HTTP 503 from "
            "http://llm.test:8000/v1/models: loading model")  # fmt: skip

    run(scenario)


def test_models_are_passed_through_and_health_needs_no_key() -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway, upstream: FakeServer) -> None:
        assert (await client.get("/healthz")).status_code == 200
        refused = await client.get("/v1/models")
        assert refused.status_code == 401
        assert "Bearer" in refused.json()["error"]["message"]
        wrong = await client.get("/thinkq/state", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        good = await client.get("/v1/models", headers={"Authorization": "Bearer s3cret"})
        assert [m["id"] for m in good.json()["data"]] == ["fake-model"]

    run(scenario, api_key="s3cret")


def test_unknown_task_bad_body_and_large_body_are_client_errors() -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway, upstream: FakeServer) -> None:
        unknown = await client.post(
            "/v1/chat/completions", json=CHAT, headers={"X-Thinkq-Task": "poetry"}
        )
        assert unknown.status_code == 400
        assert "unknown task 'poetry'" in unknown.json()["error"]["message"]
        by_body = await client.post("/v1/chat/completions", json=CHAT | {"metadata": {"task": 3}})
        assert by_body.status_code == 400
        empty = await client.post("/v1/chat/completions", json={"messages": []})
        assert empty.status_code == 400
        assert empty.json()["error"]["message"].startswith("messages:")
        many = await client.post("/v1/chat/completions", json=CHAT | {"n": 2})
        assert many.status_code == 400
        large = await client.post("/v1/completions", content=b"x" * 2048)
        assert large.status_code == 413
        assert upstream.generated() == []

    run(scenario, body_limit=1024)


def test_routing_rules_and_default_task() -> None:
    routed = profile(match=[[r"\d\s*[+*/-]\s*\d"], []])

    async def scenario(client: httpx.AsyncClient, gateway: Gateway, upstream: FakeServer) -> None:
        budgets = gateway.state()["budgets"]
        for text, task in (("What is 2 + 3?", "math"), ("Hello there", "chat")):
            body = {"messages": [{"role": "user", "content": text}], "max_tokens": 2}
            reply = await client.post("/v1/chat/completions", json=body)
            details = reply.json()["usage"]["completion_tokens_details"]
            assert details["reasoning_tokens"] == budgets[task]

    run(scenario, profile=routed)


# ------------------------------------------------------------------ online control


def test_a_higher_rate_gives_no_larger_budgets_as_the_solver_says() -> None:
    clock = Clock()

    async def arrive(client: httpx.AsyncClient, count: int, at: float) -> None:
        clock.now = at
        for k in range(count):
            task = "math" if k % 2 == 0 else "chat"
            body = CHAT | {"max_tokens": 1, "metadata": {"task": task}}
            assert (await client.post("/v1/chat/completions", json=body)).status_code == 200

    async def scenario(client: httpx.AsyncClient, gateway: Gateway, upstream: FakeServer) -> None:
        states = []
        for count, at in ((2, 100.0), (20, 200.0), (60, 300.0)):  # 0.2, 2 and 6 per second
            await arrive(client, count, at)
            gateway.resolve()
            states.append((await client.get("/thinkq/state")).json())
        rates = [s["rate_estimate"] for s in states]
        np.testing.assert_allclose(rates, [0.2, 2.0, 6.0])
        for state in states:
            shares = [state["shares_estimate"][n] for n in ("math", "chat")]
            point = profile().replace(rate=state["rate_estimate"])
            point = thinkq.Profile.from_arrays(**_arrays(point), share=shares)
            assert list(state["budgets"].values()) == thinkq.solve(point).budgets.tolist()
            assert state["predicted_mean_system_time"] > 0
        for low, high in itertools.pairwise(states):
            assert all(high["budgets"][n] <= low["budgets"][n] for n in ("math", "chat"))
            assert high["budgets"] != low["budgets"]
            assert high["utilization"] > low["utilization"]

    run(scenario, clock=clock, window=10.0)


def _arrays(p: thinkq.Profile) -> dict[str, Any]:
    keys = ("A", "b", "D", "t0", "c", "rate", "alpha", "max_tokens")
    return {"names": p.names} | {k: getattr(p, k) for k in keys}


def test_load_unstable_even_at_zero_budgets_zeroes_the_budgets_and_refuses_a_backlog() -> None:
    clock = Clock()

    async def scenario(client: httpx.AsyncClient, gateway: Gateway, upstream: FakeServer) -> None:
        clock.now = 100.0
        for _ in range(120):  # 12 per second over the 10 s window; E[S(0)] = 0.1 s
            gateway.estimator.arrival(0)
        gateway.resolve()
        state = (await client.get("/thinkq/state")).json()
        assert state["overloaded"] is True
        assert state["predicted_mean_system_time"] is None
        assert set(state["budgets"].values()) == {0}
        reply = await client.post("/v1/chat/completions", json=CHAT)
        assert reply.status_code == 200  # an idle server takes the work, overloaded or not
        assert reply.json()["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0
        for _ in range(3):  # one served, two waiting: more work ahead than the bound, E[S]
            gateway.queue.enter()
        reply = await client.post("/v1/chat/completions", json=CHAT)
        assert reply.status_code == 503
        assert int(reply.headers["Retry-After"]) >= 1
        assert len(upstream.generated()) == 1  # the one request served (no thinking call)

    run(scenario, clock=clock, window=10.0, max_wait=0.0)  # the bound: one E[S]


# ------------------------------------------------------------------ overload and failures


def test_a_burst_at_twice_capacity_gets_answers_or_503_and_metrics_agree() -> None:
    concurrency, max_queue = 2, 6
    burst = 2 * (concurrency + max_queue)

    async def scenario(client: httpx.AsyncClient, gateway: Gateway, upstream: FakeServer) -> None:
        async def one(k: int) -> int:
            task = ("math", "chat")[k % 2]
            reply = await client.post(
                "/v1/chat/completions", json=CHAT, headers={"X-Thinkq-Task": task}
            )
            if reply.status_code == 503:
                assert int(reply.headers["Retry-After"]) >= 1
            return reply.status_code

        codes = await asyncio.gather(*(one(k) for k in range(burst)))
        assert set(codes) <= {200, 503}
        served, refused = codes.count(200), codes.count(503)
        assert served + refused == burst
        assert served >= concurrency + max_queue
        assert refused >= 1
        text = (await client.get("/metrics")).text
        assert metric(text, "thinkq_requests_total", outcome="ok") == served
        assert metric(text, "thinkq_requests_total", outcome="rejected") == refused
        assert metric(text, "thinkq_service_seconds_count") == served
        assert gateway.queue.busy == 0
        assert gateway.queue.waiting == 0

    run(
        scenario, FakeServer(delay=0.05), concurrency=concurrency, max_queue=max_queue,
        max_wait=60.0,  # the full queue, not the bound on the predicted wait, refuses
    )  # fmt: skip


def test_upstream_down_gives_502_and_the_next_request_is_served_once_it_is_back() -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway, upstream: FakeServer) -> None:
        upstream.down = True
        failed = await asyncio.gather(
            *(client.post("/v1/chat/completions", json=CHAT) for _ in range(3))
        )
        for reply in failed:
            assert reply.status_code == 502
            message = reply.json()["error"]["message"]
            assert message.startswith("upstream: ")
            assert "cannot connect" in message
        streamed = await client.post("/v1/chat/completions", json=CHAT | {"stream": True})
        assert streamed.status_code == 502
        upstream.down = False
        reply = await client.post("/v1/chat/completions", json=CHAT)
        assert reply.status_code == 200
        text = (await client.get("/metrics")).text
        assert metric(text, "thinkq_requests_total", outcome="upstream_error") == 4
        assert metric(text, "thinkq_requests_total", outcome="ok") == 1
        assert gateway.queue.busy == 0

    run(scenario)


@asynccontextmanager
async def on_socket(
    port: int, *, timeout: float
) -> AsyncIterator[tuple[httpx.AsyncClient, Gateway]]:
    """A client of the gateway app whose upstream is a real socket at ``port``, reached
    over the upstream transport of ``thinkq serve``."""
    server = Server(
        f"http://127.0.0.1:{port}/v1", "fake-model", timeout=timeout,
        transport=upstream_transport(),
    )  # fmt: skip
    gateway = Gateway(
        profile(), server, template=TEMPLATES["chatml"], resolve_every=0.0, suppress_ids=[1]
    )
    async with gateway:
        transport = httpx.ASGITransport(app=create_app(gateway))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            yield client, gateway


def test_an_upstream_that_does_not_answer_gives_502_after_the_timeout() -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:  # requests arrive; no reply ever leaves, until the client hangs up
            while await reader.read(1 << 16):
                pass
        finally:
            writer.close()
            await writer.wait_closed()

    async def main() -> None:
        listening = await asyncio.start_server(hang, "127.0.0.1", 0)
        port = listening.sockets[0].getsockname()[1]
        async with listening, on_socket(port, timeout=0.2) as (client, gateway):
            replies = await asyncio.wait_for(
                asyncio.gather(*(client.post("/v1/chat/completions", json=CHAT) for _ in range(2))),
                TIMEOUT,
            )
        for reply in replies:  # the second waited for the first: the queue did not stall
            assert reply.status_code == 502
            assert "no reply" in reply.json()["error"]["message"]
        assert gateway.queue.busy == 0

    asyncio.run(main())


def test_a_refused_upstream_connection_gives_502_on_the_gateways_transport() -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def main() -> list[httpx.Response]:
        async with on_socket(port, timeout=5) as (client, _):
            return [
                await client.post("/v1/chat/completions", json=CHAT | {"stream": stream})
                for stream in (False, True)
            ]

    for reply in asyncio.run(asyncio.wait_for(main(), TIMEOUT)):
        assert reply.status_code == 502
        assert "cannot connect" in reply.json()["error"]["message"]


def test_a_client_that_disconnects_while_waiting_leaves_the_queue() -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway, upstream: FakeServer) -> None:
        app = create_app(gateway)
        first = asyncio.create_task(client.post("/v1/chat/completions", json=CHAT))
        while gateway.queue.busy == 0:
            await asyncio.sleep(0.001)
        gone = asyncio.Event()
        body = json.dumps(CHAT).encode()
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            return None

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "path": "/v1/chat/completions", "raw_path": b"",
            "query_string": b"", "headers": [(b"content-type", b"application/json")],
            "scheme": "http", "server": ("gateway.test", 80), "client": ("127.0.0.1", 1),
        }  # fmt: skip
        second = asyncio.create_task(app(scope, receive, send))
        while gateway.queue.waiting == 0:
            await asyncio.sleep(0.001)
        gone.set()
        await second
        assert gateway.queue.waiting == 0
        assert (await first).status_code == 200
        assert len(upstream.generated()) == 2  # the first request's two phases only
        text = (await client.get("/metrics")).text
        assert metric(text, "thinkq_requests_total", outcome="disconnected") == 1

    run(scenario, FakeServer(delay=0.05))


def test_a_client_that_leaves_mid_stream_frees_the_slot() -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway, upstream: FakeServer) -> None:
        app = create_app(gateway)
        gone = asyncio.Event()
        body = json.dumps(CHAT | {"stream": True, "metadata": {"task": "math"}}).encode()
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                gone.set()  # the client leaves after the first chunk
                await asyncio.sleep(0.05)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "path": "/v1/chat/completions", "raw_path": b"",
            "query_string": b"", "headers": [(b"content-type", b"application/json")],
            "scheme": "http", "server": ("gateway.test", 80), "client": ("127.0.0.1", 1),
        }  # fmt: skip
        await app(scope, receive, send)
        assert len(chunks) == 1
        assert gateway.queue.busy == 0
        text = (await client.get("/metrics")).text
        assert metric(text, "thinkq_requests_total", outcome="disconnected") == 1
        assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 200

    run(scenario)


def test_a_streamed_request_is_in_progress_until_its_stream_ends() -> None:
    """The endpoint returns the stream before it is sent: the stream itself counts as a
    request in progress, so the collector's passes and the log wait for its end."""

    async def scenario(client: httpx.AsyncClient, gateway: Gateway, upstream: FakeServer) -> None:
        body = {"prompt": "2 + 3 =", "stream": True, "metadata": {"task": "math"}}
        sent, asked = json.dumps(body).encode(), []
        in_progress: list[int] = []

        async def receive() -> dict[str, Any]:
            if not asked:
                asked.append(True)
                return {"type": "http.request", "body": sent, "more_body": False}
            await asyncio.Event().wait()  # the client stays
            raise AssertionError("unreachable")

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.body":
                in_progress.append(gateway.books.activity.in_progress)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/v1/completions",
            "raw_path": b"/v1/completions", "query_string": b"", "root_path": "",
            "headers": [(b"content-type", b"application/json")],
            "client": ("127.0.0.1", 1), "server": ("gateway.test", 80),
        }  # fmt: skip
        await create_app(gateway)(scope, receive, send)
        assert len(in_progress) > 2  # events, then the end of the body
        assert set(in_progress) == {1}
        assert gateway.books.activity.in_progress == 0

    run(scenario)
