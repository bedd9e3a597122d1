"""The paper's objective with its per-profile constants, for solvers that evaluate it often.

:class:`Workspace` computes J's gradient (eqs. 10, 15), its Hessian's parts (eqs. 33,
34) and exact changes of J under Pollaczek-Khinchine with the per-type constants
(pi c, alpha A b, ...) computed once; :class:`Point` holds what one evaluation shares.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from thinkq._shapes import HessianParts, Moments, moments_of
from thinkq._typing import FloatArray
from thinkq.profile import Profile

__all__ = ["Point", "Workspace"]


class Point(NamedTuple):
    """J's ingredients at one budget vector, shared by the derivatives and line search."""

    budgets: FloatArray
    service: FloatArray
    decay: FloatArray
    moments: Moments


class Workspace:
    """A profile's constant coefficients, for solvers that evaluate J many times.

    The same formulas as the functions above (eqs. 3, 7, 10, 15, 33, 34), with the
    per-type constants (pi c, alpha A b, ...) computed once and exp(-b l), t and the
    moments shared between the gradient, the Hessian and the line search.
    """

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        pi, c = profile.share, profile.c
        self.pc = pi * c
        self.pc2 = self.pc * c
        self.gain = profile.alpha * profile.A * profile.b
        self.pi_gain = pi * self.gain
        self.pi_curvature = self.pi_gain * profile.b
        self.pi_a = pi * profile.A

    def point(self, budgets: FloatArray) -> Point:
        p = self.profile
        t = p.t0 + p.c * budgets
        return Point(budgets, t, np.exp(-p.b * budgets), moments_of(p, t))

    def derivatives(self, x: Point) -> tuple[FloatArray, HessianParts]:
        """The gradient (10, 15) and the Hessian parts (33, 34) at a stable point."""
        rate, m = self.profile.rate, x.moments
        d = m.slack
        v = self.pc * x.service
        # pi_k c_k (1 + lambda t_k / D + lambda^2 E[S^2] / (2 D^2)): the marginal cost
        cost = self.pc * (1.0 + rate * rate * m.second / (2.0 * d * d)) + (rate / d) * v
        grad = self.pi_gain * x.decay - cost
        diagonal = self.pi_curvature * x.decay + (rate / d) * self.pc2
        # products, not **: a float power raises OverflowError (rate = 1e308 with t0 = 0)
        cubic = rate * rate * rate * m.second / (d * d * d)
        parts = HessianParts(diagonal, self.pc, v, rate * rate / (d * d), cubic)
        return grad, parts

    def change(self, x: Point, y: Point) -> float:
        """J(y) - J(x) without cancellation (see :func:`objective_change`)."""
        p, m = self.profile, x.moments
        if y.moments.slack <= 0:
            return float("-inf")
        dl = y.budgets - x.budgets
        pcdl = self.pc * dl
        ds = float(np.add.reduce(pcdl))
        dq = float(np.dot(pcdl, x.service + y.service))
        slack_new = m.slack - p.rate * ds
        if slack_new <= 0:
            return float("-inf")
        # e^{-b l} - e^{-b l'} = sign(dl) e^{-b min(l, l')} (1 - e^{-b |dl|}): no overflow
        # whichever way the budget moves (a falling saturated budget would give 0 * inf)
        nearer = np.where(dl >= 0, x.decay, y.decay)
        gain = np.sign(dl) * nearer * -np.expm1(-p.b * np.abs(dl))
        d_acc = float(np.dot(self.pi_a, gain))
        d_wait = p.rate * (dq * m.slack + m.second * p.rate * ds) / (2.0 * m.slack * slack_new)
        return p.alpha * d_acc - d_wait - ds
