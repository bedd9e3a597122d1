"""The shared state against a real redis-server: keys, lease, counts, bounded calls.

Members here are a controller and an estimator each (no HTTP), on one hand-moved
clock that is also their wall clock, so the per-second buckets line up.
"""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest

from fakes import Clock, profile
from redis_server import RedisServer
from thinkq.errors import StateError
from thinkq.fleet import Member, Store, check_url
from thinkq.fleet.counts import completions, estimate, matrix
from thinkq.serve.controller import Controller
from thinkq.serve.estimator import Estimator

START = 1_000_000.0
PERIOD = 5.0
TASKS = ("math", "chat")


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://127.0.0.1:6379/0", "redis://"),
        ("redis://", "no host"),
        ("redis://127.0.0.1:6379/x", "must be a number"),
        ("redis://127.0.0.1:99999/0", "not a URL"),
        ("redis://127.0.0.1:0/0", "1-65535"),
    ],
)
def test_a_bad_url_is_one_line_naming_it(url: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment) as info:
        check_url(url)
    assert "\n" not in str(info.value)


def member(store: Store, clock: Clock, *, period: float = 5.0, window: float = 60.0) -> Member:
    p = profile(t0=[0.02, 0.02], c=[0.001, 0.001], rate=2.0)
    estimator = Estimator(
        prior_rate=p.rate, prior_shares=p.share, window=window, clock=clock, horizon=period,
        prior_time=60.0,
    )  # fmt: skip
    return Member(store, Controller(p, estimator), period=period, clock=clock, estimator=estimator)


def test_one_member_holds_the_lease_until_it_lapses(redis_server: RedisServer) -> None:
    async def main() -> None:
        a, b = Store(redis_server.url), Store(redis_server.url)
        try:
            assert await a.lease("a", 0.3)
            assert not await b.lease("b", 0.3)
            assert await a.lease("a", 0.3)  # kept by its holder
            assert await b.holder() == "a"
            await asyncio.sleep(0.4)
            assert await b.lease("b", 0.3)
            assert not await a.lease("a", 0.3)
        finally:
            await a.aclose()
            await b.aclose()

    asyncio.run(main())


def test_two_members_share_the_total_load_and_one_plan(redis_server: RedisServer) -> None:
    """Arrivals split at random between two members: both put the same plan in
    force, solved for the total rate (within 10% of the arrivals counted)."""
    clock = Clock(START)
    rng = np.random.default_rng(7)

    async def main() -> None:
        stores = [Store(redis_server.url, wall=clock) for _ in range(2)]
        members = [member(s, clock) for s in stores]
        try:
            times = np.cumsum(rng.exponential(1 / 12.0, size=2000))  # 12/s in all
            tick = 0.0
            for t in times[times < 90]:
                while tick <= t:  # every member ticks once a second, off the arrivals
                    clock.now = START + tick
                    for m in members:
                        await m.tick()
                    tick += 1.0
                clock.now = START + float(t)
                members[int(rng.integers(2))].estimator.arrival(int(rng.integers(2)))
            plans = [m.controller.plan for m in members]
            assert [m.role for m in members].count("leader") == 1
            assert plans[0].budgets == plans[1].budgets
            assert plans[0].rate == plans[1].rate
            # the last solve, at 85 s, read the seconds [23, 83): the arrivals sent then
            window = (times >= 85 - 2 - 60) & (times < 85 - 2)
            for plan in plans:
                assert plan.rate == pytest.approx(window.sum() / 60, rel=0.1)
            own = [m.estimator.estimate().rate for m in members]
            print(
                f"shared rate {plans[0].rate:.3f}/s, sent {window.sum() / 60:.3f}/s, "
                f"alone {own[0]:.3f} and {own[1]:.3f}/s, budgets {plans[0].budgets}"
            )
            assert max(own) < 0.7 * plans[0].rate  # alone, each sees about half
        finally:
            for s in stores:
                await s.aclose()

    asyncio.run(main())


def test_estimate_switches_to_the_horizon_after_a_change() -> None:
    counts = np.zeros((60, 2))
    counts[:50, 0] = 1.0  # 1/s, then 10/s for the last 10 s
    counts[50:, 0] = 10.0
    kwargs = {"window": 60.0, "prior_rate": 1.0, "prior_shares": np.array([0.5, 0.5])}
    steady = estimate(counts[:50], observed=50.0, prior_time=0.0, horizon=None, **kwargs)
    assert steady.rate == pytest.approx(1.0)
    burst = estimate(counts, observed=60.0, prior_time=0.0, horizon=5.0, **kwargs)
    assert burst.rate == pytest.approx(10.0)
    assert burst.shares[0] == pytest.approx(150.5 / 151, rel=1e-9)


def test_a_dead_redis_fails_fast_and_a_frozen_one_within_the_bound(
    redis_server: RedisServer,
) -> None:
    async def main() -> None:
        store = Store(redis_server.url, timeout=0.2)
        try:
            await store.ping()
            redis_server.pause()
            start = time.monotonic()
            with pytest.raises(StateError, match="redis at"):
                await store.plan()
            frozen = time.monotonic() - start
            redis_server.resume()
            redis_server.kill()
            start = time.monotonic()
            with pytest.raises(StateError):
                await store.add({1: {"math": 1}})
            dead = time.monotonic() - start
        finally:
            await store.aclose()
        print(f"a frozen redis failed in {frozen * 1e3:.0f} ms, a dead one in {dead * 1e3:.1f} ms")
        assert frozen <= 2 * 0.2 + 0.3  # the call's bound (twice the socket timeout)

    asyncio.run(main())


def test_a_member_cancelled_inside_a_redis_call_stops(redis_server: RedisServer) -> None:
    """redis-py can swallow a cancellation that lands inside a call; the store raises
    it again, so a gateway's or the controller's loop always stops (30 moments)."""

    async def main() -> list[int]:
        hung = []
        for k in range(30):
            store = Store(redis_server.url)
            task = asyncio.create_task(member(store, Clock(START)).run())
            await asyncio.sleep(0.0003 * k)
            task.cancel()
            await asyncio.wait([task], timeout=1.0)
            if not task.done():
                hung.append(k)
                await store.aclose()
        return hung

    assert asyncio.run(main()) == []


def test_a_plan_that_does_not_apply_here_is_refused_and_the_member_solves_alone(
    redis_server: RedisServer,
) -> None:
    clock = Clock(START)

    async def main() -> None:
        leader, follower = (member(Store(redis_server.url, wall=clock), clock) for _ in range(2))
        seen: list[tuple[int, ...]] = []
        follower.on_plan = lambda plan: seen.append(plan.budgets)
        try:
            await leader.tick()
            await follower.tick()
            assert (leader.role, follower.role) == ("leader", "follower")
            assert follower.controller.plan.budgets == leader.controller.plan.budgets
            for garbage in ("{not json", json.dumps({"version": 1, "fingerprint": "other"})):
                await follower.store.client.set("thinkq:plan", garbage)
                clock.now += PERIOD
                await follower.tick()
                assert follower.role == "local"
                assert follower.connected
                assert follower.refused is not None
            clock.now += PERIOD
            await leader.tick()  # publishes again
            await follower.tick()
            assert follower.role == "follower"
            assert follower.refused is None
            clock.now += PERIOD
            await follower.tick()  # the same plan: the gauges are brought up to date
            assert len(seen) == 5  # followed, alone twice, followed, the same plan
        finally:
            await leader.store.aclose()
            await follower.store.aclose()

    asyncio.run(main())


def test_counts_that_are_not_numbers_are_ignored() -> None:
    rows = matrix([{"math": "3", "chat": "x", "other": "5"}, {"math": "nan", "chat": "-2"}], TASKS)
    np.testing.assert_array_equal(rows, [[3.0, 0.0], [0.0, 0.0]])
    done = completions([{"math:n": "2", "math:service": "1.5", "math:thinking": "oops"}], TASKS)
    assert done == {"math": {"n": 2, "mean_service": 0.75, "mean_thinking": 0.0}}


def test_without_redis_server_and_root_the_fixture_names_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import apt_packages
    import redis_server

    monkeypatch.setattr(redis_server.shutil, "which", lambda name: None)
    monkeypatch.setattr(apt_packages.os, "geteuid", lambda: 1000)
    with pytest.raises(
        RuntimeError, match=r"apt-get install -y redis-server.*package redis-server"
    ):
        redis_server.ensure_installed()
