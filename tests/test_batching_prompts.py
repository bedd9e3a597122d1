"""The prompt stage of the batched model: the (N, j) chain, the delay law on it, the
server's load limit, the profile's checks, the solver on it and the gateway's refit."""

from __future__ import annotations

import json
import math
from types import ModuleType

import numpy as np
import pytest

import bench_scripts
import thinkq
from thinkq.batching import Server, delay
from thinkq.batching.prompts import prompt_chain
from thinkq.errors import ProfileError
from thinkq.profile import profile_from_dict
from thinkq.serve.queue import Queue
from thinkq.serve.refit import LatencyRefit, held_prompt

STEPS = ((1, 0.00716), (2, 0.01467), (3, 0.02070), (4, 0.02176))


def _reference() -> ModuleType:
    """``benchmarks/prefill_chain.py``: the chain built state by state, independently."""
    return bench_scripts.load("prefill_chain")


def _server(prompt: float, slots: int = 4) -> Server:
    steps = tuple(point for point in STEPS if point[0] <= slots)
    return Server(slots=slots, tau0=0.00135, tau1=0.00605, steps=steps, prompt=prompt)


@pytest.mark.parametrize(
    ("rate", "m1", "prompt", "slots"),
    [(12.988, 0.078, 0.0296, 4), (6.0, 0.078, 0.0296, 4), (3.0, 0.2, 0.05, 2), (9.0, 0.1, 0.01, 3)],
)
def test_the_chain_is_the_state_by_state_chain(
    rate: float, m1: float, prompt: float, slots: int
) -> None:
    server = _server(prompt, slots)
    c = prompt_chain(server, rate, m1)
    exact = _reference().chain(rate, prompt, m1 - prompt, _server(0.0, slots), 600)
    assert (c.batch + c.waiting) / rate == pytest.approx(exact, rel=1e-9)
    # exponential service (cs^2 = 1): the delay law is the chain itself, to the digit
    law = delay(server, rate, m1, 2.0 * m1 * m1)
    assert law.system_time == pytest.approx(exact, rel=1e-9)
    assert law.batch == pytest.approx(c.batch)
    assert 0.0 < law.busy < 1.0


@pytest.mark.parametrize("m2_ratio", [1.0001, 1.5, 2.0, 3.0])
def test_the_derivatives_are_those_of_the_law(m2_ratio: float) -> None:
    server, rate, m1 = _server(0.0296), 11.0, 0.078
    m2 = m2_ratio * m1 * m1
    h = 1e-6
    at = delay(server, rate, m1, m2)
    up, down = delay(server, rate, m1 + h, m2), delay(server, rate, m1 - h, m2)
    assert at.d_mean == pytest.approx((up.system_time - down.system_time) / (2 * h), rel=1e-6)
    assert at.d_mean_mean == pytest.approx((up.d_mean - down.d_mean) / (2 * h), rel=1e-5)
    right, left = delay(server, rate, m1, m2 + h), delay(server, rate, m1, m2 - h)
    assert at.d_second == pytest.approx((right.system_time - left.system_time) / (2 * h), rel=1e-6)
    assert at.d_mean_second == pytest.approx((right.d_mean - left.d_mean) / (2 * h), rel=1e-5)


@pytest.mark.parametrize(("rate", "m1", "ratio"), [(12.988, 0.078, 1.3), (5.0, 0.1, 2.5)])
def test_a_vanishing_prompt_is_the_single_phase_model(rate: float, m1: float, ratio: float) -> None:
    old = delay(_server(0.0), rate, m1, ratio * m1 * m1)
    new = delay(_server(1e-8), rate, m1, ratio * m1 * m1)
    for field in ("system_time", "waiting_time", "batch", "d_mean", "d_second"):
        assert getattr(new, field) == pytest.approx(getattr(old, field), rel=1e-5), field


def test_the_prompt_costs_time_and_capacity() -> None:
    rate, m1 = 10.0, 0.078
    times = [delay(_server(p), rate, m1, 1.5 * m1 * m1).system_time for p in (0.0, 0.01, 0.03)]
    assert times[0] < times[1] < times[2]
    server = _server(0.03)
    limit = server.rate_limit(m1)
    assert server.utilization(limit, m1) == pytest.approx(1.0)
    assert limit * m1 == pytest.approx(server.load_limit(limit))
    assert limit < _server(0.0).rate_limit(m1)
    assert math.isinf(delay(server, limit * 1.001, m1, m1 * m1).system_time)
    assert math.isfinite(delay(server, limit * 0.999, m1, m1 * m1).system_time)


def test_the_server_checks_its_prompt() -> None:
    with pytest.raises(ProfileError, match=r"server\.prompt.*>= 0"):
        _server(-0.1)
    with pytest.raises(ProfileError, match=r"server\.prompt.*number"):
        _server("0.1")  # type: ignore[arg-type]
    with pytest.raises(ProfileError, match=r"server\.prompt.*at most 32"):
        Server(slots=64, tau0=0.01, tau1=0.001, prompt=0.01)
    table = _server(0.0296).to_dict()
    assert table["prompt"] == 0.0296
    assert "prompt" not in _server(0.0).to_dict()
    assert "prompts 0.0296 s alone" in _server(0.0296).law


def _profile(prompt: float, rate: float = 8.0) -> thinkq.Profile:
    return thinkq.Profile.from_arrays(
        server=_server(prompt), names=["a", "b"], share=[0.5, 0.5], A=[0.4, 0.6],
        b=[0.04, 0.04], D=[0.17, 0.04], t0=[0.038, 0.126], c=[0.0089, 0.0070],
        variance=[0.0088, 0.0062], rate=rate, alpha=8.0, max_tokens=64,
    )  # fmt: skip


def test_a_profile_keeps_its_prompt_within_every_solo_time() -> None:
    with pytest.raises(ProfileError, match=r"server\.prompt.*below the mean solo time"):
        _profile(0.09)
    with pytest.raises(thinkq.UnstableLoadError, match="less the prompts"):
        _profile(0.05, rate=14.0)
    again = profile_from_dict(json.loads(json.dumps(_profile(0.03).to_dict())))
    assert again.server == _server(0.03)


def test_the_solver_finds_the_best_budgets_with_a_prompt_stage() -> None:
    profile = _profile(0.03)
    result = thinkq.solve(profile)
    budgets = np.asarray(result.budgets, dtype=float)
    best = thinkq.model.objective(profile, budgets)
    for k in range(profile.size):
        for step in (-1.0, 1.0):
            other = budgets.copy()
            other[k] = min(max(other[k] + step, 0.0), profile.max_tokens)
            assert thinkq.model.objective(profile, other) <= best + 1e-12
    # the stall makes the optimum shorter than without it, at the same load
    assert sum(result.budgets) < sum(thinkq.solve(_profile(0.0)).budgets)


def test_the_refit_counts_a_querys_own_prompt_at_full_speed() -> None:
    now = [0.0]
    refit = LatencyRefit(_profile(0.01), window=1e6, clock=lambda: now[0], min_samples=5)
    for k in range(12):  # six of each type, served in a mean batch of 3
        refit.observe(k % 2, 0, 0.2, 3.0, math.nan if k < 6 else 0.05)
    server = refit.server()
    assert server == _server(0.01)  # a measured step table and its prompt, kept
    t0 = refit.fitted()[0]
    speed = server.speed(3.0)
    # type 0: three by the slowdown (the prompt at full speed), three by the clock
    by_slowdown, by_clock = 0.2 * speed + 0.01 * (1 - speed), 0.05 + 0.01
    assert t0[0] == pytest.approx((by_slowdown + by_clock) / 2)
    plain = LatencyRefit(_profile(0.0), window=1e6, clock=lambda: now[0], min_samples=5)
    for k in range(12):
        plain.observe(k % 2, 0, 0.2, 3.0, math.nan)
    assert plain.fitted()[0][0] == pytest.approx(0.2 * speed)


def test_a_learned_prompt_is_held_below_the_solo_times() -> None:
    held = held_prompt(_server(0.2), np.array([0.5, 0.5]), np.array([0.1, 0.2]))
    assert held is not None
    assert held.prompt == pytest.approx(0.9 * 0.15)
    assert held_prompt(_server(0.0), np.array([1.0]), np.array([0.1])) == _server(0.0)
    assert held_prompt(None, np.array([1.0]), np.array([0.1])) is None


def test_the_gateways_clock_stands_still_while_prompts_stall_the_batch() -> None:
    now = [0.0]
    queue = Queue(concurrency=4, max_queue=10, clock=lambda: now[0])
    server = _server(0.1)
    queue.keep_work(server)
    assert queue.stall == 0.1
    assert queue.enter() is None  # a slot at 0: its prompt stalls the clock until 0.1
    now[0] = 0.2
    assert queue.work() == pytest.approx(0.1)  # decoding alone from 0.1, at speed 1
    assert queue.enter() is None  # a second at 0.2: stalled until 0.3
    now[0] = 0.25
    assert queue.enter() is None  # a third at 0.25: its prompt after the second's, to 0.4
    now[0] = 0.5
    assert queue.work() == pytest.approx(0.1 + 0.1 * server.speed(3))
    queue.release()
    queue.release()
    queue.release()
    # without a prompt stage the clock runs whenever a request is in service
    plain = Queue(concurrency=4, max_queue=10, clock=lambda: now[0])
    plain.keep_work(_server(0.0))
    assert plain.enter() is None
    now[0] = 0.7
    assert plain.work() == pytest.approx(0.2)
