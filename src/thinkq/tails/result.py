"""What :func:`~thinkq.tails.system_times` returns: the law of the system time.

:class:`SystemTimes` answers percentiles, CDF values and (for a simulated law) an
interval for a percentile, overall (a random query: the share mixture) or for one
query type. The numbers come from a :class:`Law`: the exact FIFO M/G/1 one
(:mod:`~thinkq.tails.exact`) or a simulated one (:mod:`~thinkq.tails.sampled`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from thinkq._typing import FloatArray, IntArray

__all__ = ["Law", "SystemTimes"]


class Law(Protocol):
    """A system-time law: quantiles, CDF values and percentile intervals."""

    def quantiles(self, q: FloatArray, task: IntArray | None) -> FloatArray:
        """The q-quantiles (q in (0, 1)), seconds: overall (``task`` None) or per pair."""
        ...

    def cdf(self, t: float, task: int | None) -> float:
        """P(T <= t), overall or of one type."""
        ...

    def interval(self, q: float, task: int | None) -> tuple[float, float]:
        """A confidence interval of the q-quantile (the value twice if exact)."""
        ...


@dataclass(frozen=True)
class SystemTimes:
    """The distribution of the system time (wait plus service, seconds).

    Attributes
    ----------
    method:
        ``"pk-transform"``: FIFO M/G/1, the Pollaczek-Khinchine (Benes) formula
        inverted numerically (exact up to a lattice error far below 1e-4 of a
        percentile); ``"simulation"``: the batched server, simulated, with
        confidence intervals (:meth:`interval`).
    names:
        The query types, in the profile's order (``task`` indexes them).
    mean:
        The mean system time of a random query, seconds.
    utilization:
        rho = lambda E[S] (M/G/1), or the offered work over the slots' capacity.
    queries:
        Simulated queries behind the figures (0 for the exact method).
    level:
        Confidence level of :meth:`interval` (1.0 for the exact method).
    law:
        The :class:`Law` behind the figures (:class:`~thinkq.tails.exact.ExactLaw` or
        :class:`~thinkq.tails.sampled.SampledLaw`).
    """

    method: str
    names: tuple[str, ...]
    mean: float
    utilization: float
    queries: int
    level: float
    law: Law = field(repr=False, compare=False)

    def percentile(self, p: float, task: int | None = None) -> float:
        """The p-th percentile (p in (0, 100)), seconds: the smallest t with
        P(T <= t) >= p / 100; of a random query (``task`` None) or of one type."""
        q = np.array([_fraction(p)])
        if task is None:
            return float(self.law.quantiles(q, None)[0])
        return float(self.law.quantiles(q, np.array([self._task(task)]))[0])

    def percentiles(self, ps: Sequence[float]) -> tuple[FloatArray, FloatArray]:
        """Several percentiles at once: overall, shape (len(ps),), and per type, shape
        (N, len(ps)), seconds."""
        q = np.array([_fraction(p) for p in ps], dtype=np.float64)
        n = len(self.names)
        overall = self.law.quantiles(q, None)
        tasks = np.repeat(np.arange(n, dtype=np.int64), q.size)
        per_task = self.law.quantiles(np.tile(q, n), tasks).reshape(n, q.size)
        return overall, per_task

    def cdf(self, t: float, task: int | None = None) -> float:
        """P(T <= t) for a time t in seconds, overall or of one type."""
        if isinstance(t, bool) or not isinstance(t, (int, float, np.number)) or math.isnan(t):
            raise ValueError(f"t: expected a time in seconds, got {t!r}")
        return self.law.cdf(float(t), None if task is None else self._task(task))

    def interval(self, p: float, task: int | None = None) -> tuple[float, float]:
        """A confidence interval (level :attr:`level`) for the p-th percentile, seconds;
        for the exact method the percentile itself, twice."""
        q = _fraction(p)
        return self.law.interval(q, None if task is None else self._task(task))

    def _task(self, task: int) -> int:
        n = len(self.names)
        if isinstance(task, bool) or not isinstance(task, (int, np.integer)):
            raise ValueError(f"task: expected a type index in [0, {n}), got {task!r}")
        if not 0 <= task < n:
            raise ValueError(f"task: expected a type index in [0, {n}), got {task}")
        return int(task)


def _fraction(p: float) -> float:
    """p / 100 after checking that p is a number in (0, 100)."""
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)):
        raise ValueError(f"p: expected a percentile in (0, 100), got {p!r}")
    if not 0 < p < 100:  # nan fails too
        raise ValueError(f"p: expected a percentile in (0, 100), got {p!r}")
    return float(p) / 100.0
