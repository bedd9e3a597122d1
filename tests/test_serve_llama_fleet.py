"""Two real llama.cpp replicas behind the gateway: one killed under load, then restarted.

Both replicas are llama-cpp-python servers (one slot each) started for this test on
free loopback ports, behind the gateway with the upstream connections of ``thinkq
serve``. One is killed (SIGKILL) while it serves a request: that request and every
later one are served by the other, and no client request fails; restarted on its
port, it is probed and taken back into rotation. The requests under the kill are
plain ones: a stream whose first pieces have reached its client cannot be served
again elsewhere (``docs/fleet.md``), so streams join after the restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

import llama_server as llama
from llama_server import LlamaServer
from test_serve_llama import _profile
from thinkq.measure.server import Server
from thinkq.measure.templates import TEMPLATES
from thinkq.serve import Gateway, create_app, upstream_transport

TIMEOUT = 300.0  # generous: only to turn a hang into a failure


@pytest.fixture
def replicas() -> Iterator[list[LlamaServer]]:
    started = [llama.start(), llama.start()]
    try:
        yield started
    finally:
        for server in started:
            llama.stop(server)


def _ok(reply: httpx.Response) -> bool:
    if reply.status_code != 200:
        return False
    if not reply.text.startswith("data: "):
        return bool(reply.json()["choices"][0]["message"]["content"] is not None)
    events = [line[6:] for line in reply.text.splitlines() if line.startswith("data: ")]
    return events[-1] == "[DONE]" and not any("error" in json.loads(e) for e in events[:-1])


def _why(reply: httpx.Response) -> str:
    """What went wrong with a reply: its error message, or its text."""
    for line in reply.text.splitlines():
        if line.startswith("data: {") and '"error"' in line:
            return str(json.loads(line[6:])["error"]["message"])
    return reply.text


async def _load(
    client: httpx.AsyncClient, count: int, gap: float, *, streams: bool
) -> list[asyncio.Task[Any]]:
    tasks = []
    for k in range(count):
        body = {
            "messages": [{"role": "user", "content": f"What is {k} + 3?"}],
            "max_tokens": 8, "stream": streams and k % 2 == 1,
        }  # fmt: skip
        tasks.append(asyncio.create_task(client.post("/v1/chat/completions", json=body)))
        await asyncio.sleep(gap)
    return tasks


def test_a_killed_replica_loses_no_request_and_comes_back(replicas: list[LlamaServer]) -> None:
    first, second = replicas
    urls = [first.base_url, second.base_url]

    async def main() -> None:
        servers = [
            Server(url, llama.MODEL, timeout=TIMEOUT, transport=upstream_transport())
            for url in urls
        ]
        gateway = Gateway(
            _profile(), servers, template=TEMPLATES["chatml"], resolve_every=0,
            max_queue=100, probe_every=0.5,
        )  # fmt: skip
        async with gateway:
            transport = httpx.ASGITransport(app=create_app(gateway))
            async with httpx.AsyncClient(
                transport=transport, base_url="http://gateway.test", timeout=TIMEOUT
            ) as client:
                await scenario(client, gateway)

    def rows(gateway: Gateway) -> dict[str, dict[str, Any]]:
        return {row["url"]: row for row in gateway.state()["replicas"]}

    async def until(condition: Any) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not condition():
                await asyncio.sleep(0.01)

    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        before = asyncio.create_task(_load(client, 12, 0.1, streams=False))
        await until(lambda: rows(gateway)[urls[0]]["in_flight"] >= 1)
        os.kill(first.process.pid, signal.SIGKILL)  # in the middle of a request
        first.process.wait()
        replies = await asyncio.gather(*await before)
        assert [r.status_code for r in replies] == [200] * 12
        assert [_why(r) for r in replies if not _ok(r)] == []
        state = rows(gateway)
        assert not state[urls[0]]["up"]
        assert state[urls[0]]["failed"] >= 1  # the request it was serving, served again
        assert state[urls[0]]["served"] + state[urls[1]]["served"] == 12
        assert gateway.controller.plan.server is None  # one replica left: M/G/1
        assert gateway.queue.concurrency == 1
        port = urlsplit(urls[0]).port
        assert port is not None
        replicas[0] = await asyncio.to_thread(llama.start, port=port)  # restarted
        await until(lambda: rows(gateway)[urls[0]]["up"])  # probed and taken back
        assert gateway.queue.concurrency == 2
        assert gateway.controller.plan.server is not None
        assert gateway.controller.plan.server.slots == 2
        served = rows(gateway)[urls[0]]["served"]
        replies = await asyncio.gather(*await _load(client, 4, 0.0, streams=True))
        assert [_why(r) for r in replies if not _ok(r)] == []
        assert rows(gateway)[urls[0]]["served"] > served

    asyncio.run(main())
