"""Latency the gateway adds: the same request direct to the upstream and through thinkq serve.

The upstream is a stub OpenAI-compatible server (this file, ``--stub PORT``) that
answers ``/v1/completions`` at once with one token, so the difference is the gateway's
own cost (parsing, routing, admission, templating, one upstream hop, the response),
not the model's. The gateway runs as ``thinkq serve`` in force mode with a profile
whose budgets are zero, so that it makes exactly one upstream request, like the
direct path; ``--concurrency`` is high so that no request waits in its queue.

Poisson load at each rate (default 50 and 200 requests/s); prints p50 and p99 of both
paths and the added latency. Run: ``python benchmarks/serve_overhead.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

PROFILE = """\
rate = 1.0
alpha = 0.001
max_tokens = 0
default_task = "chat"

[[tasks]]
name = "chat"
share = 1.0
A = 0.01
b = 0.001
D = 0.5
t0 = 0.001
c = 0.001
"""
PROMPT = "Say hello."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stub(port: int) -> None:
    """Serve the stub upstream on ``port`` (blocks)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "stub"}]})

    async def tokenize(request: Request) -> JSONResponse:
        text = (await request.json())["input"]
        return JSONResponse({"tokens": [1] if text.startswith("<|") else [2] * len(text)})

    async def completions(request: Request) -> JSONResponse:
        body = await request.json()
        choice = {"index": 0, "text": " hi", "finish_reason": "length"}
        usage = {"prompt_tokens": 5, "completion_tokens": int(body.get("max_tokens", 1))}
        return JSONResponse({"choices": [choice], "usage": usage})

    app = Starlette(
        routes=[
            Route("/v1/models", models),
            Route("/extras/tokenize", tokenize, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
        ]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def wait_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


async def latencies(url: str, body: dict[str, object], *, rate: float, n: int) -> np.ndarray:
    """Poisson arrivals at ``rate``; each request's latency from its send (seconds)."""
    rng = np.random.default_rng(0)
    times = np.cumsum(rng.exponential(1 / rate, n))
    out = np.zeros(n)
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=None)) as client:
        for _ in range(20):  # warm the connection pool
            await client.post(url, json=body)
        start = time.perf_counter()

        async def one(k: int) -> None:
            await asyncio.sleep(max(0.0, start + times[k] - time.perf_counter()))
            sent = time.perf_counter()
            reply = await client.post(url, json=body)
            reply.raise_for_status()
            out[k] = time.perf_counter() - sent

        await asyncio.gather(*(one(k) for k in range(n)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stub", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rates", default="50,200", help="Requests per second.")
    parser.add_argument("--queries", type=int, default=2000, help="Requests per rate and path.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args()
    if args.stub is not None:
        stub(args.stub)
        return
    stub_port, gateway_port = free_port(), free_port()
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        profile = Path(tmp) / "zero.toml"
        profile.write_text(PROFILE)
        try:
            upstream = subprocess.Popen([sys.executable, __file__, "--stub", str(stub_port)])
            processes.append(upstream)
            wait_up(f"http://127.0.0.1:{stub_port}/v1/models", upstream)
            gateway = subprocess.Popen(
                [
                    sys.executable, "-m", "thinkq", "serve",
                    "--upstream", f"http://127.0.0.1:{stub_port}/v1", "--profile", str(profile),
                    "--template", "chatml", "--port", str(gateway_port),
                    "--concurrency", "8", "--max-queue", "10000",
                ],
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            processes.append(gateway)
            wait_up(f"http://127.0.0.1:{gateway_port}/healthz", gateway)
            rows = []
            for rate in (float(r) for r in args.rates.split(",")):
                direct_body = {"model": "stub", "max_tokens": 1,
                               "prompt": f"<|im_start|>user\n{PROMPT}<|im_end|>\n"
                                         "<|im_start|>assistant\n\n\n"}  # fmt: skip
                chat_body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 1}
                direct = asyncio.run(
                    latencies(f"http://127.0.0.1:{stub_port}/v1/completions", direct_body,
                              rate=rate, n=args.queries)
                )  # fmt: skip
                through = asyncio.run(
                    latencies(f"http://127.0.0.1:{gateway_port}/v1/chat/completions", chat_body,
                              rate=rate, n=args.queries)
                )  # fmt: skip
                row = {"rate": rate, "queries": args.queries}
                for q in (50, 99):
                    d, g = np.percentile(direct, q) * 1e3, np.percentile(through, q) * 1e3
                    row |= {f"direct_p{q}_ms": d, f"gateway_p{q}_ms": g, f"added_p{q}_ms": g - d}
                rows.append(row)
        finally:
            for process in reversed(processes):
                os.kill(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{'rate/s':>7} {'direct p50':>11} {'gateway p50':>12} {'added p50':>10} "
          f"{'direct p99':>11} {'gateway p99':>12} {'added p99':>10}   (ms)")  # fmt: skip
    for r in rows:
        print(f"{r['rate']:>7g} {r['direct_p50_ms']:>11.2f} {r['gateway_p50_ms']:>12.2f} "
              f"{r['added_p50_ms']:>10.2f} {r['direct_p99_ms']:>11.2f} "
              f"{r['gateway_p99_ms']:>12.2f} {r['added_p99_ms']:>10.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
