"""Two gateways sharing one plan through a real redis-server, and Redis outages.

Each gateway is a :class:`Gateway` in front of the fake upstream, served over HTTP
in-process (``httpx.ASGITransport``); both run on one hand-moved clock that is also
their wall clock, and their members tick once a (fake) second, as ``thinkq serve``'s
loop does. Poisson arrivals are split at random between them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import httpx
import numpy as np
import pytest

from fakes import Clock, FakeServer, profile
from redis_server import RedisServer
from thinkq.fleet import Member, Store
from thinkq.measure.templates import TEMPLATES
from thinkq.serve import Gateway, create_app

START = 2_000_000.0
PERIOD = 5.0
RATE = 6.0  # queries per second, both gateways together
TASKS = ("math", "chat")


@dataclass
class Side:
    """One gateway, its member of the fleet, and an HTTP client to it."""

    gateway: Gateway
    member: Member
    client: httpx.AsyncClient
    replies: list[int] = field(default_factory=list)

    @property
    def budgets(self) -> tuple[int, ...]:
        return self.gateway.controller.plan.budgets


@asynccontextmanager
async def fleet(
    url: str, clock: Clock, n: int = 2, timeout: float = 0.25
) -> AsyncIterator[list[Side]]:
    p = profile(t0=[0.02, 0.02], c=[0.001, 0.001], rate=2.0)
    async with AsyncExitStack() as stack:
        sides = []
        for _ in range(n):
            gateway = Gateway(
                p, FakeServer().server(), template=TEMPLATES["chatml"], clock=clock,
                resolve_every=0.0, window=60.0,
            )  # fmt: skip
            member = Member.joining(Store(url, wall=clock, timeout=timeout), gateway)
            await stack.enter_async_context(gateway)
            stack.push_async_callback(member.store.aclose)
            transport = httpx.ASGITransport(app=create_app(gateway))
            client = httpx.AsyncClient(transport=transport, base_url="http://gw.test", timeout=30)
            await stack.enter_async_context(client)
            sides.append(Side(gateway, member, client))
        yield sides


async def ask(side: Side, task: str) -> None:
    reply = await side.client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "2 + 3?"}], "max_tokens": 4},
        headers={"X-Thinkq-Task": task},
    )
    side.replies.append(reply.status_code)
    if reply.status_code == 200:
        thinking = reply.json()["usage"]["completion_tokens_details"]["reasoning_tokens"]
        assert thinking == side.budgets[TASKS.index(task)]  # the plan in force, applied


async def drive(sides: list[Side], clock: Clock, rng: np.random.Generator, until: float) -> int:
    """Poisson arrivals at RATE split at random, members ticking each second, up to
    ``until`` (seconds after START); returns the arrivals sent."""
    t, sent = clock.now - START, 0
    next_tick = np.floor(t) + 1.0
    while True:
        t += rng.exponential(1 / RATE)
        while next_tick <= min(t, until):
            clock.now = START + next_tick
            for side in sides:
                await side.member.tick()
            next_tick += 1.0
        if t >= until:
            clock.now = START + until
            return sent
        clock.now = START + t
        await ask(sides[int(rng.integers(len(sides)))], TASKS[int(rng.integers(2))])
        sent += 1


def test_two_gateways_apply_the_same_budgets_solved_for_the_total_load(
    redis_server: RedisServer,
) -> None:
    clock = Clock(START)
    rng = np.random.default_rng(11)

    async def main() -> None:
        async with fleet(redis_server.url, clock) as sides:
            await drive(sides, clock, rng, until=70.0)
            differ = 0
            for _ in range(30):  # 30 more seconds, checking after every tick
                await drive(sides, clock, rng, until=clock.now - START + 1.0)
                differ += sides[0].budgets != sides[1].budgets
            states = [side.gateway.state() for side in sides]
            alone = [side.gateway.estimator.estimate().rate for side in sides]
        roles = sorted(s["state"]["role"] for s in states)
        rates = [s["rate_estimate"] for s in states]
        print(f"shared rate {rates[0]:.3f}/s (offered {RATE}/s), alone {alone}, budgets "
              f"{states[0]['budgets']}, ticks with different budgets {differ}/30")  # fmt: skip
        assert roles == ["follower", "leader"]
        assert all(s["state"]["connected"] for s in states)
        assert states[0]["budgets"] == states[1]["budgets"]
        assert rates[0] == rates[1]
        assert rates[0] == pytest.approx(RATE, rel=0.1)
        assert max(alone) < 0.7 * RATE  # alone, each would solve for about half
        # the follower takes the leader's plan at its next tick: never a period late
        assert differ <= 30 / PERIOD
        assert all(code == 200 for side in sides for code in side.replies)

    asyncio.run(main())


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found is not None, name
    return float(found[1])


def test_a_redis_outage_fails_no_request_and_the_gateways_rejoin_within_a_period(
    redis_server: RedisServer,
) -> None:
    clock = Clock(START)
    rng = np.random.default_rng(5)

    async def main() -> None:
        async with fleet(redis_server.url, clock) as sides:
            await drive(sides, clock, rng, until=70.0)
            shared = sides[0].budgets
            redis_server.kill()  # in the middle of the load
            await drive(sides, clock, rng, until=90.0)
            down = [side.gateway.state() for side in sides]
            scraped = (await sides[0].client.get("/metrics")).text
            redis_server.run()  # the same port, empty
            back = clock.now
            rejoined = None
            while clock.now - back < 2 * PERIOD:
                await drive(sides, clock, rng, until=clock.now - START + 1.0)
                states = [side.gateway.state()["state"] for side in sides]
                same = sides[0].budgets == sides[1].budgets
                fresh = all(
                    s["plan_age"] is not None and s["plan_age"] <= clock.now - back for s in states
                )  # both on a plan solved since Redis came back
                one = states[0]["plan_by"] == states[1]["plan_by"]
                if rejoined is None and fresh and one and same:
                    rejoined = clock.now - back
            after = [side.gateway.state() for side in sides]
        failed = [code for side in sides for code in side.replies if code != 200]
        rates = [round(s["rate_estimate"], 2) for s in down]
        print(f"shared budgets {shared}, alone during the outage "
              f"{[s['budgets'] for s in down]} at {rates}/s, "
              f"rejoined {rejoined} s after Redis came back, rate then "
              f"{after[0]['rate_estimate']:.3f}/s, failed requests {len(failed)}")  # fmt: skip
        assert failed == []
        for state in down:
            assert state["state"]["connected"] is False
            assert state["state"]["role"] == "local"
            assert "redis at" in state["state"]["error"]
            assert state["rate_estimate"] < 0.7 * RATE  # its own arrivals only
        assert metric(scraped, "thinkq_state_connected") == 0.0
        assert metric(scraped, "thinkq_state_failures") > 0
        assert rejoined is not None
        assert rejoined <= PERIOD
        assert after[0]["budgets"] == after[1]["budgets"]
        assert after[0]["rate_estimate"] == pytest.approx(RATE, rel=0.1)  # windows reported again

    asyncio.run(main())


def test_no_request_waits_for_a_frozen_redis(redis_server: RedisServer) -> None:
    """Redis frozen (SIGSTOP) with a long socket timeout: the member's tick hangs on
    it, and requests are served all the while."""
    clock = Clock(START)

    async def main() -> None:
        async with fleet(redis_server.url, clock, n=1, timeout=30.0) as (side,):
            await side.member.tick()
            redis_server.pause()
            try:
                clock.now += 1.0
                tick = asyncio.create_task(side.member.tick())
                await asyncio.sleep(0.05)
                await asyncio.gather(*(ask(side, TASKS[k % 2]) for k in range(20)))
                hanging = not tick.done()
                tick.cancel()
                await asyncio.gather(tick, return_exceptions=True)
            finally:
                redis_server.resume()
        assert hanging
        assert side.replies == [200] * 20

    asyncio.run(main())
