"""Simulation of the paper's server: a FIFO M/G/1 queue of budgeted queries.

:func:`simulate` runs the queue (:mod:`~thinkq.simulate.simulator`) on building
blocks that work on whole blocks of queries at once: Lindley's recursion, the type
sampler and the percentile histograms (:mod:`~thinkq.simulate.queueing`), and the
answer-time distributions that both sample and report their moments
(:mod:`~thinkq.simulate.distributions`).
"""

from thinkq.simulate.distributions import Deterministic, Distribution, Empirical, Lognormal
from thinkq.simulate.simulator import Simulation, TaskStatistics, simulate

__all__ = [
    "Deterministic",
    "Distribution",
    "Empirical",
    "Lognormal",
    "Simulation",
    "TaskStatistics",
    "simulate",
]
