"""Overload recovery in real time: normal load, a burst at three times capacity, normal load.

The gateway app runs in-process (``httpx.ASGITransport``, no socket) in force mode in
front of a stub upstream (an ``httpx.MockTransport`` in this file) that takes
t0 + c tokens seconds per request, the latency line of the profile, so the profile
is exact. Times are the defaults of ``thinkq serve`` divided by ``--scale`` (window,
re-solve period, the profile's t0 and c, the burst), so that a run takes about a
minute: with the default scale 2.5, t0 = 40 ms, c = 4 ms/token, zero budgets serve
25 queries/s, the normal load is 1/s, the burst 75/s for 12 s, the window 24 s and
the re-solve period 2 s.

Clients arrive as a Poisson stream of pairs (one query of each type); a refused
client retries after ``Retry-After`` plus up to one second, at most four times.
Prints when the queue first drained after the burst, the last refusal and the first
admission after the drain, the refusals sent while nobody waited in the queue, and
when the budgets came back to their pre-burst values (seconds after the burst).
Run: ``python benchmarks/serve_overload.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time

import httpx
import numpy as np

from thinkq import Profile
from thinkq.measure.server import Server
from thinkq.measure.templates import TEMPLATES
from thinkq.serve import Gateway, create_app

TRIES = 4


def profile(scale: float) -> Profile:
    """The unit tests' two-type profile with time divided by ``scale``."""
    return Profile.from_arrays(
        names=["math", "chat"], share=[1.0, 1.0], A=[0.6, 0.3], b=[0.02, 0.05],
        D=[0.2, 0.5], t0=[0.1 / scale] * 2, c=[0.01 / scale] * 2, rate=0.4 * scale,
        alpha=5.0 / scale, max_tokens=400, default_task="chat",
    )  # fmt: skip


def stub(p: Profile) -> httpx.MockTransport:
    """An upstream that sleeps t0 for the answer and c per thinking token."""

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [{"id": "stub"}]})
        body = json.loads(request.content)
        thinking = "logit_bias" in body
        tokens = body["max_tokens"] if thinking else 1
        await asyncio.sleep(p.c[0] * tokens if thinking else p.t0[0])
        usage = {"prompt_tokens": 9, "completion_tokens": tokens, "total_tokens": 9 + tokens}
        choice = {
            "index": 0,
            "text": " w" * tokens if thinking else " 4",
            "finish_reason": "length",
        }
        return httpx.Response(200, json={"choices": [choice], "usage": usage})

    return httpx.MockTransport(handle)


class Run:
    """The clients, and what they and a monitor of the gateway saw (monotonic seconds)."""

    def __init__(self, client: httpx.AsyncClient, gateway: Gateway, seed: int) -> None:
        self.client, self.gateway = client, gateway
        self.rng = np.random.default_rng(seed)
        self.admitted: list[float] = []
        self.refused: list[float] = []
        self.refused_idle = 0  # refusals sent while nobody waited in the queue
        self.drained: float | None = None
        self.returned: float | None = None
        self.cleared: float | None = None  # the first plan after the burst not overloaded
        self.pending: set[asyncio.Task[None]] = set()

    async def query(self, k: int) -> None:
        body = {"messages": [{"role": "user", "content": f"question {k}"}], "max_tokens": 1}
        headers = {"X-Thinkq-Task": ("math", "chat")[k % 2]}
        for _ in range(TRIES):
            sent, idle = time.monotonic(), self.gateway.queue.waiting == 0
            reply = await self.client.post("/v1/chat/completions", json=body, headers=headers)
            if reply.status_code != 503:
                self.admitted.append(sent)
                return
            self.refused.append(sent)
            self.refused_idle += idle
            await asyncio.sleep(int(reply.headers["Retry-After"]) + self.rng.uniform(0, 1))

    async def load(self, rate: float, seconds: float, first: int) -> int:
        """Poisson pairs at ``rate`` queries/s for ``seconds``; the next query number."""
        end, k = time.monotonic() + seconds, first
        while (now := time.monotonic()) < end:
            for _ in range(2):
                task = asyncio.create_task(self.query(k))
                self.pending.add(task)
                task.add_done_callback(self.pending.discard)
                k += 1
            await asyncio.sleep(min(self.rng.exponential(2 / rate), end - now))
        return k

    async def monitor(self, end: float, before: tuple[int, ...]) -> None:
        """Note when the queue drained and the budgets came back after ``end`` (runs
        until cancelled)."""
        while self.drained is None or self.returned is None:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            if now < end:
                continue
            if self.drained is None and self.gateway.queue.waiting == 0:
                self.drained = now
            plan = self.gateway.controller.plan
            if self.returned is None and plan.budgets == before:
                self.returned = now
            if self.cleared is None and not plan.overloaded:
                self.cleared = now


async def main(args: argparse.Namespace) -> dict[str, float]:
    s = args.scale
    p = profile(s)
    server = Server("http://stub.test/v1", "stub", transport=stub(p))
    gateway = Gateway(
        p, server, template=TEMPLATES["chatml"], suppress_ids=[1], concurrency=1,
        window=60.0 / s, resolve_every=5.0 / s,
    )  # fmt: skip
    async with gateway:
        transport = httpx.ASGITransport(app=create_app(gateway))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw", timeout=600) as c:
            run = Run(c, gateway, args.seed)
            normal, burst = p.rate, 3.0 / float(np.dot(p.share, p.t0))
            k = await run.load(normal, 60.0 / s, 0)  # a whole window of normal load
            before = gateway.controller.plan.budgets
            start = time.monotonic()
            k = await run.load(burst, 30.0 / s, k)
            end = time.monotonic()
            watch = asyncio.create_task(run.monitor(end, before))
            await run.load(normal, args.after / s, k)
            await asyncio.gather(*run.pending)
            watch.cancel()
            budgets_after = gateway.controller.plan.budgets
    assert run.drained is not None, "the queue never drained: run longer (--after)"
    after = [t for t in run.admitted if t >= run.drained]
    returned = math.nan if run.returned is None else run.returned - end
    cleared = math.nan if run.cleared is None else run.cleared - end
    return {
        "budgets_before": before, "burst_rate": burst, "burst_seconds": end - start,
        "refused": len(run.refused),
        "refused_while_queue_empty": run.refused_idle,
        "retries_recognised": getattr(getattr(gateway, "admission", None), "retried", -1),
        "admitted_between_burst_and_drain": sum(end <= t < run.drained for t in run.admitted),
        "drained_after_burst_s": run.drained - end,
        "last_refusal_after_burst_s": max(run.refused) - end,
        "last_refusal_after_drain_s": max(run.refused) - run.drained,
        "first_admission_after_drain_s": min(after) - run.drained,
        "plan_not_overloaded_after_burst_s": cleared,
        "budgets_back_after_burst_s": returned,
        "budgets_at_the_end": budgets_after,
        "resolve_every_s": 5.0 / s,
    }  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=2.5, help="time divided by (default 2.5)")
    parser.add_argument("--after", type=float, default=60.0, help="normal load after, s/scale")
    parser.add_argument("--seed", type=int, default=1)
    for key, value in asyncio.run(main(parser.parse_args())).items():
        print(f"{key:32s} {value if isinstance(value, tuple | int) else round(value, 3)}")
