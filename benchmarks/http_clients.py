"""CPU per request of the Python HTTP clients a gateway could use for its upstream hop.

One request at a time to the stub upstream of ``serve_overhead.py``, on asyncio and
on uvloop: httpx (httpcore on anyio, its default), httpx over aiohttp's pool
(``httpx-aiohttp``, what ``thinkq serve`` uses), aiohttp itself, and a raw
HTTP/1.1 exchange on one asyncio stream as the floor (no pool, no parser library:
a reference, not a client). Prints the latency and the client's CPU time per
request, and each client's CPU relative to httpx on the same loop.
Run: ``python benchmarks/http_clients.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import numpy as np
import uvloop
from httpx_aiohttp import AiohttpTransport

from serve_overhead import free_port, wait_up  # this directory is on the path

BODY = {"model": "stub", "max_tokens": 1, "prompt": "Say hello."}
Send = Callable[[], Awaitable[object]]
Close = Callable[[], Awaitable[object]]


async def with_httpx(url: str) -> tuple[Send, Close]:
    client = httpx.AsyncClient()

    async def send() -> object:
        return (await client.post(url, json=BODY)).json()

    return send, client.aclose


async def with_httpx_aiohttp(url: str) -> tuple[Send, Close]:
    client = httpx.AsyncClient(transport=AiohttpTransport())

    async def send() -> object:
        return (await client.post(url, json=BODY)).json()

    return send, client.aclose


async def with_aiohttp(url: str) -> tuple[Send, Close]:
    session = aiohttp.ClientSession()

    async def send() -> object:
        async with session.post(url, json=BODY) as reply:
            return await reply.json()

    return send, session.close


async def with_raw(url: str) -> tuple[Send, Close]:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = json.dumps(BODY).encode()
    head = (
        "POST /v1/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
    )
    request = head.encode() + data

    async def send() -> object:
        writer.write(request)
        lines = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        length = next(
            int(x.split(b":")[1]) for x in lines if x.lower().startswith(b"content-length")
        )
        return json.loads(await reader.readexactly(length))

    async def close() -> None:
        writer.close()
        await writer.wait_closed()

    return send, close


CLIENTS = {
    "httpx": with_httpx,
    "httpx + aiohttp": with_httpx_aiohttp,
    "aiohttp": with_aiohttp,
    "raw stream": with_raw,
}


async def measure(
    make: Callable[[str], Awaitable[tuple[Send, Close]]], url: str, n: int
) -> tuple[float, float, float]:
    """p50 and p99 latency (ms) and CPU per request (ms) of ``n`` sequential requests."""
    send, close = await make(url)
    for _ in range(100):
        await send()
    latencies = np.empty(n)
    cpu = time.process_time()
    for k in range(n):
        sent = time.perf_counter()
        await send()
        latencies[k] = time.perf_counter() - sent
    cpu = (time.process_time() - cpu) / n
    await close()
    p50, p99 = np.percentile(latencies, [50, 99]) * 1e3
    return float(p50), float(p99), cpu * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="Requests per client and loop.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args()
    port = free_port()
    stub = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "serve_overhead.py"), "--stub", str(port)]
    )
    url = f"http://127.0.0.1:{port}/v1/completions"
    rows = []
    try:
        wait_up(f"http://127.0.0.1:{port}/v1/models", stub)
        for loop, run in (("asyncio", asyncio.run), ("uvloop", uvloop.run)):
            for name, make in CLIENTS.items():
                p50, p99, cpu = run(measure(make, url, args.requests))
                rows.append(
                    {"loop": loop, "client": name, "p50_ms": p50, "p99_ms": p99, "cpu_ms": cpu}
                )
    finally:
        stub.terminate()
        stub.wait(timeout=30)
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{'loop':8} {'client':16} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms':>7} {'CPU / httpx':>11}")
    for row in rows:
        base = next(
            r["cpu_ms"] for r in rows if r["loop"] == row["loop"] and r["client"] == "httpx"
        )
        print(f"{row['loop']:8} {row['client']:16} {row['p50_ms']:7.3f} {row['p99_ms']:7.3f} "
              f"{row['cpu_ms']:7.3f} {row['cpu_ms'] / base:11.2f}")  # fmt: skip
    if not _has_sniffio():
        print("sniffio is missing: httpx pays a failed import per request")


def _has_sniffio() -> bool:
    try:
        import sniffio  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
