"""The entry point: :func:`system_times` picks the method for the profile's server."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from thinkq import model
from thinkq.errors import UnstableLoadError
from thinkq.profile import Profile
from thinkq.simulate.distributions import Distribution
from thinkq.tails.exact import ExactLaw
from thinkq.tails.result import SystemTimes
from thinkq.tails.sampled import sampled_law
from thinkq.tails.service import mixture
from thinkq.tails.waiting import RESOLUTION, waiting_time

__all__ = ["system_times"]


def system_times(
    profile: Profile,
    budgets: ArrayLike,
    *,
    answer_times: Sequence[Distribution] | None = None,
    queries: int = 200_000,
    seed: int = 0,
    resolution: int = RESOLUTION,
) -> SystemTimes:
    """The distribution of the system time at ``budgets`` (tokens per type).

    On the paper's server (no ``[server]`` table, or one slot) the exact FIFO M/G/1
    law by the Pollaczek-Khinchine (Benes) formula (method ``"pk-transform"``,
    ``docs/slo.md``); ``queries`` and ``seed`` are then unused. On a batched server
    (``profile.batched``) the simulator's law from ``queries`` measured queries with
    ``seed`` (method ``"simulation"``), with batch-means confidence intervals.

    ``answer_times`` as in :func:`thinkq.simulate`: one distribution of the answer
    part X_k per type (mean t0_k); default the profile's own (deterministic, or
    lognormal where ``variance`` > 0). The exact method takes
    :class:`~thinkq.simulate.Deterministic`, :class:`~thinkq.simulate.Lognormal` and
    :class:`~thinkq.simulate.Empirical` answer times. ``resolution`` is the exact
    method's lattice cells per mean service time (coarser lattices are for screening,
    :mod:`thinkq.slo.screen`).

    Raises
    ------
    UnstableLoadError
        If the queue is unstable at ``budgets`` (rate * E[S] >= 1, or the slots'
        capacity on a batched server).
    ValueError
        Malformed budgets or answer times (the message names the argument).
    """
    l = np.asarray(budgets, dtype=np.float64)
    if l.shape != (profile.size,) or not np.all(np.isfinite(l)) or np.any(l < 0):
        raise ValueError(f"budgets: expected {profile.size} finite budgets >= 0")
    utilization = model.utilization(profile, l)
    if not utilization < 1.0:
        raise UnstableLoadError(
            f"budgets: the queue is unstable at these budgets (utilisation {utilization:.6g} >= 1)",
            field="budgets",
        )
    if profile.batched is not None:
        law, mean, done = sampled_law(profile, l, answer_times, queries=queries, seed=seed)
        return SystemTimes(
            method="simulation", names=profile.names, mean=mean, utilization=utilization,
            queries=done, level=law.level, law=law,
        )  # fmt: skip
    mix = mixture(profile, l, answer_times)
    wait = waiting_time(mix, profile.rate, resolution=resolution)
    mean = mix.mean + profile.rate * mix.second / (2.0 * (1.0 - wait.rho))  # eq. 6
    return SystemTimes(
        method="pk-transform", names=profile.names, mean=mean, utilization=wait.rho,
        queries=0, level=1.0, law=ExactLaw(mix, wait),
    )  # fmt: skip
