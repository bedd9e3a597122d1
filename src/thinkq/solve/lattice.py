"""The batched J at many integer budget vectors that differ in a few types.

J = alpha * accuracy - F(E[S], E[S^2]) (eq. 7 with the batched delay law
:func:`thinkq.batching.delay`). For rows of budgets of the types ``index``, the other
types fixed, the three sums are vectorised and F costs one evaluation per row (O(1),
a few tens of microseconds). :meth:`Lattice.best` evaluates up to 4 rows exactly;
beyond, it screens them first and evaluates exactly only the best by the screen:

* up to 64 rows (the moves of a climb: a token or two on one or two budgets), F to
  second order around the rows' mean, or around a point whose law is known (the
  climb's current point: F22 = 0, exact in E[S^2]), an error of order dm1^3 for a
  spread dm1 in E[S]. The best row by the screen is evaluated exactly, and of the
  next three only those whose screen is within a margin of its exact J: a thousand
  times the screen's error seen at that row (the rows lie within a token or two of
  each other, so their errors are of one order) plus 1e-13 of J;
* beyond (a whole box), F is linear in E[S^2], F = F0(m1) + F2(m1) m2, and F0, F2
  are interpolated in m1 = E[S] by cubic Hermite splines through 16 exact evaluations
  with their exact derivatives (F0' = dF/dm1 at m2 = 0, F2' = d2F/dm1 dm2), an error
  of order h^4 for a node spacing h of a fifteenth of the rows' spread in E[S]; the
  64 best are evaluated exactly.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.interpolate import CubicHermiteSpline

from thinkq._typing import FloatArray, IntArray
from thinkq.batching.delay import Delay, delay
from thinkq.batching.server import Server
from thinkq.profile import Profile

__all__ = ["Center", "Lattice", "batched_values"]

#: Rows evaluated exactly (all of them, up to this many).
EXACT_ROWS = 4
#: Beyond this many rows the screen interpolates F (else: F to second order).
_TAYLOR_ROWS = 64
_NODES = 16


def batched_values(
    profile: Profile, server: Server, acc: FloatArray, mean: FloatArray, second: FloatArray
) -> FloatArray:
    """J = alpha * accuracy - F(E[S], E[S^2]) for each triple of sums (-inf if unstable)."""
    rate = profile.rate
    # Python floats: the law's scalar arithmetic is slower on numpy scalars
    pairs = zip(np.asarray(mean).tolist(), np.asarray(second).tolist(), strict=True)
    delays = [delay(server, rate, m1, m2).system_time for m1, m2 in pairs]
    values: FloatArray = profile.alpha * np.asarray(acc, dtype=np.float64) - np.array(delays)
    return values


class Center(NamedTuple):
    """A point's E[S], E[S^2] and its delay law: the screen's expansion point."""

    m1: float
    m2: float
    law: Delay


class Lattice:
    """J at rows of integer budgets for the types ``index``, the others as in ``base``."""

    def __init__(self, profile: Profile, server: Server, base: FloatArray, index: IntArray):
        self.profile, self.server, self.index = profile, server, index
        self.pi, self.t0, self.c = profile.share[index], profile.t0[index], profile.c[index]
        self.a, self.b, self.d = profile.A[index], profile.b[index], profile.D[index]
        others = np.ones(profile.size, dtype=bool)
        others[index] = False
        pi, t = profile.share[others], profile.t0[others] + profile.c[others] * base[others]
        accuracy = profile.A[others] * -np.expm1(-profile.b[others] * base[others])
        self.acc = float(np.dot(pi, accuracy + profile.D[others]))
        self.mean = float(np.dot(pi, t))
        self.second = float(np.dot(pi, t * t)) + profile.extra_second_moment

    def sums(self, rows: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Mean accuracy, E[S] and E[S^2] at each row (budgets of ``index``, tokens)."""
        t = self.t0 + self.c * rows
        accuracy = self.a * -np.expm1(-self.b * rows) + self.d
        return (
            self.acc + accuracy @ self.pi,
            self.mean + t @ self.pi,
            self.second + (t * t) @ self.pi,
        )

    def best(self, rows: FloatArray, center: Center | None = None) -> tuple[int, float, Center]:
        """The row with the largest J (exact; screened first beyond 4 rows), J, and the
        row as a :class:`Center`: the screen's expansion point for rows that move from
        it (default: the law at the rows' mean)."""
        acc, mean, second = self.sums(rows)
        values = np.full(len(rows), -math.inf)
        laws: dict[int, Delay] = {}
        if len(rows) <= EXACT_ROWS:
            for k in range(len(rows)):
                laws[k] = self._exact(acc, mean, second, k, values)
        elif len(rows) <= _TAYLOR_ROWS:
            screen = self._taylor(acc, mean, second, center)
            order = np.argsort(-screen, kind="stable")[:EXACT_ROWS].tolist()
            first = order[0]
            laws[first] = self._exact(acc, mean, second, first, values)
            exact = float(values[first])
            if math.isfinite(exact):
                margin = 1e3 * abs(exact - float(screen[first])) + 1e-13 * (1.0 + abs(exact))
                order = [k for k in order[1:] if screen[k] > exact - margin]
            for k in order:
                laws[k] = self._exact(acc, mean, second, k, values)
        else:
            screen = self._screen(acc, mean, second)
            keep = np.argpartition(-screen, _TAYLOR_ROWS - 1)[:_TAYLOR_ROWS]
            for k in keep.tolist():
                laws[k] = self._exact(acc, mean, second, k, values)
        k = int(np.argmax(values))
        law = laws[k] if k in laws else self._exact(acc, mean, second, k, values)
        return k, float(values[k]), Center(float(mean[k]), float(second[k]), law)

    def _exact(
        self, acc: FloatArray, mean: FloatArray, second: FloatArray, k: int, values: FloatArray
    ) -> Delay:
        """J at row ``k`` into ``values[k]``; its delay law."""
        law = delay(self.server, self.profile.rate, float(mean[k]), float(second[k]))
        values[k] = self.profile.alpha * float(acc[k]) - law.system_time
        return law

    def _taylor(
        self, acc: FloatArray, mean: FloatArray, second: FloatArray, center: Center | None
    ) -> FloatArray:
        """J with F to second order around ``center`` or the rows' mean (module docstring)."""
        p = self.profile
        if center is None:
            m1, m2 = float(mean.sum()) / mean.size, float(second.sum()) / second.size
            law = delay(self.server, p.rate, m1, m2)
        else:
            m1, m2, law = center
        if not math.isfinite(law.system_time):
            return self._screen(acc, mean, second)
        dm1, dm2 = mean - m1, second - m2
        f = law.system_time + law.d_mean * dm1 + law.d_second * dm2
        f += dm1 * (0.5 * law.d_mean_mean * dm1 + law.d_mean_second * dm2)
        screen: FloatArray = p.alpha * acc - f
        return screen

    def _screen(self, acc: FloatArray, mean: FloatArray, second: FloatArray) -> FloatArray:
        """J with F0 and F2 interpolated in E[S] (see the module docstring)."""
        p, server = self.profile, self.server
        stable = p.rate * mean < server.load_limit(p.rate)
        screen = np.full(mean.shape, -math.inf)
        if not np.any(stable):
            return screen
        low, high = float(np.min(mean[stable])), float(np.max(mean[stable]))
        if not high > low * (1.0 + 1e-12):
            law = delay(server, p.rate, low, 0.0)
            f = law.system_time + law.d_second * second[stable]
        else:
            nodes = np.linspace(low, high, _NODES)
            laws = [delay(server, p.rate, float(x), 0.0) for x in nodes]
            f0 = CubicHermiteSpline(nodes, [w.system_time for w in laws], [w.d_mean for w in laws])
            f2 = CubicHermiteSpline(
                nodes, [w.d_second for w in laws], [w.d_mean_second for w in laws]
            )
            f = f0(mean[stable]) + f2(mean[stable]) * second[stable]
        screen[stable] = p.alpha * acc[stable] - f
        return screen
