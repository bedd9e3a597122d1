"""The paper's model (section II) and the derivatives of its objective (section III).

Every formula of the paper lives here, vectorised over the N task types:

* service time t_k(l_k) = t0_k + c_k l_k (eq. 1), in seconds;
* accuracy p_k(l_k) = A_k (1 - exp(-b_k l_k)) + D_k (eq. 2);
* moments E[S], E[S^2] (eq. 3), stability lambda E[S] < 1 (eq. 4);
* Pollaczek-Khinchine mean wait (eq. 5) and mean system time (eq. 6), in seconds;
* the objective J (eq. 7), its gradient (eqs. 10, 15) and Hessian (eqs. 33, 34);
* the KKT best response of the fixed-point method (eqs. 19-22), evaluated with the
  Wright omega function so that neither overflow nor cancellation occurs.

Budgets ``l`` are arrays of tokens, one per task type, in the profile's order.
Outside the stability region the wait is ``inf`` and J is ``-inf``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from thinkq._typing import FloatArray
from thinkq.lambert import fixed_point_root
from thinkq.profile import Profile

__all__ = [
    "HessianParts",
    "Moments",
    "Point",
    "Workspace",
    "accuracy",
    "best_response",
    "gradient",
    "hessian",
    "hessian_parts",
    "kkt_residual",
    "mean_accuracy",
    "moments",
    "objective",
    "objective_change",
    "project",
    "service_time",
    "system_time",
    "utilization",
    "waiting_time",
]


class Moments(NamedTuple):
    """The two aggregates through which the queue couples the task types (eq. 3).

    ``mean`` is E[S] (s), ``second`` is E[S^2] (s^2; it includes the profile's
    service-time variance, sum_k pi_k Var(S_k), zero in the paper) and ``slack`` is
    1 - lambda E[S], positive exactly when the queue is stable (eq. 4).
    """

    mean: float
    second: float
    slack: float


class HessianParts(NamedTuple):
    """The Hessian of J as diagonal plus rank two (eqs. 33, 34).

    ``hessian(J) = -diag(diagonal) - cross * (u v^T + v u^T) - outer * u u^T`` with
    u_k = pi_k c_k and v_k = pi_k c_k t_k. ``diagonal`` is positive and ``cross``,
    ``outer`` are non-negative, so -hessian is positive definite (Lemma 1).
    """

    diagonal: FloatArray
    u: FloatArray
    v: FloatArray
    cross: float
    outer: float


def _budgets(profile: Profile, budgets: ArrayLike) -> FloatArray:
    l = np.asarray(budgets, dtype=np.float64)
    if l.shape != (profile.size,):
        raise ValueError(f"budgets: expected {profile.size} values, got shape {l.shape}")
    return l


def project(budgets: FloatArray, max_tokens: float) -> FloatArray:
    """The projection onto the box [0, l_max]^N of eqs. (23), (24) and (29)."""
    result: FloatArray = np.minimum(np.maximum(budgets, 0.0), max_tokens)
    return result


def service_time(profile: Profile, budgets: ArrayLike) -> FloatArray:
    """t_k(l_k) = t0_k + c_k l_k (eq. 1), seconds per query of each type."""
    l = _budgets(profile, budgets)
    return profile.t0 + profile.c * l


def accuracy(profile: Profile, budgets: ArrayLike) -> FloatArray:
    """p_k(l_k) = A_k (1 - exp(-b_k l_k)) + D_k (eq. 2), per type."""
    l = _budgets(profile, budgets)
    return profile.A * -np.expm1(-profile.b * l) + profile.D


def mean_accuracy(profile: Profile, budgets: ArrayLike) -> float:
    """sum_k pi_k p_k(l_k): the accuracy of a random query."""
    return float(np.dot(profile.share, accuracy(profile, budgets)))


def _moments(profile: Profile, t: FloatArray) -> Moments:
    weighted = profile.share * t
    mean = float(np.add.reduce(weighted))
    second = float(np.dot(weighted, t)) + profile.extra_second_moment
    return Moments(mean, second, 1.0 - profile.rate * mean)


def moments(profile: Profile, budgets: ArrayLike) -> Moments:
    """E[S], E[S^2] (eq. 3) and the stability slack 1 - lambda E[S] (eq. 4)."""
    return _moments(profile, service_time(profile, budgets))


def utilization(profile: Profile, budgets: ArrayLike) -> float:
    """rho = lambda E[S]; the queue is stable iff rho < 1 (eq. 4)."""
    return profile.rate * moments(profile, budgets).mean


def _wait(rate: float, m: Moments) -> float:
    if m.slack <= 0:
        return float("inf")
    return rate * m.second / (2.0 * m.slack)


def waiting_time(profile: Profile, budgets: ArrayLike) -> float:
    """Mean wait in queue, Pollaczek-Khinchine (eq. 5), seconds; inf if unstable."""
    return _wait(profile.rate, moments(profile, budgets))


def system_time(profile: Profile, budgets: ArrayLike) -> float:
    """Mean system time E[W] + E[S] (eq. 6), seconds; inf if unstable."""
    m = moments(profile, budgets)
    return _wait(profile.rate, m) + m.mean


def objective(profile: Profile, budgets: ArrayLike) -> float:
    """J(l) = alpha sum_k pi_k p_k - E[W] - E[S] (eq. 7); -inf outside stability."""
    l = _budgets(profile, budgets)
    m = moments(profile, l)
    if m.slack <= 0:
        return float("-inf")
    return profile.alpha * mean_accuracy(profile, l) - _wait(profile.rate, m) - m.mean


def objective_change(profile: Profile, budgets: ArrayLike, new_budgets: ArrayLike) -> float:
    """J(new) - J(old), computed from the differences without cancellation.

    Near the optimum the change of J is many orders of magnitude below J itself, so
    subtracting two objective values loses every digit; this form keeps them: the
    accuracy term uses ``expm1`` and the queue term the exact identity
    q'/D' - q/D = (dq D + q lambda dE[S]) / (D D').
    Returns ``-inf`` if ``new_budgets`` is unstable.
    """
    l = _budgets(profile, budgets)
    l_new = _budgets(profile, new_budgets)
    workspace = Workspace(profile)
    return workspace.change(workspace.point(l), workspace.point(l_new))


def _derivatives(profile: Profile, budgets: ArrayLike) -> tuple[FloatArray, HessianParts]:
    l = _budgets(profile, budgets)
    workspace = Workspace(profile)
    x = workspace.point(l)
    if x.moments.slack <= 0:
        raise ValueError("budgets: outside the stability region (rate * E[S] >= 1)")
    return workspace.derivatives(x)


def gradient(profile: Profile, budgets: ArrayLike) -> FloatArray:
    """dJ/dl_k = pi_k (alpha A_k b_k e^{-b_k l_k} - c_k (1 + lambda t_k/D + ...)) (10, 15).

    Units: objective per token. Raises ``ValueError`` outside the stability region.
    """
    return _derivatives(profile, budgets)[0]


def hessian_parts(profile: Profile, budgets: ArrayLike) -> HessianParts:
    """The Hessian of J as diagonal plus rank two, in O(N) memory (eqs. 33, 34)."""
    return _derivatives(profile, budgets)[1]


def hessian(profile: Profile, budgets: ArrayLike) -> FloatArray:
    """The dense N x N Hessian of J (eqs. 33, 34). Negative definite when stable."""
    h = hessian_parts(profile, budgets)
    dense = -h.cross * (np.outer(h.u, h.v) + np.outer(h.v, h.u)) - h.outer * np.outer(h.u, h.u)
    dense[np.diag_indices_from(dense)] -= h.diagonal
    return dense


def best_response(profile: Profile, budgets: ArrayLike) -> FloatArray:
    """The unprojected fixed-point map l_hat(l) of eq. (22), in tokens.

    With the aggregates E[S], E[S^2] of ``budgets`` held fixed, l_hat_k solves the
    stationarity condition (19) l - L_k e^{-b_k l} = K_k, by Lambert W in log space
    (:func:`thinkq.lambert.fixed_point_root`: no overflow, no cancellation).
    """
    l = _budgets(profile, budgets)
    t = profile.t0 + profile.c * l
    m = _moments(profile, t)
    if m.slack <= 0:
        raise ValueError("budgets: outside the stability region (rate * E[S] >= 1)")
    rate, d, b, c = profile.rate, m.slack, profile.b, profile.c
    # log(b L), L = alpha A b D / (lambda c^2) (eq. 20), in logs so nothing overflows
    log_bl = (
        np.log(profile.alpha * profile.A)
        + 2 * np.log(b)
        + (np.log(d) - np.log(rate))
        - 2 * np.log(c)
    )
    # K (eq. 21) is negative: -b K is the sum of three non-negative terms
    with np.errstate(over="ignore", divide="ignore"):
        k = -(profile.t0 / c) - d / (rate * c) - rate * m.second / (2.0 * c * d)
        terms = np.log(profile.t0), np.log(d) - np.log(rate), np.log(rate * m.second / (2 * d))
        log_minus_bk = np.log(b) - np.log(c) + np.logaddexp.reduce(np.broadcast_arrays(*terms))
    return fixed_point_root(log_bl, k, b, log_minus_bk)


def kkt_residual(profile: Profile, budgets: ArrayLike) -> float:
    """max_k |l_k - clip(l_hat_k(l), 0, l_max)| in tokens: zero exactly at the optimum.

    This is the residual of the projected KKT system (23): how many tokens a type's
    budget is away from its best response to the load the budgets create.
    """
    l = _budgets(profile, budgets)
    target = project(best_response(profile, l), profile.max_tokens)
    return float(np.maximum.reduce(np.abs(l - target), initial=0.0))


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
        return Point(budgets, t, np.exp(-p.b * budgets), _moments(p, t))

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
