"""Overload control: a burst beyond capacity, then normal load (issue 13).

The burst test is a discrete-event simulation on the gateway's clock: the real
:class:`Gateway` admits, counts and re-solves, its real :class:`Queue` holds the
slots, and the test plays the server (each request takes t0 + c l seconds at the
budget in force when it starts) and the clients (a refused client retries after
``Retry-After`` plus up to a second, at most :data:`TRIES` times). Nothing sleeps.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pytest

import thinkq
from fakes import Clock, FakeServer, profile
from thinkq.errors import OverloadedError, QueueFullError
from thinkq.measure.generation import Sampling
from thinkq.measure.prompts import Cue
from thinkq.serve import Controller, Estimator, Gateway, Plan
from thinkq.serve.admission import Retries
from thinkq.serve.request import Job

RESOLVE, WINDOW = 5.0, 60.0
NORMAL = 0.4  # queries/s, the profile's rate: the budgets before the burst are its optimum
BURST = 30.0  # queries/s: three times the capacity at zero budgets (E[S(0)] = 0.1 s)
START, END, STOP = 60.0, 90.0, 200.0  # the burst, and the end of the run (seconds)
TRIES = 4
CUE = Cue("", 8, ())


@dataclass
class Trace:
    """What happened: arrivals (time, admitted, waiting then) and plans (time, plan)."""

    arrivals: list[tuple[float, bool, int]] = field(default_factory=list)
    plans: list[tuple[float, Plan]] = field(default_factory=list)
    drained: float | None = None  # first time after the burst that nobody waits


def arrivals() -> list[tuple[float, int]]:
    """Fresh arrivals (time, client): pairs of both types, normal load plus the burst."""
    normal = np.arange(1.25, STOP, 2 / NORMAL)  # a pair every 5 s, off the re-solve times
    burst = np.arange(START + 0.01, END, 2 / BURST)
    times = np.sort(np.concatenate([normal, burst]))
    return [(float(t), 2 * i + k) for i, t in enumerate(times) for k in (0, 1)]


# long: one event loop (arrivals, departures, re-solves) reads best as one function
def simulate(gateway: Gateway, clock: Clock) -> Trace:
    """Play the clients and the server against ``gateway`` until :data:`STOP`."""
    trace = Trace()
    rng = np.random.default_rng(7)
    events: list[tuple[float, int, str, int, int]] = []  # time, order, kind, client, try
    for order, (t, client) in enumerate(arrivals()):
        events.append((t, order, "arrival", client, 1))
    events += [(t, -1, "resolve", 0, 0) for t in np.arange(RESOLVE, STOP, RESOLVE)]
    heapq.heapify(events)
    waiting: deque[int] = deque()
    order = len(events)
    p = gateway.profile

    def start(client: int) -> None:
        nonlocal order
        task = client % 2
        service = p.t0[task] + p.c[task] * gateway.admission.budget(task)
        order += 1
        heapq.heappush(events, (clock.now + service, order, "done", client, 0))

    while events:
        clock.now, _, kind, client, attempt = heapq.heappop(events)
        if kind == "resolve":
            trace.plans.append((clock.now, gateway.resolve()))
        elif kind == "done":
            gateway.queue.release()
            if waiting:
                start(waiting.popleft())
            elif clock.now > END and trace.drained is None:
                trace.drained = clock.now
        else:
            before = gateway.queue.waiting
            try:
                gateway.admit(
                    client % 2, kind="chat", messages=[], text=f"question {client}",
                    cue=CUE, sampling=Sampling(),
                )  # fmt: skip
            except OverloadedError as refusal:
                trace.arrivals.append((clock.now, False, before))
                if attempt < TRIES:
                    order += 1
                    again = clock.now + refusal.retry_after + rng.uniform(0, 1)
                    heapq.heappush(events, (again, order, "arrival", client, attempt + 1))
                continue
            trace.arrivals.append((clock.now, True, before))
            if gateway.queue.enter() is None:
                start(client)
            else:
                waiting.append(client)
    return trace


def burst() -> tuple[Gateway, Trace]:
    clock = Clock()
    p = profile(rate=NORMAL)
    gateway = Gateway(
        p, FakeServer().server(), resolve_every=RESOLVE, window=WINDOW, clock=clock,
        concurrency=1, max_queue=64,
    )  # fmt: skip

    async def main() -> Trace:  # the queue's futures need a running loop
        return simulate(gateway, clock)

    return gateway, asyncio.run(main())


def test_after_a_burst_at_three_times_capacity_admission_resumes_as_the_queue_drains() -> None:
    gateway, trace = burst()
    refused = [t for t, admitted, _ in trace.arrivals if not admitted]
    assert len(refused) > 100  # the burst was refused in part
    assert all(START <= t < END + 2 * RESOLVE for t in refused)
    # the rule: a request is never refused while nobody waits (an idle server)
    assert all(before > 0 for _, admitted, before in trace.arrivals if not admitted)
    # from the queue draining on, every request is admitted, the first within a period
    assert trace.drained is not None
    assert max(refused) < trace.drained
    first = min(t for t, admitted, _ in trace.arrivals if admitted and t >= trace.drained)
    assert first - trace.drained <= RESOLVE
    assert gateway.queue.busy == 0
    assert gateway.queue.waiting == 0


def test_the_budgets_drop_to_zero_in_the_burst_and_return_to_their_pre_burst_values() -> None:
    gateway, trace = burst()
    before = thinkq.solve(gateway.profile).budgets.tolist()
    assert min(before) > 0
    assert all(list(plan.budgets) == before for t, plan in trace.plans if t <= START)
    during = [plan for t, plan in trace.plans if START + 2 * RESOLVE <= t <= END]
    assert all(plan.overloaded and set(plan.budgets) == {0} for plan in during)
    # the rate solved for is the offered load, first tries only: retries are not counted
    assert gateway.admission.retried > 100
    assert all(plan.rate == pytest.approx(BURST + NORMAL, rel=0.05) for plan in during)
    # back within two re-solve periods of the burst's end, and there to stay
    after = [plan for t, plan in trace.plans if t >= END + 2 * RESOLVE]
    assert all(list(plan.budgets) == before for plan in after)
    assert all(plan.rate == pytest.approx(NORMAL) for plan in after)
    assert gateway.estimator.changes == 2  # the burst's start and its end, nothing else


def test_the_window_forgets_a_burst_at_the_first_estimate_whose_horizon_is_past_it() -> None:
    clock = Clock()
    shares = np.array([0.5, 0.5])
    estimator = Estimator(
        prior_rate=1.0, prior_shares=shares, window=60.0, clock=clock, horizon=5.0
    )
    for second in range(60):  # one a second, for a whole window: no change
        clock.now = second + 0.5
        estimator.arrival(second % 2)
        if second % 5 == 4:
            clock.now = second + 1.0
            assert estimator.estimate().rate == pytest.approx(1.0)
    clock.now = 60.0
    for _ in range(100):  # a burst at t = 60
        estimator.arrival(0)
    clock.now = 65.0
    assert estimator.estimate().rate == pytest.approx(100 / 5)  # the rise, at once
    clock.now = 70.0  # nothing since: the fall is seen at once as well
    assert estimator.estimate().rate == pytest.approx(0.0)
    assert estimator.changes == 2
    np.testing.assert_allclose(estimator.estimate().shares, [125.5 / 151, 25.5 / 151])
    clock.now = 131.0  # the cut left the window: the whole window again
    assert estimator.estimate().rate == 0.0
    assert estimator.since is None
    with pytest.raises(ValueError, match="horizon"):
        Estimator(prior_rate=1.0, prior_shares=shares, window=60.0, horizon=60.0)


def test_steady_poisson_load_keeps_the_whole_window() -> None:
    clock = Clock()
    shares = np.array([0.5, 0.5])
    estimator = Estimator(
        prior_rate=2.0, prior_shares=shares, window=60.0, clock=clock, horizon=5.0
    )
    rng = np.random.default_rng(1)
    times = np.cumsum(rng.exponential(1 / 2.0, 4000))  # 2/s for about 2000 s
    checks = iter(np.arange(5.0, times[-1], 5.0))
    due = next(checks)
    for t in times:
        while t > due:
            clock.now = due
            estimator.estimate()
            due = next(checks, np.inf)
        clock.now = t
        estimator.arrival(0)
    assert estimator.changes == 0  # about 400 tests at level 1e-4 on each tail


def test_a_retry_is_recognised_for_the_memory_and_counted_once() -> None:
    clock = Clock()
    retries = Retries(memory=10.0, clock=clock, capacity=3)
    retries.refused(1)
    clock.now = 5.0
    assert retries.retry(1)
    assert not retries.retry(1)  # forgotten once seen again
    retries.refused(2)
    clock.now = 16.0
    assert not retries.retry(2)  # past the memory: a first try
    for key in (3, 4, 5, 6):
        retries.refused(key)
    assert len(retries) == 3  # the oldest went first
    assert not retries.retry(3)
    assert retries.retry(6)


def test_a_full_queue_refuses_with_the_time_to_drain_it() -> None:
    clock = Clock()
    gateway = Gateway(profile(), FakeServer().server(), resolve_every=0.0, clock=clock,
                      concurrency=1, max_queue=2, max_wait=60.0)  # fmt: skip

    def admit(text: str) -> Job:
        return gateway.admit(0, kind="chat", messages=[], text=text, cue=CUE, sampling=Sampling())

    async def main() -> None:
        for k in range(3):
            admit(f"q{k}")
            gateway.queue.enter()
        with pytest.raises(QueueFullError) as refusal:
            admit("late")
        mean = gateway.controller.plan.mean_service
        assert refusal.value.retry_after == max(1, int(np.ceil(3 * mean)))
        with pytest.raises(QueueFullError):
            admit("late")  # its retry: refused again, but not counted again
        assert gateway.estimator.estimate().arrivals == 4
        assert gateway.admission.retried == 1
        assert gateway.state()["retries"] == 1
        assert gateway.state()["predicted_wait"] == pytest.approx(3 * mean)

    asyncio.run(main())


def test_after_an_overloaded_plan_the_budgets_before_it_come_back_unless_j_gains() -> None:
    clock = Clock(100.0)
    p = profile()
    estimator = Estimator(prior_rate=p.rate, prior_shares=p.share, window=100.0, clock=clock)
    controller = Controller(p, estimator)
    first = controller.plan.budgets
    for k in range(2000):  # 20/s: even zero budgets are unstable
        estimator.arrival(k % 2)
    assert controller.resolve().overloaded
    clock.now = 250.0  # the burst left the window; 0.24/s, whose optimum differs a little
    for k in range(24):
        estimator.arrival(k % 2)
    point = controller.at(estimator.estimate())
    assert tuple(thinkq.solve(point).budgets.tolist()) != first
    plan = controller.resolve()
    assert plan.budgets == first
    assert plan.switched
    assert controller.stable is plan
