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

A profile whose server decodes several queries at once (``profile.batched``, the
``[server]`` table with ``slots > 1``) gets the batched delay law in place of
Pollaczek-Khinchine in every function here (:mod:`thinkq.batching`,
``docs/batching.md``): wait, system time, utilisation, J and its derivatives. Without
a server table, or with one slot, every formula is the paper's, unchanged.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from thinkq._shapes import HessianParts, Moments, moments_of, project
from thinkq._typing import FloatArray
from thinkq.batching import objective as batched
from thinkq.batching.delay import delay
from thinkq.lambert import fixed_point_root
from thinkq.profile import Profile
from thinkq.workspace import Point, Workspace

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


def _budgets(profile: Profile, budgets: ArrayLike) -> FloatArray:
    l = np.asarray(budgets, dtype=np.float64)
    if l.shape != (profile.size,):
        raise ValueError(f"budgets: expected {profile.size} values, got shape {l.shape}")
    return l


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


def moments(profile: Profile, budgets: ArrayLike) -> Moments:
    """E[S], E[S^2] (eq. 3) and the stability slack 1 - lambda E[S] (eq. 4)."""
    return moments_of(profile, service_time(profile, budgets))


def utilization(profile: Profile, budgets: ArrayLike) -> float:
    """rho = lambda E[S]; the queue is stable iff rho < 1 (eq. 4).

    On a batched server, lambda E[S] / C(B): the load as a fraction of the most work
    the slots do per second (stable iff < 1; lambda E[S] at one slot).
    """
    mean = moments(profile, budgets).mean
    server = profile.batched
    return profile.rate * mean if server is None else server.utilization(profile.rate, mean)


def _wait(rate: float, m: Moments) -> float:
    if m.slack <= 0:
        return float("inf")
    return rate * m.second / (2.0 * m.slack)


def waiting_time(profile: Profile, budgets: ArrayLike) -> float:
    """Mean wait in queue, Pollaczek-Khinchine (eq. 5), seconds; inf if unstable.

    On a batched server, the wait for a slot under the batched law.
    """
    m = moments(profile, budgets)
    server = profile.batched
    if server is None:
        return _wait(profile.rate, m)
    return delay(server, profile.rate, m.mean, m.second).waiting_time


def system_time(profile: Profile, budgets: ArrayLike) -> float:
    """Mean system time E[W] + E[S] (eq. 6), seconds; inf if unstable.

    On a batched server, the wait plus the time in service, slowed by the batch.
    """
    m = moments(profile, budgets)
    server = profile.batched
    if server is None:
        return _wait(profile.rate, m) + m.mean
    return delay(server, profile.rate, m.mean, m.second).system_time


def objective(profile: Profile, budgets: ArrayLike) -> float:
    """J(l) = alpha sum_k pi_k p_k - E[W] - E[S] (eq. 7); -inf outside stability."""
    l = _budgets(profile, budgets)
    server = profile.batched
    if server is not None:
        return batched.objective(profile, server, l)
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
    Returns ``-inf`` if ``new_budgets`` is unstable. On a batched server, the plain
    difference of the two objectives.
    """
    l = _budgets(profile, budgets)
    l_new = _budgets(profile, new_budgets)
    if profile.batched is not None:
        return objective(profile, l_new) - objective(profile, l)
    workspace = Workspace(profile)
    return workspace.change(workspace.point(l), workspace.point(l_new))


def _derivatives(profile: Profile, budgets: ArrayLike) -> tuple[FloatArray, HessianParts]:
    l = _budgets(profile, budgets)
    server = profile.batched
    if server is not None:
        return batched.gradient(profile, server, l), batched.hessian_parts(profile, server, l)
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
    server = profile.batched
    if server is not None:
        return batched.best_response(profile, server, l)
    t = profile.t0 + profile.c * l
    m = moments_of(profile, t)
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
    server = profile.batched
    if server is not None:
        return batched.kkt_residual(profile, server, l)
    target = project(best_response(profile, l), profile.max_tokens)
    return float(np.maximum.reduce(np.abs(l - target), initial=0.0))
