"""The three sums J is made of, for the integer searches (section III-E).

J depends on the budgets only through mean accuracy, E[S] and E[S^2] (eqs. 3, 7).
Moving one budget between its floor and ceiling changes each sum by a known amount,
so the J of any floor/ceil combination is exact and cheap: :class:`Sums` holds the
sums at a base point and each move's change, and evaluates P-K's J (eq. 7) on them.
"""

from __future__ import annotations

import numpy as np

from thinkq import model
from thinkq._typing import FloatArray, IntArray
from thinkq.profile import Profile

__all__ = ["Sums", "round_budgets"]


def round_budgets(profile: Profile, budgets: FloatArray) -> IntArray:
    """Eq. (40): the nearest integer budget (halves up), within [0, l_max]."""
    rounded = np.clip(np.floor(budgets + 0.5), 0, profile.max_tokens)
    return rounded.astype(np.int64)


class Sums:
    """The three sums J is made of, and the change each floor->ceil move brings."""

    def __init__(self, profile: Profile, base: FloatArray, index: IntArray) -> None:
        pi, c = profile.share, profile.c
        self.profile = profile
        t = model.service_time(profile, base)
        p = model.accuracy(profile, base)
        self.mean = float(np.dot(pi, t))
        self.second = float(np.dot(pi, t * t)) + profile.extra_second_moment
        self.acc = float(np.dot(pi, p))
        up = base[index] + 1.0
        t_up = profile.t0[index] + c[index] * up
        p_up = profile.A[index] * -np.expm1(-profile.b[index] * up) + profile.D[index]
        self.d_mean = pi[index] * c[index]
        self.d_second = pi[index] * (t_up - t[index]) * (t_up + t[index])
        self.d_acc = pi[index] * (p_up - p[index])

    def objective(self, acc: FloatArray, mean: FloatArray, second: FloatArray) -> FloatArray:
        rate = self.profile.rate
        slack = 1.0 - rate * mean
        with np.errstate(divide="ignore", invalid="ignore"):
            value = self.profile.alpha * acc - rate * second / (2.0 * slack) - mean
        result: FloatArray = np.where(slack > 0, value, -np.inf)
        return result
