"""The global search of the batched solver: J maximised at each level of E[S].

For a fixed load level m1 = a the batched delay is F(a, m2) = F(a, 0) + F2(a) m2 (F is
linear in m2), so the best budgets with sum_k pi_k t_k(l_k) = a maximise

    alpha sum_k pi_k p_k(l_k) - F2(a) sum_k pi_k t_k(l_k)^2

over the box: a concave objective (p_k concave, t_k^2 convex, F2 >= 0) under one
linear constraint. Its solution is each type's best response (eq. 19) to the marginal
costs (mu, F2(a)), :func:`thinkq.batching.objective.respond`, with the multiplier mu
chosen so that the constraint holds; the projected response is monotone in mu, so mu
is found by a safeguarded Newton search, O(N) per trial.

The profile J*(a) = max {J(l) : E[S(l)] = a} is a function of one variable, and
max_a J*(a) = max_l J(l): a scan over a finds the basin of the global optimum, wherever
J itself is not concave; :func:`peaks` hands its best local maxima to the polish. Each
level also carries the slope of the profile, by the envelope theorem

    dJ*/da = mu - F0'(a) - F2'(a) m2(a),    F(a, m2) = F0(a) + F2(a) m2,

so that a coarse scan can tell a single peak (:func:`single_peak`) and place a level
at the top of the cubic through its two neighbours (:func:`hermite_top`; both in
:mod:`thinkq.batching.peaks`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from thinkq._typing import FloatArray
from thinkq.batching.delay import Delay, delay
from thinkq.batching.objective import BatchedWorkspace
from thinkq.batching.peaks import Level
from thinkq.profile import Profile

__all__ = ["Levels"]

_MU_STEPS = 80
_MU_RTOL = 1e-10
#: A scan's level stops within this fraction of the grid's spacing (or its rtol).
_SPACING = 0.1
#: The smallest multiplier tried (a level beyond it is out of reach).
_TINY = 1e-300


class _Spend(NamedTuple):
    """The spend sum pi c l(mu, F2) of one response, with its derivatives."""

    mu: float
    f2: float
    spend: float
    slope: float  # d spend / d mu
    weight: FloatArray  # -d l / d mu, per type (0 at a bound)
    budgets: FloatArray

    def d_f2(self, profile: Profile) -> float:
        """d spend / d F2 (for the next level's first trial only: computed on demand)."""
        return -2.0 * float(np.dot(self.weight, profile.t0 + profile.c * self.budgets))


class Levels:
    """Solves the problem at fixed E[S] = a, warm-starting each level from the last.

    ``evaluations`` counts the O(N) best-response evaluations done so far.
    """

    def __init__(self, ws: BatchedWorkspace) -> None:
        p = ws.profile
        self.ws = ws
        self.base = float(np.dot(p.share, p.t0))
        self.top = float(np.dot(p.share, p.t0 + p.c * p.max_tokens))
        active = p.share > 0
        self.active = active
        self.curvature = p.alpha * p.A * p.b * p.b  # alpha A b^2, per type
        self.c2 = p.c * p.c
        self.pc2 = p.share * self.c2
        self.minus_b = -p.b
        self.gain = p.alpha * p.A * p.b / p.c
        # the bracket's ingredients, on the active types only
        self.gain_low, self.t0_active = self.gain[active], p.t0[active]
        self.gain_top = (self.gain * np.exp(-p.b * p.max_tokens))[active]
        self.t_max = (p.t0 + p.c * p.max_tokens)[active]
        self.last: _Spend | None = None
        self.evaluations = 0

    def grid(self, points: int) -> FloatArray:
        """``points`` levels from E[S(0)] up to E[S(l_max)] or C(B) / lambda, seconds.

        Evenly spaced; E[S(l_max)] is the last level where the capacity is beyond it,
        else the levels stop a step short of the capacity, where J* tends to -inf (a
        level there would only cost evaluations, in the delay law's worst numerics).
        """
        cap = self.ws.server.load_limit(self.ws.profile.rate) / self.ws.profile.rate
        if not min(self.top, cap) > self.base:
            return np.array([self.base])
        if self.top < cap:
            return np.linspace(self.base, self.top, points)
        return np.linspace(self.base, cap, points + 1)[:-1]

    def _bracket(self, f2: float) -> tuple[float, float]:
        """Multipliers at which every active type takes l_max (low) and 0 tokens (high)."""
        top = float((self.gain_low - (2.0 * f2) * self.t0_active).max())
        bottom = float((self.gain_top - (2.0 * f2) * self.t_max).min())
        below = bottom * (1.0 - 1e-9) if bottom >= 0.0 else bottom * (1.0 + 1e-9) - 1e-300
        return below, top + 1e-9 * abs(top) + 1e-300

    def _spend(self, mu: float, f2: float) -> tuple[FloatArray, _Spend]:
        """Projected responses to (mu, f2), their sum pi c l and its derivatives."""
        self.evaluations += 1
        l, inside = self.ws.respond.projected(mu, f2)
        # dl/dmu = -c / (alpha A b^2 e^{-b l} + 2 F2 c^2) for the types strictly inside,
        # dl/dF2 = -2 c t / (the same)
        denominator = self.curvature * np.exp(self.minus_b * l) + (2.0 * f2) * self.c2
        # (inside solve's errstate: a denominator that underflows gives no Newton step)
        weight = np.where(inside, self.pc2 / denominator, 0.0)
        slope = -float(np.add.reduce(weight))
        return l, _Spend(mu, f2, float(np.dot(self.ws.pc, l)), slope, weight, l)

    def solve(self, a: float, *, rtol: float = _MU_RTOL) -> Level:
        """The budgets maximising J subject to E[S] = ``a`` (see :meth:`_solve`)."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return self._solve(a, rtol=rtol)

    def _solve(self, a: float, *, rtol: float) -> Level:
        """The budgets maximising J subject to E[S] = ``a``, by safeguarded Newton on mu.

        The spend sum pi c l(mu) decreases in mu from s(l_max) to 0 across the bracket
        of :meth:`_bracket`; Newton steps (:class:`_Root`), the first predicted from the
        last level, stop within ``rtol`` (relative to the range of E[S]) of the
        target. J at the budgets found is then :meth:`_value`'s: a looser ``rtol``
        gives a point a little off the level, still feasible.
        """
        p = self.ws.profile
        target, top = a - self.base, float(p.max_tokens)
        law = delay(self.ws.server, p.rate, a, 0.0)
        f2 = law.d_second if math.isfinite(law.d_second) else 0.0
        scale = max(self.top - self.base, 1e-300)
        low, high = self._bracket(f2)
        if target <= 0.0 or target >= scale * (1.0 - 1e-12):  # all at 0, or all at l_max
            # mu: where the first type starts spending, or the last one stops
            mu, l = (high, np.zeros(p.size)) if target <= 0.0 else (low, np.full(p.size, top))
            return self.level(a, mu, l, law)
        root = _Root(low, high)
        # start from the last level's Newton prediction (its spend moved to this level's
        # F2 to first order), or from F1 (the multiplier at a KKT point is F1 there; at
        # m2 = 0 it is a guess)
        mu = law.d_mean if low < law.d_mean < high else root.next(math.nan, 0.0, 0.0)
        last = self.last
        if last is not None:
            moved = last.spend + last.d_f2(p) * (f2 - last.f2)
            mu = root.next(last.mu, (moved if math.isfinite(moved) else last.spend) - target,
                           last.slope)  # fmt: skip
        l, before = np.zeros(p.size), math.nan
        for _ in range(_MU_STEPS):
            l, self.last = self._spend(mu, f2)
            spend, slope = self.last.spend, self.last.slope
            gap = spend - target
            if abs(gap) <= rtol * scale or abs(spend - before) <= _MU_RTOL * scale:
                break  # on target, or stalled in a jump of the spend (unreachable level)
            if not root.update(mu, gap):
                break
            mu, before = root.next(mu, gap, slope), spend
            if math.isnan(mu):
                break
        return self.level(a, mu, l, law)

    def level(self, a: float, mu: float, l: FloatArray, law: Delay) -> Level:
        """The level of budgets ``l`` (responses to mu, aimed at ``a``), J and its slope.

        The level is E[S] at ``l`` itself: within the tolerance of ``a``.
        """
        value, f1, m1 = self._value(l, law, a)
        slope = mu - f1  # the envelope theorem
        return Level(m1, mu, l, value, slope if math.isfinite(slope) else math.nan)

    def _value(self, l: FloatArray, law: Delay, a: float) -> tuple[float, float, float]:
        """J at ``l`` (eq. 7), dF/dm1 and E[S] there, from the delay law at level ``a``.

        F(m1, m2) = F(a, 0) + F2(a) m2 exactly where m1 = a (F is linear in m2). A
        point a little off its level (|m1 - a| = d) adds F1 d + F0'' d^2 / 2 (F0 =
        F(., 0)), leaving out terms of order 1e-4 of that correction where F0' and F2
        change by at most 1e-2 over d: far below what ranks the levels (d is at most
        the level tolerance); the polish evaluates J exactly from its start.
        Elsewhere (farther off, near the capacity), J and dF/dm1 come from the delay
        law at the point itself.
        """
        p, ws = self.ws.profile, self.ws
        t = p.t0 + p.c * l
        weighted = p.share * t
        m1 = float(np.add.reduce(weighted))
        d = m1 - a
        m2 = float(np.dot(weighted, t)) + p.extra_second_moment
        accuracy = ws.floor - float(np.dot(ws.pi_a, np.expm1(self.minus_b * l)))
        f = law.system_time + law.d_second * m2
        f1 = law.d_mean + law.d_mean_second * m2
        # F0 and F2 (F = F0 + F2 m2) must change little over d: the terms left out,
        # d^3 F0'''/6 + d^2 F2'' m2/2, are then of order 1e-4 of F0' d and F2' d m2
        slow = abs(law.d_mean_mean * d) <= 1e-2 * abs(law.d_mean) and abs(
            law.d_mean_second * d
        ) <= 1e-2 * abs(law.d_second)
        if not slow:  # far off the level, or near the capacity: the law at the point
            law = delay(ws.server, p.rate, m1, m2)
            return p.alpha * accuracy - law.system_time, law.d_mean, m1
        if d != 0.0:
            f += d * (f1 + 0.5 * law.d_mean_mean * d)
            f1 += law.d_mean_mean * d
        return p.alpha * accuracy - f, f1, a + d

    def scan(self, points: int, *, rtol: float = _MU_RTOL) -> list[Level]:
        """J*(a) at ``points`` levels from E[S(0)] to min(E[S(l_max)], C(B) / lambda).

        Each level stops within ``rtol`` of the range of E[S] or within a tenth of the
        grid's spacing, whichever is looser: a level is exact wherever it lands (the
        best budgets at their own E[S], with J and the slope there), and a tenth of the
        spacing keeps the levels in order and spread.
        """
        self.last = None
        grid = self.grid(points)
        spacing = float(grid[-1] - grid[0]) / max(grid.size - 1, 1)
        loose = max(rtol, _SPACING * spacing / max(self.top - self.base, 1e-300))
        # one errstate for every level: the responses run without their own (entering
        # one costs about a microsecond, and a scan makes a few dozen responses)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return [self._solve(float(a), rtol=loose) for a in grid]


class _Root:
    """A bracket (low, high) on mu for :meth:`Levels.solve`.

    :meth:`next` takes a Newton step if it stays inside (in log mu where mu > 0 and
    the root cannot be negative: a type's response is about linear in log mu), else
    bisects asinh(mu / 1e-3): geometric for |mu| above 1e-3, so a bracket spanning
    decades shrinks in a few steps whatever its signs. Where Newton's step in logs
    lands below double range (a flat spend far from the target, e.g. most types at 0
    with no warm start), the step goes halfway there in logs instead; NaN: the root
    is out of reach (below 1e-297).
    """

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def update(self, mu: float, gap: float) -> bool:
        """Shrink the bracket to mu; False once it is too narrow to go on."""
        if gap > 0.0:
            self.low = mu
        else:
            self.high = mu
        width = self.high - self.low
        return width > 1e-12 * max(abs(self.low), abs(self.high)) and width > 1e-290

    def next(self, mu: float, gap: float, slope: float) -> float:
        low, high = self.low, self.high
        if slope < 0.0:
            step = mu - gap / slope
            if mu > 0.0 and (step > 0.0 or low >= 0.0):
                exponent = -gap / (slope * mu)
                if math.log(mu) + exponent < -690.0:  # Newton's mu is below double range
                    floor = max(low, _TINY)
                    if not (mu > 1e3 * _TINY and high > floor):
                        return math.nan  # there already: the level is out of reach
                    return math.sqrt(floor * min(mu, high))  # halfway there in logs
                step = mu * math.exp(min(exponent, 700.0))
            if low < step < high:
                return step
        s = 1e-3
        middle = s * math.sinh(0.5 * (math.asinh(low / s) + math.asinh(high / s)))
        return middle if low < middle < high else 0.5 * (low + high)
