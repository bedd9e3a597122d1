"""Maximise the weighted mean accuracy subject to latency objectives, along alpha.

The problem ``max_l sum_k pi_k p_k(l_k)  s.t.  E[T(l)] <= T*`` has the Lagrangian
``A(l) - mu (E[T(l)] - T*)``; dividing by mu, its maximiser is the paper's problem
(eq. 7) at alpha = 1 / mu. So the SLO-constrained budgets are ``thinkq.solve``'s at
the alpha where the mean meets its target: the shadow price alpha*. The integer
solve is piecewise constant in alpha, so alpha* is the largest alpha (to a relative
``rtol``) at which the integer budgets meet every objective. It is found by
bracketing geometrically from the profile's alpha (steps squared each time: 2, 4,
16, ...) and bisecting on log alpha.

Percentile and per-type objectives follow the same path (``system_times`` is
monotone in alpha in practice, not by proof); so does a mean objective of the integer
budgets, whose rounding (eq. 39) need not be monotone. As a guard, four alphas just
above the boundary are tried after the bisection (1 + 1e-6 to 1.3 times it); a
feasible one with more accuracy restarts the search from there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from thinkq._typing import IntArray
from thinkq.errors import SloError
from thinkq.profile import Profile
from thinkq.slo.evaluate import Measured, Target, TimesFunction, measure
from thinkq.solve import SolveResult, solve

__all__ = ["MAX_ALPHA", "MIN_ALPHA", "Path", "PathPoint", "search"]

#: The path's alpha stays in [MIN_ALPHA, MAX_ALPHA].
MIN_ALPHA = 1e-300
MAX_ALPHA = 1e300
#: The largest factor of one bracketing step.
_MAX_STEP = 1e16
#: Relative steps above the boundary tried for a feasible alpha the bisection missed.
_PROBES = (1e-6, 1e-3, 0.03, 0.3)
#: At most this many restarts from a probe.
_MAX_RESTARTS = 8


class PathPoint(NamedTuple):
    """The integer solve at one alpha and the objectives' values there."""

    alpha: float
    result: SolveResult
    measured: Measured

    @property
    def feasible(self) -> bool:
        return self.measured.feasible


class Path:
    """Integer solves along alpha (cold, as ``thinkq solve`` runs them), with the
    objectives measured once per distinct budget vector."""

    def __init__(
        self,
        profile: Profile,
        targets: Sequence[Target],
        times: TimesFunction,
        options: dict[str, Any],
    ) -> None:
        self.profile, self.targets, self.times, self.options = profile, targets, times, options
        self.solves = 0
        self._measured: dict[bytes, Measured] = {}
        positive = np.asarray(profile.share) > 0
        self._positive = positive if positive.any() else np.ones(profile.size, dtype=bool)

    @property
    def evaluations(self) -> int:
        """Distinct budget vectors measured."""
        return len(self._measured)

    def measure(self, budgets: IntArray) -> Measured:
        key = np.ascontiguousarray(budgets, dtype=np.int64).tobytes()
        if key not in self._measured:
            self._measured[key] = measure(self.profile, budgets, self.targets, self.times)
        return self._measured[key]

    def at(self, alpha: float) -> PathPoint:
        result = solve(self.profile.replace(alpha=alpha), **self.options)
        self.solves += 1
        return PathPoint(alpha, result, self.measure(result.budgets))

    def saturated(self, point: PathPoint) -> bool:
        """Whether every type that receives queries is at l_max (alpha cannot add more)."""
        budgets = point.result.budgets[self._positive]
        return bool(np.all(budgets >= self.profile.max_tokens))


def _down(path: Path, hi: PathPoint) -> PathPoint:
    """The first feasible point below ``hi`` by steps 2, 4, 16, ... (zero budgets hold)."""
    step = 2.0
    while True:
        alpha = hi.alpha / step
        if alpha < MIN_ALPHA:
            first = path.targets[0].objective
            raise SloError(
                f"slo: no alpha down to {MIN_ALPHA:g} gives budgets that meet {first}",
                objective=str(first),
                smallest=hi.measured.values[0],
            )
        point = path.at(alpha)
        if point.feasible:
            return point
        step = min(step * step, _MAX_STEP)


def _up(path: Path, lo: PathPoint) -> tuple[PathPoint, PathPoint | None]:
    """The last feasible and first infeasible points above ``lo`` (None: none fails)."""
    step = 2.0
    while not path.saturated(lo) and lo.alpha < MAX_ALPHA:
        point = path.at(min(lo.alpha * step, MAX_ALPHA))
        if not point.feasible:
            return lo, point
        lo = point
        step = min(step * step, _MAX_STEP)
    return lo, None


def _bisect(path: Path, lo: PathPoint, hi: PathPoint, rtol: float) -> tuple[PathPoint, PathPoint]:
    """Shrink [lo, hi] (lo feasible, hi not) to hi / lo - 1 <= rtol, on log alpha."""
    while hi.alpha / lo.alpha - 1.0 > rtol:
        mid = math.sqrt(lo.alpha) * math.sqrt(hi.alpha)
        if not lo.alpha < mid < hi.alpha:
            break
        point = path.at(mid)
        lo, hi = (point, hi) if point.feasible else (lo, point)
    return lo, hi


def _probe(path: Path, lo: PathPoint, hi: PathPoint) -> PathPoint | None:
    """A feasible point just above ``hi`` with more accuracy than ``lo``, if one is seen."""
    for step in _PROBES:
        alpha = min(hi.alpha * (1.0 + step), MAX_ALPHA)
        point = path.at(alpha)
        if point.feasible and point.result.accuracy > lo.result.accuracy:
            return point
    return None


def search(path: Path, start: float, rtol: float) -> tuple[PathPoint, PathPoint | None]:
    """The last feasible point on the path (to ``rtol``) and the next, infeasible one.

    The caller has checked that zero budgets meet every objective.
    """
    first = path.at(min(max(start, MIN_ALPHA), MAX_ALPHA))
    lo, hi = (first, None) if first.feasible else (_down(path, first), first)
    for attempt in range(_MAX_RESTARTS + 1):
        if hi is None:
            lo, hi = _up(path, lo)
            if hi is None:
                return lo, None
        lo, hi = _bisect(path, lo, hi, rtol)
        better = None if attempt == _MAX_RESTARTS else _probe(path, lo, hi)
        if better is None:
            break
        lo, hi = better, None
    return lo, hi
