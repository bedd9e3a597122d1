"""The simulator's building blocks: Lindley's recursion in blocks, Walker's alias
sampler, answer-time draws, and log-spaced histograms for percentiles.

All of them work on whole blocks of queries at once (numpy, no loop per query).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from thinkq._typing import FloatArray, IntArray
from thinkq.simulate.distributions import Distribution

__all__ = ["Histogram", "TypeSampler", "draw_answer_times", "lindley"]

_LOW = -20.0  # log2 of the smallest resolved time (about 1 microsecond)
_HIGH = 27.0  # log2 of the largest resolved time (about 4 years)


class Histogram:
    """Counts of times in log-spaced bins, with a bin for (near-)zero times."""

    def __init__(self, per_doubling: int, groups: int = 1) -> None:
        self.scale = per_doubling
        self.bins = int((_HIGH - _LOW) * per_doubling) + 2
        self.counts = np.zeros(groups * self.bins, dtype=np.int64)

    def index(self, values: FloatArray) -> IntArray:
        with np.errstate(divide="ignore"):
            position = np.log2(values)
        position -= _LOW
        position *= self.scale
        position += 1.0  # bin 0 holds the times below 2^_LOW s, zero included
        np.clip(position, 0.0, self.bins - 1, out=position)
        index: IntArray = position.astype(np.int64)
        return index

    def add(self, values: FloatArray, groups: IntArray | None = None) -> None:
        index = self.index(values)
        if groups is not None:
            index += groups * self.bins
        self.counts += np.bincount(index, minlength=self.counts.size)

    def quantile(self, q: float, group: int = 0) -> float:
        counts = self.counts[group * self.bins : (group + 1) * self.bins]
        total = int(counts.sum())
        if total == 0:
            return math.nan
        k = int(np.searchsorted(np.cumsum(counts), q * total))
        if k == 0:
            return 0.0
        # the geometric middle of bin k
        return float(2.0 ** (_LOW + (k - 0.5) / self.scale))


class TypeSampler:
    """Walker's alias method: a query type per uniform draw in O(1), for any N."""

    def __init__(self, share: FloatArray) -> None:
        n = share.size
        prob = share * n / share.sum()
        alias = np.zeros(n, dtype=np.int64)
        small = [k for k in range(n) if prob[k] < 1.0]
        large = [k for k in range(n) if prob[k] >= 1.0]
        while small and large:
            s, g = small.pop(), large.pop()
            alias[s] = g
            prob[g] -= 1.0 - prob[s]
            (small if prob[g] < 1.0 else large).append(g)
        for k in small + large:
            prob[k] = 1.0
        self.n, self.prob, self.alias = n, prob, alias

    def draw(self, rng: np.random.Generator, size: int) -> IntArray:
        if self.n == 1:
            return np.zeros(size, dtype=np.int64)
        scaled = rng.random(size) * self.n
        column = scaled.astype(np.int64)
        np.minimum(column, self.n - 1, out=column)
        result: IntArray = np.where(scaled - column < self.prob[column], column, self.alias[column])
        return result


def lindley(
    gaps: FloatArray, service: FloatArray, carry: tuple[float, float]
) -> tuple[FloatArray, tuple[float, float]]:
    """Waits of a block by Lindley's recursion, and the carry to the next block.

    W_n = max(0, W_{n-1} + X_n) with X_n = S_{n-1} - A_n; with Y_n = W_carry +
    sum_{i<=n} X_i the solution is W_n = Y_n - min(0, min_{k<=n} Y_k).
    """
    wait_carry, service_carry = carry
    increments = np.empty(gaps.size)
    increments[0] = service_carry - gaps[0]
    np.subtract(service[:-1], gaps[1:], out=increments[1:])
    walk = np.cumsum(increments)
    walk += wait_carry
    floor = np.minimum(walk, 0.0)
    np.minimum.accumulate(floor, out=floor)
    walk -= floor
    return walk, (float(walk[-1]), float(service[-1]))


def draw_answer_times(
    answers: Sequence[Distribution], types: IntArray, rng: np.random.Generator
) -> FloatArray:
    """One answer time per query, each from its type's distribution."""
    order = np.argsort(types, kind="stable")
    counts = np.bincount(types, minlength=len(answers))
    drawn = np.empty(types.size)
    position = 0
    sorted_values = np.empty(types.size)
    for k, n in enumerate(counts.tolist()):
        if n:
            sorted_values[position : position + n] = answers[k].sample(rng, n)
            position += n
    drawn[order] = sorted_values
    return drawn
