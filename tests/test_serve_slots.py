"""A gateway request that fails gives its slot back exactly once, wherever it fails.

Each test sends one request (plain or streamed) that fails at one point: refused by a
full queue, its client gone while it waits, no connection upstream, an upstream 5xx,
the upstream connection cut in the middle of the reply, its client gone while it is
served. The queue counts every slot taken and given back
(:attr:`~thinkq.serve.Queue.acquired`, :attr:`~thinkq.serve.Queue.released`); a
slot given back twice, or never, shows in those counts and in ``busy``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from starlette.types import ASGIApp

from fakes import FakeServer, profile
from test_serve_app import metric
from thinkq.measure.templates import TEMPLATES
from thinkq.serve import Gateway, create_app

TIMEOUT = 60.0
BODY = {
    "messages": [{"role": "user", "content": "What is 2 + 3?"}],
    "max_tokens": 8,
    "metadata": {"task": "math"},  # a budget above zero: a thinking phase to cut
}
SCOPE = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
    "method": "POST", "path": "/v1/chat/completions", "raw_path": b"",
    "query_string": b"", "headers": [(b"content-type", b"application/json")],
    "scheme": "http", "server": ("gateway.test", 80), "client": ("127.0.0.1", 1),
}  # fmt: skip


class Client:
    """One request sent straight to the ASGI app; :attr:`gone` makes its client leave."""

    def __init__(self, app: ASGIApp, *, stream: bool, leave_after_first_chunk: bool = False):
        self.app = app
        self.body = json.dumps(BODY | {"stream": stream}).encode()
        self.gone = asyncio.Event()
        self.leave_after_first_chunk = leave_after_first_chunk
        self.status: int | None = None
        self.chunks: list[bytes] = []

    async def receive(self) -> dict[str, Any]:
        if self.body:
            body, self.body = self.body, b""
            return {"type": "http.request", "body": body, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))
            if self.leave_after_first_chunk:
                self.gone.set()
                await asyncio.sleep(0.05)

    async def __call__(self) -> Client:
        await self.app(SCOPE, self.receive, self.send)
        return self

    def text(self) -> str:
        return b"".join(self.chunks).decode()


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.001)


Point = Callable[[ASGIApp, Gateway, FakeServer, bool], Awaitable[Client]]


async def queue_full(app: ASGIApp, gateway: Gateway, fake: FakeServer, stream: bool) -> Client:
    blocker = asyncio.create_task(Client(app, stream=False)())
    await until(lambda: gateway.queue.busy == 1)
    refused = await Client(app, stream=stream)()
    assert refused.status == 503
    assert (await blocker).status == 200
    return refused


async def left_queue(app: ASGIApp, gateway: Gateway, fake: FakeServer, stream: bool) -> Client:
    blocker = asyncio.create_task(Client(app, stream=False)())
    await until(lambda: gateway.queue.busy == 1)
    leaving = Client(app, stream=stream)
    waiting = asyncio.create_task(leaving())
    await until(lambda: gateway.queue.waiting == 1)
    leaving.gone.set()
    await waiting
    assert gateway.queue.waiting == 0
    assert (await blocker).status == 200
    return leaving


async def connect(app: ASGIApp, gateway: Gateway, fake: FakeServer, stream: bool) -> Client:
    fake.down = True
    client = await Client(app, stream=stream)()
    assert client.status == 502
    assert "cannot connect" in client.text()
    return client


async def upstream_5xx(app: ASGIApp, gateway: Gateway, fake: FakeServer, stream: bool) -> Client:
    fake.fail_on(1, 500)
    client = await Client(app, stream=stream)()
    assert client.status == 502
    assert "HTTP 500" in client.text()
    return client


async def stream_cut(app: ASGIApp, gateway: Gateway, fake: FakeServer, stream: bool) -> Client:
    fake.cut_after = 2  # two thinking tokens, then the connection is lost
    client = await Client(app, stream=stream)()
    if stream:  # the stream had begun: an error event ends it
        assert client.status == 200
        assert '"upstream_error"' in client.text()
        assert client.text().endswith("data: [DONE]\n\n")
    else:
        assert client.status == 502
    assert "connection reset by peer" in client.text()
    return client


async def client_left(app: ASGIApp, gateway: Gateway, fake: FakeServer, stream: bool) -> Client:
    fake.delay = 0.5
    client = Client(app, stream=stream, leave_after_first_chunk=stream)
    served = asyncio.create_task(client())
    if not stream:  # it leaves while the upstream is thinking
        await until(lambda: len(fake.generated()) == 1)
        client.gone.set()
    # sooner than the upstream's reply (plain) or its second phase (streamed): cancelled
    await asyncio.wait_for(served, 0.9 if stream else 0.4)
    return client


#: Each failure point: its scenario and the outcome it is counted as. Each takes one
#: slot: the failing request's, or (at the queue) the one of the request ahead of it.
POINTS: dict[str, tuple[Point, str]] = {
    "queue full": (queue_full, "rejected"),
    "left the queue": (left_queue, "disconnected"),
    "upstream connect": (connect, "upstream_error"),
    "upstream 5xx": (upstream_5xx, "upstream_error"),
    "stream cut": (stream_cut, "upstream_error"),
    "client left": (client_left, "disconnected"),
}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("point", list(POINTS))
def test_a_failed_request_gives_its_slot_back_exactly_once(point: str, stream: bool) -> None:
    scenario, outcome = POINTS[point]
    fake = FakeServer(delay=0.05)

    async def main() -> None:
        gateway = Gateway(
            profile(), fake.server(), template=TEMPLATES["chatml"], resolve_every=0.0,
            concurrency=1, max_queue=0 if point == "queue full" else 1,
        )  # fmt: skip
        async with gateway:
            app = create_app(gateway)
            await asyncio.wait_for(scenario(app, gateway, fake, stream), TIMEOUT)
            queue = gateway.queue
            assert (queue.acquired, queue.released, queue.busy) == (1, 1, 0)
            text = gateway.metrics.exposition().decode()
            assert metric(text, "thinkq_requests_total", task="math", outcome=outcome) == 1
            assert len(gateway.records) == 1 + (point == "left the queue")
            fake.down, fake.cut_after, fake.delay, fake.failures = False, None, 0.0, {}
            after = await Client(app, stream=stream)()  # the queue did not stall
            assert after.status == 200
            assert (queue.acquired, queue.released, queue.busy) == (2, 2, 0)

    asyncio.run(main())
