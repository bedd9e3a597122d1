"""The default solver: projected Newton with an Armijo search along the projection arc.

Bertsekas' projected Newton method (Bertsekas 1982; *Nonlinear Programming* 2nd ed.,
section 2.3) for the bound-constrained concave problem (9). Every iteration costs
O(N): the Hessian of J is diagonal plus rank two (eqs. 33, 34, see
:class:`thinkq.model.HessianParts`), so the Newton system on the free variables is
solved by the Woodbury identity with one 2 x 2 system. Variables at a bound whose
gradient pushes outward are held there and take a diagonally scaled gradient step.

Why it always converges: it starts at a stable point (l = 0 is stable for every valid
profile, or a warm start), every accepted step increases J (the Armijo test), J tends
to -inf at the stability boundary, so the iterates stay in the compact upper level
set where J is smooth and strictly concave (Lemma 1). On such sets the projected
Newton method with Armijo search converges to the unique maximiser, and locally
quadratically. The Armijo test reads the change of J from
:func:`thinkq.model.objective_change`, which keeps its digits even when the change is
1e-12 of J, so the search does not stall near the optimum.
"""

from __future__ import annotations

import numpy as np

from thinkq import model
from thinkq.profile import Profile
from thinkq.solve.result import FloatArray

__all__ = ["newton_direction", "projected_newton"]

_ARMIJO = 1e-4
_MAX_BACKTRACKS = 80


def newton_direction(
    parts: model.HessianParts, grad: FloatArray, free: FloatArray
) -> FloatArray:
    """Solve (-Hess J)_FF d_F = grad_F on the free set F in O(N) (Woodbury, rank two).

    -Hess J = Delta + U C U^T with Delta = diag(diagonal), U = [u, v] and
    C = [[outer, cross], [cross, 0]]; then
    d = Delta^-1 g - Delta^-1 U C (I + U^T Delta^-1 U C)^-1 U^T Delta^-1 g,
    a form that never inverts C (which is ill-conditioned at low load).
    """
    inv = np.where(free, 1.0 / np.where(free, parts.diagonal, 1.0), 0.0)
    u = parts.u * inv
    v = parts.v * inv
    dg = grad * inv
    # G = U^T Delta^-1 U restricted to F
    uu = float(np.dot(parts.u, u))
    uv = float(np.dot(parts.u, v))
    vv = float(np.dot(parts.v, v))
    rhs = np.array([np.dot(parts.u, dg), np.dot(parts.v, dg)])
    c = np.array([[parts.outer, parts.cross], [parts.cross, 0.0]])
    gram = np.array([[uu, uv], [uv, vv]])
    coef = c @ np.linalg.solve(np.eye(2) + gram @ c, rhs)
    direction: FloatArray = dg - coef[0] * u - coef[1] * v
    return direction


def _scaled_step(
    profile: Profile, budgets: FloatArray, grad: FloatArray, diag: FloatArray
) -> FloatArray:
    """l - clip(l + grad / diag): a diagonally scaled projected gradient, in tokens."""
    safe = np.where(diag > 0, diag, 1.0)
    target = np.clip(budgets + grad / safe, 0.0, profile.max_tokens)
    return budgets - target


def projected_newton(
    profile: Profile,
    start: FloatArray,
    *,
    tol: float,
    max_iter: int,
) -> tuple[FloatArray, int, int, str]:
    """Maximise J over [0, l_max]^N from a stable ``start``.

    Returns the budgets, the iterations, the O(N) evaluations and why it stopped.
    Stops when the scaled projected-gradient step is below ``tol`` tokens (the caller
    confirms with the KKT residual of eq. 23).
    """
    l_max = float(profile.max_tokens)
    l = np.clip(np.asarray(start, dtype=np.float64), 0.0, l_max)
    evaluations = 0
    for iteration in range(1, max_iter + 1):
        grad = model.gradient(profile, l)
        parts = model.hessian_parts(profile, l)
        evaluations += 1
        # the diagonal of -Hess J, for scaling and the epsilon-active set
        diag = parts.diagonal + 2.0 * parts.cross * parts.u * parts.v + parts.outer * parts.u**2
        step = _scaled_step(profile, l, grad, diag)
        width = float(np.max(np.abs(step))) if l.size else 0.0
        if width <= tol:
            return l, iteration - 1, evaluations, "KKT residual below tolerance"
        eps = min(width, 1.0)
        active = ((l <= eps) & (grad < 0)) | ((l >= l_max - eps) & (grad > 0))
        active |= profile.share <= 0
        free = ~active
        direction = newton_direction(parts, grad, free)
        safe = np.where(diag > 0, diag, 1.0)
        direction = np.where(active, np.where(profile.share > 0, grad / safe, 0.0), direction)
        alpha = 1.0
        for _ in range(_MAX_BACKTRACKS):
            trial = np.clip(l + alpha * direction, 0.0, l_max)
            change = model.objective_change(profile, l, trial)
            evaluations += 1
            moved = trial - l
            predicted = float(np.dot(grad[free], moved[free])) + float(
                np.dot(grad[active], moved[active])
            )
            if np.isfinite(change) and change >= max(_ARMIJO * predicted, 0.0):
                break
            alpha *= 0.5
        else:
            return l, iteration, evaluations, "line search failed to improve J"
        l = trial
    return l, max_iter, evaluations, "iteration limit reached"
