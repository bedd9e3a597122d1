"""Shapes shared by every delay law's objective: moments, the box, the Hessian's form.

The paper's M/G/1 objective (:mod:`thinkq.model`) and the batched one
(:mod:`thinkq.batching.objective`) both project onto the box [0, l_max]^N and both
have a Hessian of the diagonal-plus-rank-two form of eqs. (33, 34), and both couple the
types through the moments E[S], E[S^2] (eq. 3); both re-use these.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from thinkq._typing import FloatArray
from thinkq.profile import Profile

__all__ = ["HessianParts", "Moments", "moments_of", "project"]


class HessianParts(NamedTuple):
    """The Hessian of J as diagonal plus rank two (eqs. 33, 34).

    ``hessian(J) = -diag(diagonal) - cross * (u v^T + v u^T) - outer * u u^T`` with
    u_k = pi_k c_k and v_k = pi_k c_k t_k. Under Pollaczek-Khinchine ``diagonal`` is
    positive and ``cross``, ``outer`` are non-negative, so -hessian is positive
    definite (Lemma 1); under the batched law that is not proven.
    """

    diagonal: FloatArray
    u: FloatArray
    v: FloatArray
    cross: float
    outer: float


def project(budgets: FloatArray, max_tokens: float) -> FloatArray:
    """The projection onto the box [0, l_max]^N of eqs. (23), (24) and (29)."""
    result: FloatArray = np.minimum(np.maximum(budgets, 0.0), max_tokens)
    return result


class Moments(NamedTuple):
    """The two aggregates through which the queue couples the task types (eq. 3).

    ``mean`` is E[S] (s), ``second`` is E[S^2] (s^2; it includes the profile's
    service-time variance, sum_k pi_k Var(S_k), zero in the paper) and ``slack`` is
    1 - lambda E[S], positive exactly when the queue is stable (eq. 4).
    """

    mean: float
    second: float
    slack: float


def moments_of(profile: Profile, t: FloatArray) -> Moments:
    """E[S], E[S^2] (eq. 3) and 1 - lambda E[S] (eq. 4) of the service times ``t``."""
    weighted = profile.share * t
    mean = float(np.add.reduce(weighted))
    second = float(np.dot(weighted, t)) + profile.extra_second_moment
    return Moments(mean, second, 1.0 - profile.rate * mean)
