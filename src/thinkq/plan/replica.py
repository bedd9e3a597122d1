"""One replica at one arrival rate: the most accurate budgets that meet the SLO there.

A replica at rate r is the profile's own server at rate r. :class:`Evaluator` answers
"can one replica carry r?" by :func:`thinkq.slo.solve_slo` at r (the most accurate
budgets meeting every objective; an objective that zero budgets miss is a ``no``),
then compares that accuracy with the floor ``min_accuracy``. Answers are cached per
rate, since the searches of :mod:`thinkq.plan.capacity` come back to the same ones.

:func:`lean_budgets` finds the other end of the same alpha path: the least-latency
budgets whose accuracy reaches the floor (zero budgets without one). Where they meet
the objectives, the replica carries r with this much headroom; where they miss, no
budgets on the path reach the floor within the SLO.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from thinkq import model
from thinkq._typing import IntArray
from thinkq.errors import ProfileError, SloError
from thinkq.profile import Profile
from thinkq.slo.constrained import solve_slo
from thinkq.slo.evaluate import Target, TimesFunction, mean_time
from thinkq.slo.result import SloResult
from thinkq.slo.search import MAX_ALPHA, MIN_ALPHA
from thinkq.solve import SolveResult, solve

__all__ = ["Evaluator", "Replica", "lean_budgets", "values"]

#: The largest factor of one bracketing step of alpha.
_MAX_STEP = 1e16
#: The floor's alpha is found to this relative precision.
_ALPHA_RTOL = 1e-7


@dataclass(frozen=True)
class Replica:
    """One replica at ``rate``: the most accurate budgets meeting the objectives.

    Attributes
    ----------
    rate:
        Arrivals at this replica, queries per second.
    feasible:
        Whether the objectives hold and the accuracy reaches the floor.
    reason:
        ``"met"``; ``"accuracy"`` (the objectives hold, the best accuracy is below the
        floor); ``"slo"`` (even zero budgets miss an objective); ``"unstable"`` (the
        queue is unstable even at zero budgets).
    budgets:
        Tokens per type: the SLO-constrained solve's, or zero where no budgets meet
        the objectives (the least latency there is).
    accuracy:
        sum_k pi_k p_k at the budgets (a fraction).
    achieved:
        Each objective's value at the budgets, seconds (``inf``: unstable).
    slo:
        The SLO-constrained solve, or ``None`` where it raised.
    """

    rate: float
    feasible: bool
    reason: str
    budgets: IntArray
    accuracy: float
    achieved: tuple[float, ...]
    slo: SloResult | None

    @property
    def shadow_price(self) -> float | None:
        """alpha* of the SLO-constrained solve (``None``: nothing binds, or no solve)."""
        return None if self.slo is None else self.slo.shadow_price


def values(
    profile: Profile, budgets: IntArray, targets: Sequence[Target], times: TimesFunction
) -> tuple[float, ...]:
    """Every objective's value at ``budgets``, seconds (all ``inf`` if unstable)."""
    if not math.isfinite(model.system_time(profile, budgets)):
        return (math.inf,) * len(targets)
    distribution = None
    out = []
    for target in targets:
        q = target.objective.percentile
        if q is None:
            out.append(mean_time(profile, budgets, target.task))
        else:
            distribution = distribution or times(profile, budgets)
            out.append(float(distribution.percentile(q, target.task)))
    return tuple(out)


def lean_budgets(profile: Profile, floor: float, options: dict[str, Any]) -> IntArray | None:
    """The budgets of ``thinkq.solve`` at the smallest alpha whose accuracy reaches
    ``floor``: along the alpha path, the least mean system time with that accuracy.

    Zero budgets when they reach it already; ``None`` when the path does not: every
    type with queries at l_max, or alpha so large that the solve stops converging
    (near the stability edge the path's accuracy levels off below the floor). The
    bracket grows by squared steps (2, 4, 16, ... at most 1e16), as the SLO search's.
    """
    zero = np.zeros(profile.size, dtype=np.int64)
    if model.mean_accuracy(profile, zero) >= floor:
        return zero
    positive = np.asarray(profile.share) > 0

    def at(alpha: float) -> SolveResult:
        return solve(profile.replace(alpha=alpha), **options)

    def reaches(result: SolveResult) -> bool:
        return result.accuracy >= floor

    hi = min(max(profile.alpha, MIN_ALPHA), MAX_ALPHA)
    best, step = at(hi), 2.0
    lo = hi
    while not reaches(best):
        saturated = bool(np.all(best.budgets[positive] >= profile.max_tokens))
        if saturated or not best.continuous.converged or hi >= MAX_ALPHA:
            return None
        lo, hi, step = hi, min(hi * step, MAX_ALPHA), min(step * step, _MAX_STEP)
        best = at(hi)
    while lo == hi or reaches(at(lo)):  # a lower alpha that misses the floor
        if lo <= MIN_ALPHA:
            return at(lo).budgets
        lo = max(lo / _MAX_STEP, MIN_ALPHA)
    while hi / lo - 1.0 > _ALPHA_RTOL:  # lo misses the floor, hi reaches it
        middle = math.sqrt(lo) * math.sqrt(hi)
        if not lo < middle < hi:
            break
        found = at(middle)
        lo, hi, best = (lo, middle, found) if reaches(found) else (middle, hi, best)
    return best.budgets


class Evaluator:
    """Answers for one replica at a rate, cached by rate."""

    def __init__(
        self,
        profile: Profile,
        targets: Sequence[Target],
        floor: float,
        times: TimesFunction,
        options: dict[str, Any],
    ) -> None:
        self.profile, self.targets, self.floor = profile, targets, floor
        self.times, self.options = times, options
        self._seen: dict[float, Replica] = {}

    @property
    def evaluations(self) -> int:
        """Distinct rates evaluated."""
        return len(self._seen)

    def at(self, rate: float) -> Replica:
        """One replica at ``rate`` (cached)."""
        if rate not in self._seen:
            self._seen[rate] = self._evaluate(rate)
        return self._seen[rate]

    def served(self, rate: float) -> Profile | None:
        """The profile at ``rate``, or ``None`` if unstable even at zero budgets."""
        try:
            return self.profile.replace(rate=rate)
        except ProfileError:  # unstable at zero budgets (or a rate past float range)
            return None

    def _evaluate(self, rate: float) -> Replica:
        zero = np.zeros(self.profile.size, dtype=np.int64)
        profile = self.served(rate)
        if profile is None:
            accuracy = model.mean_accuracy(self.profile, zero)
            infinite = (math.inf,) * len(self.targets)
            return Replica(rate, False, "unstable", zero, accuracy, infinite, None)
        objectives = [t.objective for t in self.targets]
        try:
            result = solve_slo(profile, objectives, times=self.times, **self.options)
        except SloError:
            achieved = values(profile, zero, self.targets, self.times)
            accuracy = model.mean_accuracy(profile, zero)
            return Replica(rate, False, "slo", zero, accuracy, achieved, None)
        feasible = result.accuracy >= self.floor
        reason = "met" if feasible else "accuracy"
        return Replica(
            rate, feasible, reason, result.budgets, result.accuracy, result.achieved, result
        )
