"""A client that goes away mid-service cancels the upstream request, plain or streamed.

The upstream's reply is slow on purpose (a token every 50 ms: the math budget of
about 80 tokens takes seconds) and records how it ended: read to its end, or closed
early because the gateway stopped reading it (httpx closes a reply it stops reading,
streamed or not, which on a real connection ends the generation). A client that
leaves during the thinking phase must close it early, be counted ``disconnected``
once, and give its slot back, so the next request is served at once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from fakes import FakeServer, profile
from test_serve_app import metric
from test_serve_slots import Client, until
from thinkq.measure.templates import TEMPLATES
from thinkq.serve import Gateway, create_app

TOKENS = 500  # the profile's l_max
PAUSE = 0.05  # seconds between tokens
BOUND = 60.0  # seconds: only to turn a hang into a failure


class SlowReplies:
    """``/v1/completions`` replies that come a token at a time, and how each ended."""

    def __init__(self) -> None:
        self.started = 0
        self.finished = 0
        self.closed_early = 0
        self.slow = True

    def __call__(self, body: dict[str, Any]) -> httpx.Response:
        self.started += 1
        stream = bool(body.get("stream"))
        kind = "text/event-stream" if stream else "application/json"
        reply = _Reply(self, body["max_tokens"], stream=stream)
        return httpx.Response(200, headers={"content-type": kind}, stream=reply)


class _Reply(httpx.AsyncByteStream):
    """One slow reply; closed before its end (the gateway stopped reading), it says so."""

    def __init__(self, replies: SlowReplies, tokens: int, *, stream: bool) -> None:
        self.replies = replies
        self.tokens = tokens
        self.stream = stream
        self.done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        text = ""
        for i in range(self.tokens):
            if self.replies.slow:
                await asyncio.sleep(PAUSE)
            text += f" w{i}"
            if self.stream:
                choice = {"index": 0, "text": f" w{i}", "finish_reason": None}
                yield f"data: {json.dumps({'choices': [choice]})}\n\n".encode()
        last = {"index": 0, "text": "" if self.stream else text, "finish_reason": "length"}
        if self.stream:
            yield f"data: {json.dumps({'choices': [last]})}\n\ndata: [DONE]\n\n".encode()
        else:
            usage = {"prompt_tokens": 1, "completion_tokens": self.tokens}
            yield json.dumps({"choices": [last], "usage": usage}).encode()
        self.done = True
        self.replies.finished += 1

    async def aclose(self) -> None:
        if not self.done:
            self.done = True
            self.replies.closed_early += 1


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_client_that_leaves_cancels_the_upstream_request(stream: bool) -> None:
    replies = SlowReplies()
    fake = FakeServer(complete=replies)

    async def main() -> None:
        gateway = Gateway(
            profile(max_tokens=TOKENS), fake.server(), template=TEMPLATES["chatml"],
            resolve_every=0.0,
        )  # fmt: skip
        async with gateway:
            app = create_app(gateway)
            client = Client(app, stream=stream, leave_after_first_chunk=stream)
            served = asyncio.create_task(client())
            if not stream:  # it leaves while the upstream is thinking
                await asyncio.wait_for(until(lambda: replies.started == 1), BOUND)
                await asyncio.sleep(5 * PAUSE)
                client.gone.set()
            await asyncio.wait_for(served, BOUND)
            await asyncio.wait_for(until(lambda: gateway.queue.released == 1), BOUND)
            assert (replies.started, replies.closed_early, replies.finished) == (1, 1, 0)
            text = gateway.metrics.exposition().decode()
            assert metric(text, "thinkq_requests_total", task="math", outcome="disconnected") == 1
            assert metric(text, "thinkq_requests_total") == 1
            assert (gateway.queue.busy, gateway.queue.acquired) == (0, 1)
            replies.slow = False  # the slot is free: the next request is served
            after = await asyncio.wait_for(Client(app, stream=stream)(), BOUND)
            assert after.status == 200, after.text()

    asyncio.run(main())
