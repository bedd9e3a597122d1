"""Latency the gateway adds: the same request direct, through a bare proxy, through thinkq.

Paths to one stub upstream (this file, ``--stub PORT``) that answers
``/v1/completions`` at once with one token, so that the differences are the cost of
what stands in front of it, not the model's:

* **direct**: the client to the stub;
* **proxy**: a bare pass-through proxy on the gateway's own stack (this file,
  ``--proxy PORT UPSTREAM``: uvicorn, Starlette and the same upstream transport, the
  heap settled after the start and the cyclic collector run between requests as
  ``thinkq serve`` does (``thinkq.serve.collector``), no thinkq logic), the peer
  that shows what any Python gateway pays here;
* **gateway**: ``thinkq serve`` in force mode, with a profile whose budgets are
  zero so that it makes exactly one upstream request like the others, a
  ``--concurrency`` high enough that no request waits in its queue, and its log (a
  line per request) read through a pipe, as a collector (journald, docker) reads it;
* **gw+redis**: the same with the shared state, ``thinkq serve --state
  redis://127.0.0.1:PORT/0`` against a ``redis-server`` this script starts (Debian's
  package; alone in its fleet, so it leads: it reports its counts every second and
  solves and publishes the plan every period);
* with ``--baseline SRC``, **baseline**: ``thinkq serve`` as **gateway**, but run from
  another source tree (``SRC`` is its ``src`` directory, first on ``PYTHONPATH``):
  before and after a change in one run, e.g. ``git worktree add ../before HEAD~3``
  then ``--baseline ../before/src``; with ``--baseline-state`` too, that gateway has the
  shared state as **gw+redis** has (database 2 of the same ``redis-server``: a fleet of
  its own), to compare two versions of the Redis member;
* with ``--litellm``, **litellm** and **enforcer**: the LiteLLM proxy alone and with
  thinkq's enforcer reporting to Redis (``litellm_paths.py``; database 1 of the same
  ``redis-server``), chat requests to the same stub, and the enforcer's hooks timed
  in-process.

At each rate (default 50 and 200 requests/s) the paths take turns in blocks of
``--block`` Poisson arrivals (direct, proxy, gateway, gw+redis, direct, ...) until each
has ``--queries``, so that a drift in the machine's speed reaches all of them alike.
The client is aiohttp on uvloop, the lightest here, because it shares the two cores.
Prints p50 and p99 of each path, the added latency (path - direct) with 95% bootstrap
intervals, the CPU time per request of each server process during its own turns (as
if it served that rate alone; until commit 429deff the whole run was charged, so that
a server's costs per second counted once for every path: ``whole run``), what it
spends a second while the others have their turns (``idle ms/s``), and the goal's figures
(issue 17): each gateway's added p99 over the proxy's (at most 1.25), with a bootstrap
interval, and thinkq's own CPU per request, the gateway's minus the proxy's (under
0.3 ms).
Run: ``python benchmarks/serve_overhead.py [--litellm]``.
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
from typing import NamedTuple

import aiohttp
import httpx
import numpy as np
import uvloop

import litellm_paths

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
PATHS = ("direct", "proxy", "gateway", "gateway_redis")
#: The thinkq gateways (without and with the Redis state), each against the proxy.
GATEWAYS = ("gateway", "gateway_redis")
LITELLM = ("litellm", "enforcer")
#: The goal: a gateway's added p99 at most this many times the proxy's.
P99_RATIO_GOAL = 1.25
#: The goal: thinkq's own CPU per request (gateway minus proxy), ms.
OWN_CPU_GOAL = 0.3
#: Seconds every server keeps an idle connection: longer than the other paths' turns
#: (at uvicorn's default 5 s a waiting path's connections could close mid-send)
KEEP_ALIVE = litellm_paths.KEEP_ALIVE
#: Seconds after a path's last reply that still count as its turn (longer than any
#: work a server defers: thinkq serve writes its log lines at most 0.2 s late).
SETTLE = 0.3


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

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        message = {"role": "assistant", "content": "hi"}
        choice = {"index": 0, "message": message, "finish_reason": "length"}
        n = int(body.get("max_tokens", 1))
        usage = {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n}
        return JSONResponse({"id": "stub", "object": "chat.completion", "created": 0,
                             "model": "stub", "choices": [choice], "usage": usage})  # fmt: skip

    app = Starlette(
        routes=[
            Route("/v1/models", models),
            Route("/extras/tokenize", tokenize, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
        ]
    )
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
        timeout_keep_alive=KEEP_ALIVE,
    )  # fmt: skip


def proxy(port: int, upstream: str) -> None:
    """Serve a bare pass-through proxy to ``upstream`` on ``port`` (blocks)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from thinkq.serve.collector import IdleCollector
    from thinkq.serve.connections import settle_heap
    from thinkq.serve.upstream import upstream_transport

    client: httpx.AsyncClient | None = None
    collector = IdleCollector()

    async def forward(request: Request) -> Response:
        nonlocal client
        if client is None:  # created in the server's loop
            client = httpx.AsyncClient(transport=upstream_transport())
        collector.enter()
        try:
            reply = await client.post(
                f"{upstream}/v1/completions",
                content=await request.body(),
                headers={"content-type": "application/json"},
            )
        finally:
            collector.leave()
        return Response(reply.content, status_code=reply.status_code, media_type="application/json")

    app = Starlette(routes=[Route("/v1/completions", forward, methods=["POST"])])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
        timeout_keep_alive=KEEP_ALIVE,
    )  # fmt: skip

    async def serve() -> None:
        settle_heap()  # as thinkq serve does before it serves,
        collector.start()  # and its collector's passes between requests
        await uvicorn.Server(config).serve()

    uvloop.run(serve())


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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    targets: dict[str, tuple[str, bytes]],
    *,
    rate: float,
    queries: int,
    block: int,
    seed: int,
    pids: dict[str, int],
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, float]], dict[str, float]]:
    """Latency (seconds) of ``queries`` requests per path, blocks of Poisson arrivals;
    the CPU seconds of every process (``pids``) during each path's turns; and the
    seconds those turns took. A turn lasts from its start until :data:`SETTLE` seconds
    after its last reply (work a server defers, such as batched log lines, lands in it)."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {name: [] for name in targets}
    turns = {name: dict.fromkeys(pids, 0.0) for name in targets}
    walls = dict.fromkeys(targets, 0.0)
    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(url: str, body: bytes, at: float, sink: list[float]) -> None:
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            sent = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as reply:
                    await reply.read()
            except aiohttp.ClientError as exc:
                raise RuntimeError(f"{url}: {exc!r}") from exc
            if reply.status != 200:
                raise RuntimeError(f"{url}: HTTP {reply.status}")
            sink.append(time.perf_counter() - sent)

        for url, body in targets.values():  # warm every connection pool
            await asyncio.gather(*(one(url, body, 0.0, []) for _ in range(50)))
        await asyncio.sleep(SETTLE)
        while min(len(v) for v in out.values()) < queries:
            for name, (url, body) in targets.items():
                n = min(block, queries - len(out[name]))
                cpu, wall = {p: cpu_seconds(pid) for p, pid in pids.items()}, time.perf_counter()
                start = wall + 0.05
                times = start + np.cumsum(rng.exponential(1 / rate, n))
                await asyncio.gather(*(one(url, body, float(t), out[name]) for t in times))
                await asyncio.sleep(SETTLE)
                for p, pid in pids.items():
                    turns[name][p] += cpu_seconds(pid) - cpu[p]
                walls[name] += time.perf_counter() - wall
    return {name: np.array(v) for name, v in out.items()}, turns, walls


def added(gateway: np.ndarray, direct: np.ndarray, q: float, seed: int) -> tuple[float, float]:
    """95% bootstrap interval of percentile ``q`` of ``gateway`` minus that of ``direct``."""
    rng = np.random.default_rng(seed)
    draws = [
        np.percentile(rng.choice(gateway, gateway.size), q)
        - np.percentile(rng.choice(direct, direct.size), q)
        for _ in range(1000)
    ]
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)


def ratio(
    gateway: np.ndarray, proxy: np.ndarray, direct: np.ndarray, q: float, seed: int
) -> tuple[float, float]:
    """95% bootstrap interval of ``gateway``'s added percentile ``q`` over ``proxy``'s
    (each minus ``direct``'s, one resample of each path per draw)."""
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(1000):
        g, p, d = (np.percentile(rng.choice(x, x.size), q) for x in (gateway, proxy, direct))
        with np.errstate(divide="ignore", invalid="ignore"):  # a draw where p == d
            draws.append((g - d) / (p - d))
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)


def targets(args: argparse.Namespace, ports: dict[str, int]) -> dict[str, tuple[str, bytes]]:
    """Each path's URL and request body."""
    prompt = f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n\n\n"
    direct = json.dumps({"model": "stub", "max_tokens": 1, "prompt": prompt}).encode()
    chat = json.dumps({"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 1})
    found = {
        "direct": (f"http://127.0.0.1:{ports['stub']}/v1/completions", direct),
        "proxy": (f"http://127.0.0.1:{ports['proxy']}/v1/completions", direct),
    }
    for name in (*GATEWAYS, *(["baseline"] if args.baseline else [])):
        found[name] = (f"http://127.0.0.1:{ports[name]}/v1/chat/completions", chat.encode())
    routed = json.dumps({"model": "stub", **json.loads(chat)}).encode()
    for name in LITELLM if args.litellm else ():
        found[name] = (f"http://127.0.0.1:{ports[name]}/v1/chat/completions", routed)
    return found


class Cpu(NamedTuple):
    """CPU seconds of every process: over the whole rate, and during each path's
    turns; the seconds of each path's turns and of the whole rate."""

    used: dict[str, float]
    turns: dict[str, dict[str, float]]
    walls: dict[str, float]
    elapsed: float


def figures(lat: dict[str, np.ndarray], cpu: Cpu, queries: int, seed: int) -> dict:
    """Percentiles, added latency with intervals, CPU per request, and the goal's ratios.

    A server's CPU per request is what it spent during its own turns (as when it
    serves that rate alone); ``_run_cpu_ms`` charges it its whole run, the other
    paths' turns too, and ``_idle_cpu_ms_per_s`` is what it spent a second while the
    other paths had their turns.
    """
    paths = list(lat)
    row: dict = {"paths": paths}
    for q in (50, 99):
        for name in paths:
            row[f"{name}_p{q}_ms"] = float(np.percentile(lat[name], q)) * 1e3
        for name in paths[1:]:
            row[f"{name}_added_p{q}_ms"] = row[f"{name}_p{q}_ms"] - row[f"direct_p{q}_ms"]
            low, high = added(lat[name], lat["direct"], q, seed=seed)
            row[f"{name}_added_p{q}_ci_ms"] = [low * 1e3, high * 1e3]
    # the stub serves every path; each server the requests of its own
    row["stub_cpu_ms"] = cpu.used["stub"] / (len(paths) * queries) * 1e3
    for name in paths[1:]:
        row[f"{name}_cpu_ms"] = cpu.turns[name][name] / queries * 1e3
        row[f"{name}_run_cpu_ms"] = cpu.used[name] / queries * 1e3
        idle = cpu.used[name] - cpu.turns[name][name]
        row[f"{name}_idle_cpu_ms_per_s"] = idle / (cpu.elapsed - cpu.walls[name]) * 1e3
    # per request of gateway_redis, in its turns (its own timers the rest of the time)
    row["redis_cpu_ms"] = cpu.turns["gateway_redis"]["redis"] / queries * 1e3
    idle = cpu.used["redis"] - cpu.turns["gateway_redis"]["redis"]
    row["redis_idle_cpu_ms_per_s"] = idle / (cpu.elapsed - cpu.walls["gateway_redis"]) * 1e3
    for name in (g for g in (*GATEWAYS, "baseline") if g in lat):  # the goal's figures
        base = row["proxy_added_p99_ms"]  # (no ratio over a proxy adding nothing)
        row[f"{name}_p99_ratio"] = row[f"{name}_added_p99_ms"] / base if base > 0 else None
        row[f"{name}_p99_ratio_ci"] = list(
            ratio(lat[name], lat["proxy"], lat["direct"], 99, seed=seed)
        )
        row[f"{name}_own_cpu_ms"] = row[f"{name}_cpu_ms"] - row["proxy_cpu_ms"]
    if "enforcer" in lat:  # what the enforcer adds to LiteLLM alone
        for q in (50, 99):
            low, high = added(lat["enforcer"], lat["litellm"], q, seed=seed)
            row[f"enforcer_extra_p{q}_ms"] = row[f"enforcer_p{q}_ms"] - row[f"litellm_p{q}_ms"]
            row[f"enforcer_extra_p{q}_ci_ms"] = [low * 1e3, high * 1e3]
        row["enforcer_extra_cpu_ms"] = row["enforcer_cpu_ms"] - row["litellm_cpu_ms"]
    return row


def run(args: argparse.Namespace, ports: dict[str, int], pids: dict[str, int]) -> list[dict]:
    """Every path at every rate, in rotating blocks; one row of figures per rate."""
    paths = targets(args, ports)
    rows = []
    for k, rate in enumerate(float(r) for r in args.rates.split(",")):
        before, start = {name: cpu_seconds(pid) for name, pid in pids.items()}, time.perf_counter()
        lat, turns, walls = uvloop.run(
            measure(paths, rate=rate, queries=args.queries, block=args.block, seed=k, pids=pids)
        )
        used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
        cpu = Cpu(used, turns, walls, time.perf_counter() - start)
        rows.append({"rate": rate, "queries": args.queries} | figures(lat, cpu, args.queries, k))
    return rows


def report(rows: list[dict]) -> None:
    def ci(row: dict, key: str) -> str:
        low, high = row[f"{key}_ci_ms"]
        return f"{row[f'{key}_ms']:6.2f} [{low:5.2f}, {high:5.2f}]"

    for row in rows:
        print(f"rate {row['rate']:g}/s, {row['queries']} requests per path (ms)")
        print(f"  {'':8} {'p50':>7} {'p99':>7}   {'added p50 [95% CI]':>22}"
              f"   {'added p99 [95% CI]':>22}   {'CPU/request':>11}   {'whole run':>9}"
              f"   {'idle ms/s':>9}")  # fmt: skip
        for name in row["paths"]:
            label = name.replace("gateway_redis", "gw+redis")
            line = f"  {label:8} {row[f'{name}_p50_ms']:7.2f} {row[f'{name}_p99_ms']:7.2f}"
            if name != "direct":
                p50, p99 = ci(row, f"{name}_added_p50"), ci(row, f"{name}_added_p99")
                line += f"   {p50:>22}   {p99:>22}   {row[f'{name}_cpu_ms']:11.3f}"
                line += f"   {row[f'{name}_run_cpu_ms']:9.3f}"
                line += f"   {row[f'{name}_idle_cpu_ms_per_s']:9.2f}"
            else:
                line += f"   {'':>22}   {'':>22}   {row['stub_cpu_ms']:11.3f} (stub)"
            print(line)
        print(f"  {'redis-server':>70}   {row['redis_cpu_ms']:11.3f}   {'':>9}"
              f"   {row['redis_idle_cpu_ms_per_s']:9.2f}")  # fmt: skip
        if "enforcer_extra_cpu_ms" in row:
            p50, p99 = ci(row, "enforcer_extra_p50"), ci(row, "enforcer_extra_p99")
            print(f"  {'enforcer - litellm':>24}   {p50:>22}   {p99:>22}   "
                  f"{row['enforcer_extra_cpu_ms']:11.3f}")  # fmt: skip
        print(f"  goal: added p99 / proxy's <= {P99_RATIO_GOAL:g}, thinkq's CPU per request "
              f"(minus the proxy's) < {OWN_CPU_GOAL:g} ms")  # fmt: skip
        for name in (g for g in (*GATEWAYS, "baseline") if g in row["paths"]):
            r, (low, high) = row[f"{name}_p99_ratio"], row[f"{name}_p99_ratio_ci"]
            own = row[f"{name}_own_cpu_ms"]
            shown = "undefined" if r is None else f"{r:5.2f} [{low:5.2f}, {high:5.2f}]"
            met = "" if r is None else _met(r <= P99_RATIO_GOAL)
            print(f"  {name.replace('gateway_redis', 'gw+redis'):8}  p99 ratio {shown} {met:7}"
                  f"   own CPU {own:6.3f} ms {_met(own < OWN_CPU_GOAL)}")  # fmt: skip


def _met(met: bool) -> str:
    return "met" if met else "not met"


def start_redis(port: int) -> subprocess.Popen[bytes]:
    """``redis-server`` on ``port``, answering PING."""
    process = litellm_paths.start_redis(port)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("redis-server exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return process
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("redis-server did not answer in 20 s")


def start_litellm(
    directory: Path, ports: dict[str, int], upstream: str, profile: Path
) -> dict[str, subprocess.Popen[bytes]]:
    """LiteLLM alone and with the enforcer (database 1 of the running redis-server)."""
    started = {}
    state = f"redis://127.0.0.1:{ports['redis']}/1"
    for name in LITELLM:
        started[name] = litellm_paths.start_litellm(
            directory, name, ports[name], upstream,
            state=state if name == "enforcer" else None, profile=profile,
        )  # fmt: skip
    for name in LITELLM:
        wait_up(f"http://127.0.0.1:{ports[name]}/health/liveliness", started[name])
    return started


def start_gateway(
    port: int, upstream: str, profile: Path, state: str | None, source: str | None = None
) -> subprocess.Popen[bytes]:
    """``thinkq serve`` on ``port`` (with ``--state`` when given; from the source tree
    ``source`` when given), answering /healthz."""
    command = [
        sys.executable, "-m", "thinkq", "serve",
        "--upstream", f"{upstream}/v1", "--profile", str(profile),
        "--template", "chatml", "--port", str(port),
        "--concurrency", "64", "--max-queue", "10000",
        "--keep-alive", str(KEEP_ALIVE),
        *(["--state", state] if state else []),
    ]  # fmt: skip
    env = os.environ | ({"PYTHONPATH": source} if source else {})
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    # its log read as a collector reads it (journald, docker): a pipe, not /dev/null
    subprocess.Popen(["cat"], stdin=process.stderr, stdout=subprocess.DEVNULL)
    wait_up(f"http://127.0.0.1:{port}/healthz", process)
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stub", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--proxy", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--rates", default="50,200", help="Requests per second.")
    parser.add_argument("--queries", type=int, default=3000, help="Requests per rate and path.")
    parser.add_argument("--block", type=int, default=250, help="Arrivals per turn of a path.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    parser.add_argument("--litellm", action="store_true", help="Add the LiteLLM paths.")
    parser.add_argument(
        "--baseline", metavar="SRC", help="Add thinkq serve from this source tree (its src)."
    )
    parser.add_argument(
        "--baseline-state", action="store_true", help="The baseline with --state (Redis db 2)."
    )
    args = parser.parse_args()
    if args.stub is not None:
        stub(args.stub)
        return
    if args.proxy is not None:
        proxy(int(args.proxy[0]), args.proxy[1])
        return
    ports = {name: free_port() for name in ("stub", *PATHS, "baseline", *LITELLM, "redis")}
    upstream = f"http://127.0.0.1:{ports['stub']}"
    processes: dict[str, subprocess.Popen[bytes]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        profile = Path(tmp) / "zero.toml"
        profile.write_text(PROFILE)
        try:
            processes["stub"] = subprocess.Popen(
                [sys.executable, __file__, "--stub", str(ports["stub"])]
            )
            wait_up(f"{upstream}/v1/models", processes["stub"])
            processes["proxy"] = subprocess.Popen(
                [sys.executable, __file__, "--proxy", str(ports["proxy"]), upstream]
            )
            processes["redis"] = start_redis(ports["redis"])
            state = f"redis://127.0.0.1:{ports['redis']}/0"
            for name in GATEWAYS:
                processes[name] = start_gateway(
                    ports[name], upstream, profile, state if name == "gateway_redis" else None
                )
            if args.baseline:
                source = str(Path(args.baseline).resolve())
                shared = f"redis://127.0.0.1:{ports['redis']}/2" if args.baseline_state else None
                processes["baseline"] = start_gateway(
                    ports["baseline"], upstream, profile, shared, source
                )
            if args.litellm:
                processes |= start_litellm(Path(tmp), ports, upstream, profile)
            for _ in range(100):  # the proxy has no health endpoint: wait for its port
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", ports["proxy"])) == 0:
                        break
                time.sleep(0.1)
            pids = {name: p.pid for name, p in processes.items()}
            rows = run(args, ports, pids)
        finally:
            for process in processes.values():
                os.kill(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
        hook = litellm_paths.hook_cost(profile) if args.litellm else None
    if args.json:
        print(json.dumps({"rows": rows, "enforcer_hooks_cpu_ms": hook} if hook else rows))
    else:
        report(rows)
        if hook is not None:
            print(f"enforcer hooks in-process: {hook:.4f} ms of CPU per request")


if __name__ == "__main__":
    main()
