"""System times of the batched server, from simulation (no closed form exists).

:func:`sampled_law` runs the batched server of :mod:`thinkq.simulate.batched` on the
same random stream as :func:`thinkq.simulate` with the same seed (the same warm-up of
``queries // 10``, the same 20 contiguous batches and the same draws, accuracy
included), but keeps every measured query's system time and type, so that any
percentile is an exact sample quantile rather than a histogram bin.

A percentile's confidence interval comes from the batches (sectioning): the
p-quantile of each of the 20 batches of consecutive arrivals, whose spread gives a
Student-t half-width (level :data:`~thinkq.simulate.results.LEVEL`) around the
quantile of all the measured queries. Batches of a long run are nearly independent
even where consecutive system times are strongly correlated, which an order-statistic
bound for independent samples would ignore.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from scipy import stats

from thinkq import model
from thinkq._typing import FloatArray, IntArray
from thinkq.profile import Profile
from thinkq.simulate.answers import answer_distributions
from thinkq.simulate.distributions import Distribution
from thinkq.simulate.queueing import TypeSampler, draw_answer_times
from thinkq.simulate.results import BATCHES, LEVEL

__all__ = ["SampledLaw", "sampled_law"]

_BLOCK = 1 << 18  # the simulator's block of queries


class SampledLaw:
    """Exact sample quantiles of the measured system times, with batch intervals."""

    level = LEVEL

    def __init__(self, system: FloatArray, types: IntArray, batches: IntArray) -> None:
        order = np.argsort(system, kind="stable")
        self.system, self.types, self.batches = system[order], types[order], batches[order]

    def _values(self, task: int | None, batch: int | None = None) -> FloatArray:
        keep = np.ones(self.system.size, dtype=bool)
        if task is not None:
            keep &= self.types == task
        if batch is not None:
            keep &= self.batches == batch
        return self.system[keep]  # sorted

    def quantiles(self, q: FloatArray, task: IntArray | None) -> FloatArray:
        """Sample q-quantiles (numpy's ``'inverted_cdf'``), overall or per pair (s)."""
        if task is None:
            return _quantile(self.system, q)
        out = np.empty(q.size)
        for k in np.unique(task):
            mine = task == k
            out[mine] = _quantile(self._values(int(k)), q[mine])
        return out

    def cdf(self, t: float, task: int | None) -> float:
        """The fraction of measured queries (of type ``task``) done within t seconds."""
        values = self._values(task)
        if values.size == 0:
            return math.nan
        return float(np.searchsorted(values, t, side="right") / values.size)

    def interval(self, q: float, task: int | None) -> tuple[float, float]:
        """The batch-means confidence interval of the q-quantile (s)."""
        centre = float(_quantile(self._values(task), np.array([q]))[0])
        each = np.array(
            [_quantile(self._values(task, b), np.array([q]))[0] for b in range(BATCHES)]
        )
        each = each[np.isfinite(each)]
        if each.size < 2:
            return (math.nan, math.nan)
        half = stats.t.ppf(0.5 + LEVEL / 2, each.size - 1) * each.std(ddof=1)
        half /= math.sqrt(each.size)
        return (centre - float(half), centre + float(half))


def _quantile(sorted_values: FloatArray, q: FloatArray) -> FloatArray:
    """The smallest sample x with (samples <= x) / n >= q, for each q; nan if empty."""
    n = sorted_values.size
    if n == 0:
        return np.full(q.shape, math.nan)
    index = np.clip(np.ceil(q * n).astype(np.int64) - 1, 0, n - 1)
    return np.asarray(sorted_values[index], float)


def sampled_law(
    profile: Profile,
    budgets: FloatArray,
    answer_times: Sequence[Distribution] | None,
    *,
    queries: int,
    seed: int,
) -> tuple[SampledLaw, float, int]:
    """Simulate the batched server: the law, the mean system time (s) and the queries."""
    from thinkq.batching.kernel import BatchedQueue  # numba: only when it is used

    if isinstance(queries, bool) or not isinstance(queries, int) or queries < BATCHES * 10:
        raise ValueError(f"queries: expected an integer >= {BATCHES * 10}, got {queries!r}")
    server = profile.batched
    assert server is not None
    answers = answer_distributions(profile, answer_times)
    n = profile.size
    rng = np.random.default_rng(seed)
    sampler = TypeSampler(profile.share)
    thinking = profile.c * budgets
    service_of = thinking + profile.t0
    correct_of = model.accuracy(profile, budgets)
    queue = BatchedQueue(server.slots, *server.tail_line(), server.step_table(), server.prompt)
    kept: list[tuple[IntArray, FloatArray]] = []
    for batch, size in _blocks(queries // 10, queries):
        gaps = rng.exponential(1.0 / profile.rate, size)
        types = sampler.draw(rng, size)
        work = service_of[types]
        if answers is not None:
            work = thinking[types] + draw_answer_times(answers, types, rng)
        served = queue.arrive(gaps, work, (batch + 1) * n + types)
        if batch >= 0:  # the simulator's accuracy draw, to stay on its stream
            rng.binomial(np.bincount(types, minlength=n), correct_of)
        kept.append((served.tags, served.system))
    last = queue.drain()
    kept.append((last.tags, last.system))
    tags = np.concatenate([t for t, _ in kept])
    system = np.concatenate([s for _, s in kept])
    labels, types = np.divmod(tags, n)
    measured = labels >= 1
    law = SampledLaw(system[measured], types[measured], labels[measured] - 1)
    return law, float(system[measured].mean()), int(measured.sum())


def _blocks(warmup: int, queries: int) -> Iterator[tuple[int, int]]:
    """(batch, size) of each block: the warm-up (batch -1), then the batches."""
    edges = [warmup + queries * b // BATCHES for b in range(BATCHES + 1)]
    segments = [(-1, 0, warmup)] + [(b, edges[b], edges[b + 1]) for b in range(BATCHES)]
    for batch, first, last in segments:
        for start in range(first, last, _BLOCK):
            yield batch, min(_BLOCK, last - start)
