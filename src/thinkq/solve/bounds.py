"""The paper's constants and bounds: Lemma 2 (26), Lemma 3 (31)-(38), and J-bar (41).

Lemma 2 and Lemma 3 assume rho_max = lambda E[S]_max < 1 over the whole box
[0, l_max]^N, which fails whenever l_max is large (the paper's instance has
rho_max of about 41). The optimum, however, lies in a smaller region: for any
feasible reference point l0,

    E[T](l*) <= alpha sum_k pi_k p_k(l_max) - J(l0) =: T_bar,

and since E[S^2] >= E[S]^2, E[T] >= g(s) = lambda s^2 / (2 (1 - lambda s)) + s is
increasing in s = E[S]. Hence lambda E[S(l*)] <= rho_bar, the root of g(s) = T_bar,

    rho_bar = 1 + lambda T_bar - sqrt(1 + (lambda T_bar)^2) < 1.

The same holds for every point with J >= J(l0), in particular every iterate of a
method that never decreases J from l0 (projected gradient ascent with
eta < 2 / L_J). On that region R = {l in box : lambda E[S(l)] <= rho_bar} each budget
is at most l_bar_k = min(l_max, (s_bar - E[S(0)]) / (pi_k c_k)), so t_k <= t0_k +
c_k l_bar_k, and E[S^2] <= min(sum_k pi_k t_k^max^2, t_max s_bar). The lemmas are
evaluated with these bounds in place of the box's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from thinkq import model
from thinkq._typing import FloatArray
from thinkq.profile import Profile

__all__ = [
    "Bounds",
    "frank_wolfe_gap",
    "lemma_bounds",
    "paper_lower_bound",
    "slack_bound",
    "utilization_bound",
]


@dataclass(frozen=True)
class Bounds:
    """Lemma 2's contraction constant and Lemma 3's Lipschitz constant, with their region.

    The paper states both on the box [0, l_max]^N under rho_max < 1. Where that fails
    (the paper's own instance has rho_max of about 41), they are computed on the
    region {l in box : lambda E[S(l)] <= rho_bar}, which contains the optimum and every
    iterate that does not decrease J below its value at the start point.

    Attributes
    ----------
    region:
        ``"box"`` when the paper's assumption holds on [0, l_max]^N, else ``"level-set"``.
    rho_max:
        The paper's rho_max = lambda E[S]_max over the box.
    rho_bar:
        The utilisation bound of the region used (equals ``rho_max`` for the box).
    contraction:
        L_inf of eq. (26): the fixed-point map is a contraction in the region if < 1.
    lipschitz:
        L_J of eq. (32): a Lipschitz constant of grad J in the region.
    step_bound:
        2 / L_J: projected gradient ascent converges for 0 < eta < step_bound (38).
    """

    region: Literal["box", "level-set"]
    rho_max: float
    rho_bar: float
    contraction: float
    lipschitz: float
    step_bound: float


def slack_bound(profile: Profile, reference_objective: float) -> float:
    """1 - rho_bar: lambda E[S] <= 1 - slack for every budget vector with J >= reference.

    Returned as the slack itself, 1 / (x + sqrt(1 + x^2)) with x = lambda T_bar, since
    1 - rho_bar rounds to zero for x above about 1e16.
    """
    best_accuracy = model.mean_accuracy(profile, np.full(profile.size, float(profile.max_tokens)))
    t_bar = profile.alpha * best_accuracy - reference_objective
    x = profile.rate * t_bar
    # 1 - rho_bar with rho_bar = 1 + x - sqrt(1 + x^2), without cancellation
    return 1.0 / (x + math.hypot(1.0, x))


def utilization_bound(profile: Profile, reference_objective: float) -> float:
    """rho_bar: lambda E[S] <= rho_bar for every budget vector with J >= reference."""
    return 1.0 - slack_bound(profile, reference_objective)


def lemma_bounds(profile: Profile, reference_objective: float) -> Bounds:
    """Lemma 2's L_inf (26) and Lemma 3's L_J (32) with the step bound 2 / L_J (38).

    ``reference_objective`` is J at a feasible point (the solver's start point);
    it defines the level-set region used when the paper's box assumption fails.
    """
    pi, c, t0, rate = profile.share, profile.c, profile.t0, profile.rate
    l_max = float(profile.max_tokens)
    t_box = t0 + c * l_max
    rho_max = rate * float(np.dot(pi, t_box))
    if rho_max < 1.0:
        region, rho, t_hi = "box", rho_max, t_box
        slack = 1.0 - rho
        second = float(np.dot(pi, t_box * t_box))
    else:
        region = "level-set"
        slack = slack_bound(profile, reference_objective)
        rho = 1.0 - slack
        s_bar = rho / rate
        room = max(s_bar - float(np.dot(pi, t0)), 0.0)
        with np.errstate(divide="ignore"):
            l_hi = np.minimum(l_max, np.where(pi > 0, room / (pi * c), l_max))
        t_hi = t0 + c * l_hi
        second = min(float(np.dot(pi, t_hi * t_hi)), float(np.max(t_hi)) * s_bar)
    # service-time variance adds to E[S^2] everywhere (eq. 3)
    second += profile.extra_second_moment
    t_max = float(np.max(t_hi))
    sum_pc = float(np.dot(pi, c))
    # at extreme but valid values (alpha = 1e300: a slack that rounds to 0; rate or b
    # near the smallest float: an L_J of 0) the constants are infinite, not an error
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        slack, rate = np.float64(slack), np.float64(rate)
        # Lemma 2, eq. (26)
        k_term = (1.0 + rate * (t_max / slack + rate * second / (2.0 * slack**2))) / c
        contraction = float(np.max(k_term + rate / (profile.b * slack))) * sum_pc
        # Lemma 3, eqs. (31)-(32): row sums of H in O(N)
        pc = pi * c
        v = float(np.dot(pc, t_hi))
        rows = (
            rate * pc * c / slack
            + rate**2 * pc * (t_hi * sum_pc + v) / slack**2
            + rate**3 * pc * sum_pc * second / slack**3
            + profile.alpha * pi * profile.A * profile.b**2
        )
        lipschitz = float(np.max(rows))
    return Bounds(
        region=region,  # type: ignore[arg-type]
        rho_max=rho_max,
        rho_bar=rho,
        contraction=contraction,
        lipschitz=lipschitz,
        step_bound=2.0 / lipschitz if lipschitz > 0 else math.inf,
    )


def paper_lower_bound(profile: Profile, budgets: FloatArray) -> float | None:
    """J-bar(l*) of eq. (41); ``None`` where its assumption lambda (E[S] + c_max) < 1 fails.

    As printed, except that the accuracy term is evaluated at max(l_k - 1, 0) rather
    than l_k - 1: an integer budget is never negative, so this only tightens the bound
    where l*_k < 1 and keeps it a lower bound. ``None`` on a batched server too: the
    bound is Pollaczek-Khinchine's.
    """
    if profile.batched is not None:
        return None
    m = model.moments(profile, budgets)
    c_max = float(np.max(profile.c))
    rate = profile.rate
    slack = 1.0 - rate * (m.mean + c_max)
    if slack <= 0:
        return None
    low = np.maximum(budgets - 1.0, 0.0)
    accuracy = model.mean_accuracy(profile, low)
    wait = (rate * m.second + 2.0 * c_max) / (2.0 * slack)
    return profile.alpha * accuracy - wait - m.mean


def frank_wolfe_gap(profile: Profile, budgets: FloatArray, grad: FloatArray) -> float:
    """max over the box of grad J(l) . (y - l): an upper bound on J(l_opt) - J(l).

    Valid because J is concave on the stability region (Lemma 1), which is convex
    and contains both l and l_opt.
    """
    up = grad * (profile.max_tokens - budgets)
    down = -grad * budgets
    return float(np.sum(np.maximum(np.maximum(up, down), 0.0)))
