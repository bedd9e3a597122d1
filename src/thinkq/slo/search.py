"""Maximise the weighted mean accuracy subject to latency objectives, along alpha.

The problem ``max_l sum_k pi_k p_k(l_k)  s.t.  E[T(l)] <= T*`` has the Lagrangian
``A(l) - mu (E[T(l)] - T*)``; dividing by mu, its maximiser is the paper's problem
(eq. 7) at alpha = 1 / mu. So the SLO-constrained budgets are ``thinkq.solve``'s at
the alpha where the mean meets its target: the shadow price alpha*. The integer
solve is piecewise constant in alpha, so alpha* is the largest alpha (to a relative
``rtol``) at which the integer budgets meet every objective. It is found by
bracketing geometrically from the profile's alpha (steps squared each time: 2, 4,
16, ...), then interpolating and bisecting on log alpha (:func:`_bisect`).

Percentile and per-type objectives follow the same path (``system_times`` is
monotone in alpha in practice, not by proof), and stop once the binding one is within
1e-5 of its target (:data:`VALUE_RTOL`); so does a mean objective of the integer
budgets, whose rounding (eq. 39) need not be monotone. As a guard, four alphas just
above the boundary are tried after the bisection (1 + 1e-6 to 1.3 times it); a
feasible one with more accuracy restarts the search from there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from thinkq import model
from thinkq._typing import IntArray
from thinkq.errors import SloError
from thinkq.profile import Profile
from thinkq.slo.evaluate import Measured, Target, TimesFunction, measure
from thinkq.slo.screen import Screen
from thinkq.solve import SolveResult, solve

__all__ = ["MAX_ALPHA", "MIN_ALPHA", "VALUE_RTOL", "AlphaPath", "PathPoint", "search"]

#: The path's alpha stays in [MIN_ALPHA, MAX_ALPHA].
MIN_ALPHA = 1e-300
MAX_ALPHA = 1e300
#: A path with a percentile or per-type objective stops once the objectives are
#: within this (relative) of their targets: below the percentiles' own accuracy.
VALUE_RTOL = 1e-5
#: The search starts at the profile's alpha clipped to this range: solves at extreme
#: alphas (1e300) are slow, and the bracket grows by squared steps from anywhere.
START_RANGE = (1e-6, 1e6)
#: The largest factor of one bracketing step.
_MAX_STEP = 1e16
#: Relative steps above the boundary tried for a feasible alpha the bisection missed.
_PROBES = (1e-6, 1e-4, 1e-2)
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

    def excess(self, targets: Sequence[Target]) -> float:
        """max_i log(value_i / target_i): <= 0 where every objective holds."""
        with np.errstate(divide="ignore"):
            pairs = zip(self.measured.values, targets, strict=True)
            ratios = [v / t.objective.target for v, t in pairs]
            return float(np.nanmax(np.log(ratios)))  # nan: a percentile not computed


class AlphaPath:
    """Integer solves along alpha (cold, as ``thinkq solve`` runs them), with the
    objectives measured once per distinct budget vector."""

    def __init__(
        self,
        profile: Profile,
        targets: Sequence[Target],
        times: TimesFunction,
        options: dict[str, Any],
        screen: Screen | None = None,
    ) -> None:
        self.profile, self.targets, self.times, self.options = profile, targets, times, options
        self.screen = screen
        self.solves = 0
        self.exact_evaluations = 0
        self.heuristic = not all(t.objective.exact for t in targets)
        self._measured: dict[bytes, Measured] = {}
        self._profiles: dict[float, Profile] = {}
        positive = np.asarray(profile.share) > 0
        self._positive = positive if positive.any() else np.ones(profile.size, dtype=bool)

    def close(self, point: PathPoint) -> bool:
        """Whether, on a path with a percentile or per-type objective, the objectives
        at ``point`` are within :data:`VALUE_RTOL` of their targets (a path of overall
        means only is never close: alpha* is pinned to ``rtol``)."""
        return self.heuristic and -point.excess(self.targets) <= VALUE_RTOL

    @property
    def evaluations(self) -> int:
        """Distinct budget vectors measured."""
        return len(self._measured)

    def measure(self, budgets: IntArray, *, exact: bool = False) -> Measured:
        """The objectives at ``budgets``: from the screen where it decides (unless
        ``exact``), else from ``times``; once per budget vector."""
        key = np.ascontiguousarray(budgets, dtype=np.int64).tobytes()
        known = self._measured.get(key)
        if known is not None and (known.exact or not exact):
            return known
        found = None if exact or self.screen is None else self.screen(budgets)
        if found is None:
            found = measure(self.profile, budgets, self.targets, self.times)
            self.exact_evaluations += 1
        self._measured[key] = found
        return found

    def exact(self, point: PathPoint) -> PathPoint:
        """``point`` with the objectives measured by ``times`` (not the screen)."""
        return point._replace(measured=self.measure(point.result.budgets, exact=True))

    def at(self, alpha: float) -> PathPoint:
        result = solve(self.profile_at(alpha), **self.options)
        self.solves += 1
        return PathPoint(alpha, result, self.measure(result.budgets))

    def profile_at(self, alpha: float) -> Profile:
        """The profile with this alpha (kept: the bracket's ends are asked for again)."""
        if alpha not in self._profiles:
            self._profiles[alpha] = self.profile.replace(alpha=alpha)
        return self._profiles[alpha]

    def saturated(self, point: PathPoint) -> bool:
        """Whether every type that receives queries is at l_max (alpha cannot add more)."""
        budgets = point.result.budgets[self._positive]
        return bool(np.all(budgets >= self.profile.max_tokens))


def _down(path: AlphaPath, hi: PathPoint) -> tuple[PathPoint, PathPoint]:
    """The first feasible point below ``hi`` by steps 2, 4, 16, ... (zero budgets hold),
    and the last infeasible one above it."""
    step = 2.0
    while True:
        alpha = hi.alpha / step
        if alpha < MIN_ALPHA:
            first = path.targets[0].objective
            raise SloError(
                f"slo: no alpha down to {MIN_ALPHA:g} gives budgets that meet {first}",
                objective=str(first),
                smallest=path.exact(hi).measured.values[0],
            )
        point = path.at(alpha)
        if point.feasible:
            return point, hi
        hi, step = point, min(step * step, _MAX_STEP)


def _up(path: AlphaPath, lo: PathPoint) -> tuple[PathPoint, PathPoint | None]:
    """The last feasible and first infeasible points above ``lo`` (None: none fails)."""
    step = 2.0
    while not path.saturated(lo) and lo.alpha < MAX_ALPHA:
        point = path.at(min(lo.alpha * step, MAX_ALPHA))
        if not point.feasible:
            return lo, point
        lo = point
        step = min(step * step, _MAX_STEP)
    return lo, None


def _next_alpha(
    path: AlphaPath, lo: PathPoint, hi: PathPoint, weights: tuple[float, float]
) -> float:
    """Regula falsi on (log alpha, excess) with the ends' excess scaled by ``weights``,
    kept 2% of the bracket from its ends; the midpoint where it is undefined."""
    x_lo, x_hi = math.log(lo.alpha), math.log(hi.alpha)
    g_lo = lo.excess(path.targets) * weights[0]
    g_hi = hi.excess(path.targets) * weights[1]
    fraction = 0.5
    if math.isfinite(g_lo) and math.isfinite(g_hi) and g_hi > 0 >= g_lo:
        fraction = min(max(-g_lo / (g_hi - g_lo), 0.02), 0.98)
    return math.exp(x_lo + fraction * (x_hi - x_lo))


def _around_tie(path: AlphaPath, lo: PathPoint, hi: PathPoint, rtol: float) -> list[float]:
    """Two alphas a quarter of ``rtol`` either side of where J(hi's budgets) and
    J(lo's budgets) tie, if inside the bracket (else none).

    J(l) = alpha A(l) - E[T(l)] (eq. 7) is linear in alpha, so the difference of two
    budget vectors' J vanishes at one alpha; where the integer solve switches from
    one to the other by comparing them (eq. 39), that is the switch, and the two
    solves there close the bracket to ``rtol`` in place of a bisection's ~20. Where
    the switch is elsewhere (the floor/ceil candidates change), the two solves still
    shrink the bracket, and bisection goes on.
    """
    a, b = lo.result.budgets, hi.result.budgets
    if np.array_equal(a, b):
        return []
    f_lo = model.objective_change(path.profile_at(lo.alpha), a, b)
    f_hi = model.objective_change(path.profile_at(hi.alpha), a, b)
    if not (math.isfinite(f_lo) and math.isfinite(f_hi) and f_lo < 0.0 < f_hi):
        return []
    tie = lo.alpha + f_lo / (f_lo - f_hi) * (hi.alpha - lo.alpha)
    return [tie * (1.0 - rtol / 4), tie * (1.0 + rtol / 4)]


def _bisect(
    path: AlphaPath, lo: PathPoint, hi: PathPoint, rtol: float
) -> tuple[PathPoint, PathPoint]:
    """Shrink [lo, hi] (lo feasible, hi not) to hi / lo - 1 <= rtol, on log alpha.

    Regula falsi with the Anderson-Bjorck weights (superlinear on smooth functions)
    on log alpha against the largest log(value / target), while the objectives
    change smoothly along the path: a few percentile computations where bisection
    needs one per halving. Once a step lands on budgets already measured (the path
    is a step function at that scale), bisection finishes, trying first where the
    two ends' budgets tie in J (:func:`_around_tie`); its solves are then mostly
    answered from the cache.
    """
    weights, side, smooth = [1.0, 1.0], -1, True
    pending: list[float] = []  # the second alpha at a tie, if the first lands below it
    tried: set[bytes] = set()
    while hi.alpha / lo.alpha - 1.0 > rtol and not path.close(lo):
        if smooth:
            alpha = _next_alpha(path, lo, hi, (weights[0], weights[1]))
        elif pending and lo.alpha < pending[0] < hi.alpha:
            alpha = pending.pop()
        else:
            pair = lo.result.budgets.tobytes() + hi.result.budgets.tobytes()
            pending = [] if pair in tried else _around_tie(path, lo, hi, rtol)
            tried.add(pair)
            alpha = pending.pop(0) if pending else math.sqrt(lo.alpha) * math.sqrt(hi.alpha)
        if not lo.alpha < alpha < hi.alpha:
            break
        seen, below = path.evaluations, lo.result.budgets
        point = path.at(alpha)
        if not np.array_equal(point.result.budgets, below):
            pending = []  # not lo's budgets below the tie: the switch is elsewhere
        new_side = 0 if point.feasible else 1
        replaced = (lo, hi)[new_side]
        if new_side == side:  # the other end kept twice: scale its excess down
            ratio = point.excess(path.targets) / replaced.excess(path.targets)
            m = 1.0 - ratio if math.isfinite(ratio) else 0.5
            weights[1 - new_side] *= m if m > 0 else 0.5
        weights[new_side], side = 1.0, new_side
        lo, hi = (point, hi) if point.feasible else (lo, point)
        smooth = smooth and path.evaluations > seen
    return lo, hi


def _probe(path: AlphaPath, lo: PathPoint, hi: PathPoint) -> PathPoint | None:
    """A feasible point just above ``hi`` with more accuracy than ``lo``, if one is seen."""
    for step in _PROBES:
        alpha = min(hi.alpha * (1.0 + step), MAX_ALPHA)
        point = path.at(alpha)
        if point.feasible and point.result.accuracy > lo.result.accuracy:
            return point
    return None


def search(path: AlphaPath, start: float, rtol: float) -> tuple[PathPoint, PathPoint | None]:
    """The last feasible point on the path (to ``rtol``) and the next, infeasible one.

    The search starts at ``start`` clipped to :data:`START_RANGE`. The caller has
    checked that zero budgets meet every objective.
    """
    first = path.at(min(max(start, START_RANGE[0]), START_RANGE[1]))
    lo, hi = (first, None) if first.feasible else _down(path, first)
    for attempt in range(_MAX_RESTARTS + 1):
        if hi is None:
            lo, hi = _up(path, lo)
            if hi is None:
                return lo, None
        lo, hi = _bisect(path, lo, hi, rtol)
        last = attempt == _MAX_RESTARTS or path.close(lo)  # within 1e-5: nothing to gain
        better = None if last else _probe(path, lo, hi)
        if better is None:
            break
        lo, hi = better, None
    return lo, hi
