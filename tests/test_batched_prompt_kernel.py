"""The batched kernel's prompt stage (``Server.prompt``, llama.cpp's semantics).

A query that takes a slot first has its prompt computed alone, at full speed, one at a
time, while every decoding sequence waits; the rest of its solo time decodes as before.
The reference is ``benchmarks/batch_prefill.py``'s ``serve``, the same semantics in
plain Python; with no prompt the kernel is the one it was, bit for bit.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

import bench_scripts
import thinkq
from thinkq import model
from thinkq.batching.kernel import BatchedQueue, departures
from thinkq.batching.server import Server
from thinkq.simulate.batched import run_batched
from thinkq.simulate.queueing import TypeSampler, lindley
from thinkq.simulate.simulator import _blocks


@pytest.fixture(scope="module")
def prefill() -> ModuleType:
    """``benchmarks/batch_prefill.py``, whose ``serve`` is the reference."""
    return bench_scripts.load("batch_prefill")


def bent(slots: int, prompt: float) -> Server:
    """A server whose step time bends (a ``steps`` table at every n up to ``slots``)."""
    steps = tuple((n, 0.02 * n**0.6) for n in range(1, slots + 1))
    return Server(slots, 0.02, 0.004, steps=steps, prompt=prompt)


def kernel(server: Server, arrivals: np.ndarray, work: np.ndarray) -> np.ndarray:
    """The kernel's departures on ``server``, its law passed as the simulator passes it."""
    tau0, tau1 = server.tail_line()
    return departures(arrivals, work, slots=server.slots, tau0=tau0, tau1=tau1,
                      table=server.step_table(), prompt=server.prompt)  # fmt: skip


def stream(
    rng: np.random.Generator, server: Server, size: int, load: float
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson arrivals and solo times (some below the prompt) at ``load`` of the
    saturated server's time (:meth:`Server.utilization`)."""
    work = server.prompt * rng.uniform(0.5, 1.5, size) + rng.gamma(0.5, 0.6, size)
    rate = load / server.utilization(1.0, float(work.mean()))
    return np.cumsum(rng.exponential(1.0 / rate, size)), work


# ------------------------------------------------------------------ no prompt: as before

ARRIVALS = np.array([0.0, 0.1, 0.25, 0.3, 0.9, 1.0, 1.05, 2.5, 2.6, 2.65])
WORK = np.array([1.0, 0.5, 0.2, 0.8, 0.05, 1.2, 0.3, 0.4, 0.4, 0.1])


def test_no_prompt_gives_the_departures_of_the_kernel_before_the_prompt_stage() -> None:
    # captured from the kernel before it had a prompt stage (3 slots, tau(n) = 1 + n / 2,
    # then a table): the same floats, bit for bit
    line = [1.5572916666666665, 0.8958333333333333, 0.5833333333333333, 1.911458333333333,
            0.9833333333333334, 2.6312499999999996, 2.0281249999999997, 3.072916666666667,
            3.1479166666666667, 2.816666666666667]  # fmt: skip
    table = [1.819230769230769, 1.019230769230769, 0.6499999999999999, 2.25,
             1.119230769230769, 3.266153846153846, 2.36, 3.2461538461538466,
             3.353153846153846, 3.3762307692307694]  # fmt: skip
    steps = np.array([1.0, 1.0, 1.3, 2.0])
    for prompt in ({}, {"prompt": 0.0}):
        got = departures(ARRIVALS, WORK, slots=3, tau0=1.0, tau1=0.5, **prompt)
        assert got.tolist() == line
        got = departures(ARRIVALS, WORK, slots=3, tau0=1.0, tau1=0.5, table=steps, **prompt)
        assert got.tolist() == table


def test_no_prompt_on_a_random_stream_is_the_kernel_without_one_and_the_reference(
    prefill: ModuleType,
) -> None:
    rng = np.random.default_rng(40)
    server = bent(4, 0.0)
    arrivals, work = stream(rng, server, 20_000, 0.85)
    tau0, tau1 = server.tail_line()
    plain = departures(arrivals, work, slots=4, tau0=tau0, tau1=tau1, table=server.step_table())
    np.testing.assert_array_equal(kernel(server, arrivals, work), plain)
    queue = BatchedQueue(4, tau0, tau1, server.step_table(), 0.0)
    blocked = np.full(arrivals.size, np.nan)
    gaps = np.diff(arrivals, prepend=0.0)
    for first in range(0, arrivals.size, 3_001):
        block = slice(first, first + 3_001)
        served = queue.arrive(gaps[block], work[block], np.arange(arrivals.size)[block])
        blocked[served.tags] = served.system
        assert served.decode == served.busy  # no prompt: every busy second decodes
    last = queue.drain()
    blocked[last.tags] = last.system
    np.testing.assert_allclose(blocked, plain - arrivals, rtol=0, atol=1e-9)
    expected = prefill.serve(arrivals, np.zeros(arrivals.size), work, server)
    np.testing.assert_allclose(plain - arrivals, expected, rtol=1e-9, atol=1e-9)
    assert np.max(expected - work) > 1.0  # queries did wait and share


# ------------------------------------------------------------ with a prompt: the reference


@pytest.mark.parametrize("slots", [1, 2, 4])
@pytest.mark.parametrize("prompt", [0.05, 0.3])
def test_the_prompt_stage_is_batch_prefills_serve(
    prefill: ModuleType, slots: int, prompt: float
) -> None:
    rng = np.random.default_rng(100 * slots + int(prompt * 100))
    server = bent(slots, prompt)
    arrivals, work = stream(rng, server, 20_000, 0.85)
    assert np.any(work < prompt)  # the decode is clamped at 0 for some
    got = kernel(server, arrivals, work) - arrivals
    decode = np.maximum(work - prompt, 0.0)
    expected = prefill.serve(arrivals, np.full(arrivals.size, prompt), decode, server)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    assert np.all(got >= np.maximum(work, prompt) - 1e-9)
    if slots > 1:  # the prompts stall the batch: later than without them
        without = kernel(bent(slots, 0.0), arrivals, work) - arrivals
        assert np.mean(got) > np.mean(without) * 1.05


def test_the_prompt_stage_is_the_reference_under_the_line_law(prefill: ModuleType) -> None:
    rng = np.random.default_rng(7)
    server = Server(3, 1.0, 0.25, prompt=0.2)
    arrivals, work = stream(rng, server, 10_000, 0.9)
    got = departures(arrivals, work, slots=3, tau0=1.0, tau1=0.25, prompt=0.2) - arrivals
    decode = np.maximum(work - 0.2, 0.0)
    expected = prefill.serve(arrivals, np.full(arrivals.size, 0.2), decode, server)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


def test_a_prompt_must_be_finite_seconds_at_least_zero() -> None:
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="prompt"):
            departures(ARRIVALS, WORK, slots=2, tau0=1.0, tau1=0.0, prompt=bad)
        with pytest.raises(ValueError, match="prompt"):
            BatchedQueue(2, 1.0, 0.0, prompt=bad)


# ----------------------------------------------------------------------- block by block


def test_blocks_do_not_change_a_run_with_prompts() -> None:
    rng = np.random.default_rng(41)
    server = bent(4, 0.1)
    arrivals, work = stream(rng, server, 30_000, 0.9)
    whole = kernel(server, arrivals, work) - arrivals
    tau0, tau1 = server.tail_line()
    queue = BatchedQueue(4, tau0, tau1, server.step_table(), 0.1)
    gaps = np.diff(arrivals, prepend=0.0)
    system, wait = np.full(arrivals.size, np.nan), np.full(arrivals.size, np.nan)
    area = busy = steps = decode = 0.0
    pending = 0  # blocks that ended with a prompt pending
    for first in range(0, arrivals.size, 997):
        block = slice(first, first + 997)
        served = queue.arrive(gaps[block], work[block], np.arange(arrivals.size)[block])
        system[served.tags], wait[served.tags] = served.system, served.wait
        area, busy = area + served.area, busy + served.busy
        steps, decode = steps + served.steps, decode + served.decode
        pending += int(queue.counts[3] > 0)
    last = queue.drain()
    system[last.tags], wait[last.tags] = last.system, last.wait
    assert pending > 3
    np.testing.assert_allclose(system, whole, rtol=0, atol=1e-9)
    assert np.all((wait >= 0) & (wait <= system - np.maximum(work, 0.1) + 1e-9))
    # in service from taking the slot, prompt included: Little's law on the slots
    assert area == pytest.approx(float(np.sum(system - wait)), rel=0.002)
    # every prompt is 0.1 s alone: the busy time not decoding is the prompts' time
    assert busy - decode == pytest.approx(0.1 * arrivals.size, rel=0.002)
    # the step-time integral runs over the decode time: between tau(1) and tau(4)
    assert server.step_time(1) < steps / decode < server.step_time(4)


# ------------------------------------------------------------------ one slot: Lindley


def test_one_slot_with_a_prompt_is_lindleys_fifo_queue() -> None:
    rng = np.random.default_rng(42)
    prompt = 0.25
    gaps = rng.exponential(1.0, 30_000)
    work = prompt + rng.gamma(0.5, 1.2, 30_000)  # load 0.85, every solo time above p
    waits, _ = lindley(gaps, work, (0.0, 0.0))
    arrivals = np.cumsum(gaps)
    got = departures(arrivals, work, slots=1, tau0=1.0, tau1=0.3, prompt=prompt) - arrivals
    np.testing.assert_allclose(got, waits + work, rtol=0, atol=1e-9)
    queue = BatchedQueue(1, 1.0, 0.3, prompt=prompt)
    blocked = np.full(gaps.size, np.nan)
    for first in range(0, gaps.size, 7_000):
        block = slice(first, first + 7_000)
        served = queue.arrive(gaps[block], work[block], np.arange(gaps.size)[block])
        blocked[served.tags] = served.system
        np.testing.assert_allclose(served.wait, waits[served.tags], rtol=0, atol=1e-9)
    last = queue.drain()
    blocked[last.tags] = last.system
    np.testing.assert_allclose(blocked, waits + work, rtol=0, atol=1e-9)
    assert waits.max() > 10


# ---------------------------------------------------------------------------- a long run


def test_a_long_run_with_prompts_agrees_with_the_reference(prefill: ModuleType) -> None:
    rng = np.random.default_rng(43)
    server = bent(4, 0.15)
    arrivals, work = stream(rng, server, 200_000, 0.7)
    got = kernel(server, arrivals, work) - arrivals
    decode = np.maximum(work - 0.15, 0.0)
    expected = prefill.serve(arrivals, np.full(arrivals.size, 0.15), decode, server)
    assert float(np.mean(got)) == pytest.approx(float(np.mean(expected)), rel=1e-9)
    # every query pays at least its own time alone, and at this load waits are short
    alone = np.maximum(work, 0.15)
    assert float(np.mean(alone)) < float(np.mean(got)) < 3 * float(np.mean(alone))


# -------------------------------------------------------------------- the simulator's path


def test_the_simulator_passes_the_servers_prompt_to_the_kernel() -> None:
    profile = thinkq.paper_profile().replace(rate=0.35)  # utilisation about 0.6 at one slot
    budgets = thinkq.solve(profile).continuous.budgets
    server = Server(4, 1.0, 0.1, prompt=0.1)
    rng = np.random.default_rng(44)
    tally = run_batched(profile, server, budgets, None, rng, _blocks(2_000, 20_000), None)
    mean = tally.simulation(profile, budgets, analytic=profile, warmup=2_000, seed=44)
    # the same stream by hand: per block the gaps, the types, then the accuracy draw
    rng, sampler = np.random.default_rng(44), TypeSampler(profile.share)
    service = profile.t0 + profile.c * budgets
    gaps, types, measured = [], [], []
    for batch, _, size in _blocks(2_000, 20_000):
        gaps.append(rng.exponential(1.0 / profile.rate, size))
        types.append(sampler.draw(rng, size))
        measured.append(np.full(size, batch >= 0))
        if batch >= 0:
            counts = np.bincount(types[-1], minlength=profile.size)
            rng.binomial(counts, model.accuracy(profile, budgets))
    arrivals, work = np.cumsum(np.concatenate(gaps)), service[np.concatenate(types)]
    system = kernel(server, arrivals, work) - arrivals
    keep = np.concatenate(measured)
    assert mean.mean_system_time == pytest.approx(float(np.mean(system[keep])), rel=1e-9)
    without = kernel(Server(4, 1.0, 0.1), arrivals, work) - arrivals
    assert float(np.mean(system[keep])) > float(np.mean(without[keep])) * 1.001


def test_ties_go_to_the_earlier_query_across_blocks_too(prefill: ModuleType) -> None:
    # 5 slots, prompts of 1 s, perfect batching: query 0 decodes 9 s; queries 1-6 decode
    # nothing (solo time below the prompt), so 1-3 finish at the same virtual time while
    # the clock stands still behind the prompts. They leave in index order, each freeing
    # the slot whose prompt holds the next one back 1 s; the first block ends at 4.5 s
    # with the heap holding them as [1, 3, 2, 0] and a prompt pending.
    arrivals = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 4.5, 20.0])
    work = np.array([10.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    expected = [16.0, 5.0, 6.0, 7.0, 7.0, 7.0, 7.0, 21.0]
    server = Server(5, 1.0, 0.0, prompt=1.0)
    decode = np.maximum(work - 1.0, 0.0)
    reference = prefill.serve(arrivals, np.ones(arrivals.size), decode, server) + arrivals
    assert reference.tolist() == expected
    got = departures(arrivals, work, slots=5, tau0=1.0, tau1=0.0, prompt=1.0)
    assert got.tolist() == expected
    queue = BatchedQueue(5, 1.0, 0.0, prompt=1.0)
    gaps = np.diff(arrivals, prepend=0.0)
    first = queue.arrive(gaps[:7], work[:7], np.arange(7))
    assert first.tags.size == 0  # none has left by 4.5 s
    assert (queue.counts[0], queue.counts[3]) == (4, 1)  # four decoding, one prompt
    second = queue.arrive(gaps[7:], work[7:], np.arange(7, 8))
    last = queue.drain()
    leave = np.full(8, np.nan)
    for served in (second, last):
        leave[served.tags] = served.system + arrivals[served.tags]
    np.testing.assert_allclose(leave, expected, rtol=0, atol=1e-12)
