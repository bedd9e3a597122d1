"""Slow and oversized clients against the real HTTP server (uvicorn on a loopback port).

The gateway runs as ``thinkq serve`` runs it (:func:`~thinkq.serve.connections.server_config`:
httptools, the head size limit, the read timeout, keep-alive) in front of the fake
upstream, so only the client side touches the network, and only the loopback.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import httpx
import pytest
import uvicorn

from fakes import FakeServer, profile
from llama_server import free_port
from test_serve_app import metric
from thinkq.measure.templates import TEMPLATES
from thinkq.serve import Gateway, create_app
from thinkq.serve.connections import guarded_protocol, server_config

READ_TIMEOUT = 2.0
KEEP_ALIVE = 1
MAX_HEADER = 8 * 1024
HALF_OPEN = 200
BOUND = 30.0  # seconds: only to turn a hang into a failure
CHAT = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"


@asynccontextmanager
async def gateway_server() -> AsyncIterator[tuple[int, Gateway]]:
    """The gateway on uvicorn at a free loopback port; stopped on the way out."""
    gateway = Gateway(profile(), FakeServer().server(), template=TEMPLATES["chatml"])
    async with gateway:
        port = free_port()
        config = server_config(
            create_app(gateway), host="127.0.0.1", port=port, max_header=MAX_HEADER,
            read_timeout=READ_TIMEOUT, keep_alive=KEEP_ALIVE, log_level="warning",
        )  # fmt: skip
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        try:
            async with asyncio.timeout(BOUND):
                while not server.started:
                    assert not serving.done(), serving.exception()
                    await asyncio.sleep(0.01)
            yield port, gateway
        finally:
            server.should_exit = True
            await asyncio.wait_for(serving, BOUND)


def request(body: bytes, *headers: bytes) -> bytes:
    extra = b"".join(h + b"\r\n" for h in headers)
    length = b"Content-Length: %d\r\n" % len(body)
    return HEAD + b"Content-Type: application/json\r\n" + length + extra + b"\r\n" + body


async def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` on a new connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        with suppress(ConnectionError):
            await writer.drain()
        try:
            return await asyncio.wait_for(reader.read(), BOUND)
        except ConnectionResetError:
            return b""
    finally:
        writer.close()


def test_half_open_connections_are_closed_after_the_read_timeout_and_block_no_one() -> None:
    """200 connections that send half a request: half stop in the head, half in the body."""

    async def main() -> None:
        async with gateway_server() as (port, gateway):
            body = json.dumps(CHAT).encode()
            connections = []
            for k in range(HALF_OPEN):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                half = HEAD if k % 2 == 0 else request(body)[: -len(body) // 2]
                writer.write(half)
                connections.append((reader, writer))
            opened = time.monotonic()
            closing = [asyncio.ensure_future(r.read()) for r, _ in connections]

            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                start = time.monotonic()
                reply = await client.post("/v1/chat/completions", json=CHAT, timeout=BOUND)
                served_in = time.monotonic() - start
            assert reply.status_code == 200, reply.text
            assert not any(c.done() for c in closing)  # all still open meanwhile

            replies = await asyncio.wait_for(asyncio.gather(*closing), BOUND)
            closed_after = time.monotonic() - opened
            for writer in (w for _, w in connections):
                writer.close()
            assert all(r.startswith(b"HTTP/1.1 408 ") for r in replies), replies[0]
            text = gateway.metrics.exposition().decode()
            assert metric(text, "thinkq_requests_total", task="", outcome="disconnected") == 100
            assert metric(text, "thinkq_requests_total", outcome="ok") == 1
            assert metric(text, "thinkq_requests_total") == 101
            print(f"served in {served_in:.3f} s; half-open closed after {closed_after:.2f} s")

    asyncio.run(main())


@pytest.mark.parametrize("size", [MAX_HEADER + 1, 1 << 20, 16 << 20])
def test_a_head_over_the_limit_gets_431_and_is_closed(size: int) -> None:
    async def main() -> None:
        async with gateway_server() as (port, gateway):
            big = b"X-Big: " + b"a" * size
            answer = await exchange(port, request(json.dumps(CHAT).encode(), big))
            # 431, or a reset where the server closed with the client's bytes unread
            assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:80]
            text = gateway.metrics.exposition().decode()
            assert metric(text, "thinkq_requests_total") == 0  # never reached the app

    asyncio.run(main())


def test_requests_within_the_limits_are_served_and_idle_connections_closed() -> None:
    """A head just under the limit, a body of most of a megabyte in one write, then
    the kept-alive connection is closed after ``--keep-alive`` seconds idle."""

    async def main() -> None:
        async with gateway_server() as (port, gateway):
            head = b"X-Fill: " + b"a" * (MAX_HEADER - 400)
            big = json.dumps(CHAT | {"user": "u" * 900_000}).encode()
            for body, headers in ((json.dumps(CHAT).encode(), (head,)), (big, ())):
                data = request(body, *headers, b"Connection: close")
                answer = await exchange(port, data)
                assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request(json.dumps(CHAT).encode()))
            answer = await asyncio.wait_for(reader.read(), BOUND)  # kept alive, then closed
            writer.close()
            assert answer.startswith(b"HTTP/1.1 200 ")
            text = gateway.metrics.exposition().decode()
            assert metric(text, "thinkq_requests_total", outcome="ok") == 3

    asyncio.run(main())


def test_the_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_header"):
        guarded_protocol(max_header=0, read_timeout=1.0)
    with pytest.raises(ValueError, match="read_timeout"):
        guarded_protocol(max_header=1, read_timeout=0.0)


_BODY = json.dumps(CHAT).encode()
_TYPED = b"Content-Type: application/json\r\n"
#: Raw requests that only an HTTP parser sees whole: each gets a 2xx or 4xx, never 5xx.
RAW = {
    "garbage": b"\x00\x01\x02 garbage\r\n\r\n",
    "no version": b"POST /v1/chat/completions\r\n\r\n",
    "a header without a colon": HEAD + b"NoColon\r\n\r\n",
    "a NUL in a header": HEAD + b"X-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
    "a non-ASCII header name": HEAD + b"X-\xe9: a\r\nContent-Length: 0\r\n\r\n",
    "a negative Content-Length": HEAD + b"Content-Length: -1\r\n\r\n",
    "two Content-Lengths": HEAD + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "chunked and Content-Length": HEAD
    + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "a bad chunk size": HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
    "a chunked body": HEAD
    + _TYPED
    + b"Transfer-Encoding: chunked\r\n\r\n"
    + b"%x\r\n%s\r\n0\r\n\r\n" % (len(_BODY), _BODY),
    "HTTP/1.0": HEAD.replace(b"1.1", b"1.0")
    + _TYPED
    + b"Content-Length: %d\r\n\r\n%s" % (len(_BODY), _BODY),
    "a NUL in the path": b"POST /v1/chat%00completions HTTP/1.1\r\nHost: g\r\n\r\n",
    "a URL of 40 KB": b"POST /" + b"a" * 40_000 + b" HTTP/1.1\r\nHost: g\r\n\r\n",
    "a method of its own": b"BREW /v1/chat/completions HTTP/1.1\r\nHost: g\r\n\r\n",
    "a body shorter than said": HEAD + b"Content-Length: 100\r\n\r\n{}",
}


def test_raw_requests_get_a_deliberate_status_and_at_most_one_count() -> None:
    async def main() -> None:
        async with gateway_server() as (port, gateway):
            for name, data in RAW.items():
                text = gateway.metrics.exposition().decode()
                before = metric(text, "thinkq_requests_total")
                answer = await exchange(port, data)
                status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None
                text = gateway.metrics.exposition().decode()
                counted = metric(text, "thinkq_requests_total") - before
                assert status is not None, (name, answer[:120])
                assert status < 500, (name, answer[:120])
                assert counted in (0, 1), name
                assert counted == 0 or "/v1/chat/completions" in data.decode("latin-1"), name

    asyncio.run(main())
