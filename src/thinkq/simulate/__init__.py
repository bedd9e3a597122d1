"""Simulation of the paper's server, a FIFO M/G/1 queue of budgeted queries, and of a
server that decodes several at once (a profile's ``[server]`` table).

:func:`simulate` runs the queue (:mod:`~thinkq.simulate.simulator`; the batched
server event by event in :mod:`~thinkq.simulate.batched`) on building
blocks that work on whole blocks of queries at once: Lindley's recursion, the type
sampler and the percentile histograms (:mod:`~thinkq.simulate.queueing`), and the
answer-time distributions that both sample and report their moments
(:mod:`~thinkq.simulate.distributions`).
"""

from thinkq.simulate.distributions import Deterministic, Distribution, Empirical, Lognormal
from thinkq.simulate.figures import ServerStatistics
from thinkq.simulate.simulator import Simulation, TaskStatistics, simulate

__all__ = [
    "Deterministic",
    "Distribution",
    "Empirical",
    "Lognormal",
    "ServerStatistics",
    "Simulation",
    "TaskStatistics",
    "simulate",
]
