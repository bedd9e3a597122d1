"""What objectives measure at given budgets: mean and percentile system times.

Means come from the model (eq. 6, or the batched law): the overall mean system time
E[W] + E[S], and for one task type E[W] + sigma t_k(l_k), with sigma the batch's
slowdown (1 on the paper's one-at-a-time server). Percentiles come from a
:data:`TimesFunction`, by default :func:`thinkq.tails.system_times` (the exact
M/G/1 distribution, or a simulation on a batched server), called at most once per
budget vector.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

import numpy as np

from thinkq import model
from thinkq._typing import IntArray
from thinkq.batching.delay import delay
from thinkq.profile import Profile
from thinkq.slo.objectives import Objective, resolve_task

__all__ = [
    "Measured",
    "Percentiles",
    "Target",
    "TimesFunction",
    "mean_values",
    "measure",
    "resolve",
]


class Percentiles(Protocol):
    """The distribution of the system time at one budget vector (seconds)."""

    @property
    def method(self) -> str:
        """How the distribution was computed (a numerical method, or ``"simulation"``)."""
        ...

    def percentile(self, p: float, task: int | None = None) -> float:
        """The p-th percentile, p in (0, 100), overall or of one task type."""
        ...


#: Budgets -> their system-time distribution (``thinkq.tails.system_times``'s shape).
TimesFunction = Callable[[Profile, IntArray], Percentiles]


class Target(NamedTuple):
    """An objective with its task resolved to an index of the profile."""

    objective: Objective
    task: int | None


class Measured(NamedTuple):
    """The objectives' values at one budget vector (seconds, ``inf`` if unstable).

    Where a mean objective fails, percentiles are not computed (``nan``): the
    budgets fail anyway. ``exact`` is False where the percentiles come from the
    coarse lattices of :mod:`~thinkq.slo.screen` (they decide feasibility, but are
    not the values to report).
    """

    values: tuple[float, ...]
    feasible: bool
    method: str | None
    exact: bool = True


def resolve(objectives: Sequence[Objective], profile: Profile) -> tuple[Target, ...]:
    """The objectives with their tasks looked up in ``profile`` (``ValueError``) and
    named as the profile spells them."""
    targets = []
    for o in objectives:
        k = resolve_task(o, profile.names)
        named = o if k is None else dataclasses.replace(o, task=profile.names[k])
        targets.append(Target(named, k))
    return tuple(targets)


def mean_time(profile: Profile, budgets: IntArray, task: int | None) -> float:
    """Mean system time, seconds: overall (eq. 6) or of type ``task``; inf if unstable."""
    if task is None:
        return model.system_time(profile, budgets)
    wait = model.waiting_time(profile, budgets)
    service = float(model.service_time(profile, budgets)[task])
    server = profile.batched
    if server is None or not np.isfinite(wait):
        return wait + service
    m = model.moments(profile, budgets)
    return wait + delay(server, profile.rate, m.mean, m.second).slowdown * service


def mean_values(
    profile: Profile, budgets: IntArray, targets: Sequence[Target]
) -> Measured | list[float]:
    """The mean objectives' values (``nan`` for percentiles), or the whole answer
    where the means decide it (unstable budgets, or a mean that fails)."""
    if not np.isfinite(model.system_time(profile, budgets)):  # unstable: nothing holds
        return Measured((float("inf"),) * len(targets), False, None)
    values = [
        mean_time(profile, budgets, t.task) if t.objective.percentile is None else math.nan
        for t in targets
    ]
    pairs = zip(values, targets, strict=True)
    if not all(math.isnan(v) or v <= t.objective.target for v, t in pairs):
        return Measured(tuple(values), False, None)  # a mean fails: no percentile needed
    return values


def measure(
    profile: Profile, budgets: IntArray, targets: Sequence[Target], times: TimesFunction
) -> Measured:
    """Every objective's value at ``budgets``; percentiles from one call of ``times``."""
    values = mean_values(profile, budgets, targets)
    if isinstance(values, Measured):
        return values
    distribution: Percentiles | None = None
    for i, target in enumerate(targets):
        q = target.objective.percentile
        if q is not None:
            distribution = distribution or times(profile, budgets)
            values[i] = float(distribution.percentile(q, target.task))
    feasible = all(v <= t.objective.target for v, t in zip(values, targets, strict=True))
    method = None if distribution is None else distribution.method
    return Measured(tuple(values), feasible, method)
