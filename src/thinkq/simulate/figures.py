"""The server's figures in a simulation: its mean batch and step time, beside the model's.

A profile with a ``[server]`` table (:class:`thinkq.batching.Server`) gets them in
:attr:`thinkq.simulate.Simulation.server`; the model's come from
:func:`thinkq.batching.delay` (Pollaczek-Khinchine's at one slot).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from thinkq import model
from thinkq._typing import FloatArray
from thinkq.batching.delay import Delay, delay
from thinkq.batching.server import Server
from thinkq.profile import Profile

__all__ = ["ServerStatistics", "model_delay", "server_statistics"]


@dataclass(frozen=True)
class ServerStatistics:
    """The server's ``[server]`` table and its figures, simulated beside the model.

    ``mean_batch`` is the time-average number of queries in service and ``step_time``
    the time-average decode-step time tau(n) while at least one is in service
    (s); ``analytic_mean_batch`` and ``analytic_step_time`` are the model's
    (:class:`thinkq.batching.Delay` ``batch`` and ``step``).
    """

    slots: int
    tau0: float
    tau1: float
    mean_batch: float
    analytic_mean_batch: float
    step_time: float
    analytic_step_time: float


def model_delay(profile: Profile, budgets: FloatArray) -> Delay | None:
    """The model's figures on the profile's server (P-K's at one slot); None without one."""
    server = profile.server
    if server is None:
        return None
    m = model.moments(profile, budgets)
    return delay(server, profile.rate, m.mean, m.second)


def server_statistics(
    server: Server,
    figures: Delay,
    *,
    work: float,
    span: float,
    area: float,
    busy: float,
    steps: float = math.nan,
    decode: float = math.nan,
) -> ServerStatistics:
    """The figures from a run's totals over the measured arrivals' span (s).

    ``work`` is the solo work that arrived, ``area`` the integral of the number in
    service and ``busy`` the time with one or more in service (the last two from the
    batched kernel). With one slot the number in service is 1 while busy, so its mean
    is the fraction of time busy, ``work / span`` as in the utilisation, and every
    step takes tau(1). With a prompt stage the step is the mean over the time some
    query decodes and no prompt runs (``decode``), as the model's.
    """
    if server.single:
        batch, step = work / span, server.step_time(1)
    else:
        batch = area / span
        # the time-average step while busy: the line's at the mean batch, a table's from
        # the integral the kernel keeps
        step = server.step_time(area / busy if busy > 0 else 1.0)
        if server.steps and busy > 0:
            step = steps / busy
        if server.prompt and decode > 0:
            step = steps / decode
    return ServerStatistics(
        slots=server.slots,
        tau0=server.tau0,
        tau1=server.tau1,
        mean_batch=float(batch),
        analytic_mean_batch=float(figures.batch),
        step_time=float(step),
        analytic_step_time=float(figures.step),
    )
