"""The simulator's batched server: a profile whose ``[server]`` table has several slots.

The same stream as the FIFO M/G/1 path of :mod:`~thinkq.simulate.simulator` (Poisson
arrivals, types from the shares, solo service times c_k l_k + X_k), served event by
event by :class:`thinkq.batching.kernel.BatchedQueue` (numba, imported on first use)
block by block. A query is tallied when it leaves, under the batch of its arrival, so
the batch means, percentiles and per-type figures are those of the FIFO path; the
arrivals' span also carries the time-average number in service, for the mean batch
and step time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from thinkq import model
from thinkq._typing import FloatArray, IntArray
from thinkq.batching.server import Server
from thinkq.profile import Profile
from thinkq.simulate.distributions import Distribution
from thinkq.simulate.queueing import TypeSampler, draw_answer_times
from thinkq.simulate.results import Tally

__all__ = ["run_batched"]


def run_batched(
    profile: Profile,
    server: Server,
    budgets: FloatArray,
    answers: Sequence[Distribution] | None,
    rng: np.random.Generator,
    blocks: Iterator[tuple[int, int, int]],
    tick: Callable[[int], None] | None,
) -> Tally:
    """Serve the queries block by block on ``server`` and add up the measured ones.

    ``blocks`` yields (batch, first query, size), batch -1 for the warm-up;
    ``tick(done)`` is called after each block with the queries that arrived so far.
    """
    from thinkq.batching.kernel import BatchedQueue  # numba: only when it is used

    types_count = profile.size
    sampler = TypeSampler(profile.share)
    thinking = profile.c * budgets
    service_of = thinking + profile.t0
    correct_of = model.accuracy(profile, budgets)
    tally = Tally(types_count)
    queue = BatchedQueue(server.slots, *server.tail_line(), server.step_table(), server.prompt)
    for batch, start, size in blocks:
        gaps = rng.exponential(1.0 / profile.rate, size)
        types = sampler.draw(rng, size)
        work = service_of[types]
        if answers is not None:
            work = thinking[types] + draw_answer_times(answers, types, rng)
        # a query's tag is its type and the batch it arrived in (-1 for the warm-up)
        served = queue.arrive(gaps, work, (batch + 1) * types_count + types)
        if batch >= 0:
            counts = np.bincount(types, minlength=types_count)
            correct = rng.binomial(counts, correct_of)
            tally.arrived(batch, gaps, float(work.sum()), counts=counts, correct=correct)
            tally.area += served.area
            tally.busy_time += served.busy
            tally.step_time += served.steps
            tally.decode_time += served.decode
        _add_served(tally, served.tags, served.wait, served.system, types_count)
        if tick is not None:
            tick(start + size)
    last = queue.drain()
    _add_served(tally, last.tags, last.wait, last.system, types_count)
    return tally


def _add_served(
    tally: Tally, tags: IntArray, wait: FloatArray, system: FloatArray, types_count: int
) -> None:
    """Add the measured queries among those served, each under its arrival's batch."""
    if tags.size == 0:
        return
    batches, types = np.divmod(tags, types_count)
    low, high = int(batches.min()), int(batches.max())  # a block or two: few labels
    for label in range(max(low, 1), high + 1):  # label 0 is the warm-up
        if low == high:
            k, w, t = types, wait, system
        else:
            mine = batches == label
            k, w, t = types[mine], wait[mine], system[mine]
        if k.size == 0:
            continue
        sums = np.asarray(np.bincount(k, weights=t - w, minlength=types_count), float)
        tally.served(label - 1, k, w, t, service_sums=sums)
