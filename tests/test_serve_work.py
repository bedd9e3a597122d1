"""The queue's virtual clock (Queue.work) and the refit's solo times on a batched server.

A request's solo service is the integral of tau(1) / tau(n) over its service (the
batched model's semantics). The queue integrates it; a request's change of it is its
solo time exactly, where its time over the slowdown at its mean batch is low
(tau(1) / tau(n) is convex in n): the bias that put the gateway's live prediction
low near capacity (docs/batching.md). Checked on an exact event simulation of the
semantics, driving the real Queue with the simulation's clock.
"""

from __future__ import annotations

import heapq

import numpy as np
import pytest

from fakes import Clock, profile
from thinkq.batching import Server
from thinkq.serve.queue import Queue
from thinkq.serve.refit import LatencyRefit

# llama-server --parallel 4 with SmolLM2 on 2 cores (benchmarks/smollm2_batched.toml)
LAW = Server(slots=4, tau0=0.0014, tau1=0.0055, steps=((1, 0.00685), (2, 0.01452), (4, 0.02153)))


def test_work_integrates_the_speed_of_the_batch() -> None:
    clock = Clock(10.0)
    queue = Queue(concurrency=4, max_queue=8, clock=clock)
    assert np.isnan(queue.work())  # no law: no clock
    queue.keep_work(LAW)
    assert queue.enter() is None
    clock.now += 2.0
    assert queue.enter() is None
    clock.now += 1.0
    assert queue.work() == pytest.approx(2.0 + LAW.speed(2))
    queue.release()
    queue.release()
    clock.now += 5.0  # nobody in service: the clock stands still
    assert queue.work() == pytest.approx(2.0 + LAW.speed(2))
    queue.keep_work(Server(slots=2, tau0=0.01, tau1=0.01))  # fewer slots than served at once
    assert np.isnan(queue.work())


def simulate(rate: float, solo: float, count: int, seed: int) -> list[tuple[float, ...]]:
    """Poisson arrivals of ``solo``-second queries on LAW (FIFO, 4 slots), the real Queue
    kept on the simulation's clock: per query (service, mean batch, change of work)."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate, count))
    clock = Clock(0.0)
    queue = Queue(concurrency=LAW.slots, max_queue=count, clock=clock)
    queue.keep_work(LAW)
    waiting: list[int] = []
    ends: list[tuple[float, int]] = []  # (virtual time of the end, query)
    start: dict[int, tuple[float, float, float]] = {}
    out: list[tuple[float, ...]] = []
    virtual, i = 0.0, 0

    def begin(q: int) -> None:
        assert queue.enter() is None  # a slot is free
        start[q] = (clock.now, queue.area(), queue.work())
        heapq.heappush(ends, (virtual + solo, q))

    while len(out) < count:
        speed = LAW.speed(len(ends)) if ends else 0.0
        done = clock.now + (ends[0][0] - virtual) / speed if ends else np.inf
        if i < count and arrivals[i] < done:
            virtual += speed * (arrivals[i] - clock.now)
            clock.now = float(arrivals[i])
            waiting.append(i)
            i += 1
        else:
            virtual, clock.now = ends[0][0], float(done)
            _, q = heapq.heappop(ends)
            t, area, work = start.pop(q)
            service = clock.now - t
            out.append((service, (queue.area() - area) / service, queue.work() - work))
            queue.release()
        while waiting and len(ends) < LAW.slots:
            begin(waiting.pop(0))
    return out


def test_the_clock_gives_each_query_its_solo_time_where_the_mean_batch_is_low() -> None:
    solo = 0.1
    rate = 0.7 * LAW.max_capacity / solo  # a mean batch near 3
    served = np.array(simulate(rate, solo, 4000, seed=1))
    service, batch, work = served.T
    assert 2.6 < float(np.mean(batch)) < 3.2
    np.testing.assert_allclose(work, solo, rtol=1e-9)  # exact, whatever the batch did
    by_mean = service * LAW.step_time(1) / LAW.step_times(batch)
    assert float(np.mean(by_mean)) < 0.97 * solo  # 4 % low, by Jensen's inequality


def test_the_refit_takes_solo_times_from_the_clock() -> None:
    p = profile(rate=4.0, server=LAW)
    served = simulate(0.7 * LAW.max_capacity / float(p.t0[0]), float(p.t0[0]), 600, seed=2)
    with_clock = LatencyRefit(p, window=1e6, clock=Clock(0.0), min_samples=10)
    by_batch = LatencyRefit(p, window=1e6, clock=Clock(0.0), min_samples=10)
    for service, batch, work in served:
        with_clock.observe(0, 0, service, batch, work)
        by_batch.observe(0, 0, service, batch)
    t0, _, _ = with_clock.fitted()
    assert t0[0] == pytest.approx(p.t0[0], rel=1e-9)
    low, _, _ = by_batch.fitted()
    assert low[0] < 0.98 * p.t0[0]
