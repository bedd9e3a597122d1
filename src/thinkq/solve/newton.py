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

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from thinkq import model
from thinkq._typing import FloatArray
from thinkq.profile import Profile

__all__ = ["STALLED", "ActiveSet", "active_set", "newton_direction", "projected_newton"]

_ARMIJO = 1e-4
_MAX_BACKTRACKS = 80
_NOISE = 16 * float(np.finfo(np.float64).eps)
_STALL = 3
_NEAR = 1e-6
#: The message of a search that stopped because J stopped improving.
STALLED = "J stopped improving (the limit of double precision)"


def newton_direction(
    parts: model.HessianParts, grad: FloatArray, inverse: FloatArray
) -> FloatArray:
    """Solve (-Hess J)_FF d_F = grad_F on the free set F in O(N) (Woodbury, rank two).

    ``inverse`` is 1 / diagonal on F and 0 elsewhere. With -Hess J = Delta + U C U^T,
    Delta = diag(diagonal), U = [u, v] and C = [[outer, cross], [cross, 0]],
    d = Delta^-1 g - Delta^-1 U C (I + U^T Delta^-1 U C)^-1 U^T Delta^-1 g,
    a form that never inverts C (which is ill-conditioned at low load).
    """
    u = parts.u * inverse
    v = parts.v * inverse
    dg = grad * inverse
    uu, uv, vv = float(np.dot(parts.u, u)), float(np.dot(parts.u, v)), float(np.dot(parts.v, v))
    ug, vg = float(np.dot(parts.u, dg)), float(np.dot(parts.v, dg))
    a, x = parts.outer, parts.cross
    # M = I + G C with G = [[uu, uv], [uv, vv]], C = [[a, x], [x, 0]]
    m11, m12 = 1.0 + uu * a + uv * x, uu * x
    m21, m22 = uv * a + vv * x, 1.0 + uv * x
    det = m11 * m22 - m12 * m21
    y1 = (m22 * ug - m12 * vg) / det
    y2 = (m11 * vg - m21 * ug) / det
    # coefficients C y
    k1, k2 = a * y1 + x * y2, x * y1
    direction: FloatArray = dg - k1 * u - k2 * v
    return direction


class ActiveSet(NamedTuple):
    """One projected Newton iteration's view of the bounds (see :func:`active_set`)."""

    width: float
    active: NDArray[np.bool_]
    own: FloatArray
    inverse: FloatArray


def active_set(
    l: FloatArray, grad: FloatArray, diagonal: FloatArray, idle: NDArray[np.bool_], l_max: float
) -> ActiveSet:
    """The stopping width, the active set, each type's own curvature (1 for idle types)
    and 1 / curvature on the free set (0 on the active set).

    The width uses each type's own curvature (the rank-two part left out), the first
    Newton step of its best response (22): a distance in tokens. A budget within
    min(width, 1) of a bound whose gradient pushes outward is active (held there).
    """
    own = np.where(idle, 1.0, diagonal)
    width = float(np.maximum.reduce(np.abs(l - model.project(l + grad / own, l_max)), initial=0.0))
    eps = min(width, 1.0)
    active = ((l <= eps) & (grad < 0)) | ((l >= l_max - eps) & (grad > 0)) | idle
    return ActiveSet(width, active, own, 1.0 / np.where(active, np.inf, diagonal))


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
    workspace = model.Workspace(profile)
    idle = profile.share <= 0
    x = workspace.point(model.project(np.asarray(start, dtype=np.float64), l_max))
    # one step of the paper's fixed point (24) is often most of the way: take it when
    # it is stable and improves J (it halves the iterations on typical instances)
    seed = workspace.point(model.project(model.best_response(profile, x.budgets), l_max))
    evaluations = 1
    if workspace.change(x, seed) > 0.0:
        x = seed
    # J's rounding: steps that gain less, _STALL times in a row within _NEAR of the
    # stability boundary, end the search (at a huge alpha the optimum's 1 - rho is
    # below double precision, and Newton would creep there until the iteration limit;
    # elsewhere a gain below J's rounding can still move types of tiny share)
    noise, stalled = _NOISE * (1.0 + abs(model.objective(profile, x.budgets))), 0
    for iteration in range(1, max_iter + 1):
        l = x.budgets
        grad, parts = workspace.derivatives(x)
        evaluations += 1
        width, active, own, inverse = active_set(l, grad, parts.diagonal, idle, l_max)
        if width <= tol:
            return l, iteration - 1, evaluations, "KKT residual below tolerance"
        direction = newton_direction(parts, grad, inverse)
        # active variables take a step scaled by their own curvature: the full diagonal
        # grows like 1/D^3 near saturation and would leave a budget a hair above its
        # bound creeping there for hundreds of iterations
        direction[active] = grad[active] / own[active]
        step = 1.0
        for _ in range(_MAX_BACKTRACKS):
            trial = workspace.point(model.project(l + step * direction, l_max))
            change = workspace.change(x, trial)
            evaluations += 1
            predicted = float(np.dot(grad, trial.budgets - l))
            if np.isfinite(change) and change >= max(_ARMIJO * predicted, 0.0):
                break
            step *= 0.5
        else:
            return l, iteration, evaluations, "line search failed to improve J"
        x = trial
        near = x.moments.slack < _NEAR  # 1 - rho tiny: J's rounding is the limit there
        stalled = stalled + 1 if near and change <= noise else 0
        if stalled >= _STALL:
            return x.budgets, iteration, evaluations, STALLED
    return x.budgets, max_iter, evaluations, "iteration limit reached"
