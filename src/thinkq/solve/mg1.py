"""The continuous relaxation (9) on the paper's one-at-a-time (M/G/1) server.

Projected Newton (:mod:`.newton`), the paper's fixed-point iteration (24,
:mod:`.fixed_point`) or its projected gradient ascent (29, :mod:`.gradient`) with
eta = 1 / L_J < 2 / L_J, from a stable start. The certificate is the KKT residual in
tokens (eq. 23) and, J being concave on the stability region (Lemma 1), the
Frank-Wolfe gap over the box, an upper bound on the distance to the optimum in J.
:func:`thinkq.solve.solve_continuous` checks the arguments and sends a profile here
unless its server decodes several queries at once.
"""

from __future__ import annotations

import numpy as np

from thinkq import model
from thinkq._typing import FloatArray
from thinkq.profile import Profile
from thinkq.solve.bounds import frank_wolfe_gap, lemma_bounds
from thinkq.solve.fixed_point import projected_fixed_point
from thinkq.solve.gradient import projected_gradient
from thinkq.solve.newton import projected_newton
from thinkq.solve.result import ContinuousResult

__all__ = ["MAX_ITER", "solve_mg1"]

#: Default iteration limit of each method.
MAX_ITER = {"newton": 500, "fixed-point": 10_000, "gradient": 2_000_000}


def _run(
    profile: Profile, method: str, start: FloatArray, *, tol: float, max_iter: int
) -> tuple[FloatArray, int, int, str]:
    """(budgets, iterations, evaluations, why it stopped) of ``method`` from ``start``."""
    if method == "newton":
        return projected_newton(profile, start, tol=tol / 16.0, max_iter=max_iter)
    if method == "fixed-point":
        return projected_fixed_point(profile, start, tol=tol, max_iter=max_iter)
    step = 1.0 / lemma_bounds(profile, model.objective(profile, start)).lipschitz
    return projected_gradient(profile, start, step=step, tol=tol, max_iter=max_iter)


def _certify(profile: Profile, l: FloatArray) -> tuple[FloatArray, float, float]:
    """The budgets with idle types at their best response, the KKT residual, the gap."""
    if model.utilization(profile, l) >= 1.0:
        return l, float("inf"), float("inf")
    # types with zero share do not move J; give them their best response
    idle = profile.share <= 0
    if np.any(idle):
        response = model.project(model.best_response(profile, l), profile.max_tokens)
        l = np.where(idle, response, l)
    residual = model.kkt_residual(profile, l)
    return l, residual, frank_wolfe_gap(profile, l, model.gradient(profile, l))


def solve_mg1(
    profile: Profile, *, method: str, tol: float, max_iter: int | None, start: FloatArray
) -> ContinuousResult:
    """Solve (9) by ``method`` (``"newton"``, ``"fixed-point"``, ``"gradient"``).

    The arguments are checked by the caller; ``start`` is a stable budget vector.
    """
    limit = max_iter if max_iter is not None else MAX_ITER[method]
    start_objective = model.objective(profile, start)
    l, iterations, evaluations, message = _run(profile, method, start, tol=tol, max_iter=limit)
    l, residual, gap = _certify(profile, l)
    converged = bool(residual <= tol)
    if not converged and message == "KKT residual below tolerance":
        # the step test is a proxy; the residual checked here is the certificate
        message = "step below tolerance, KKT residual not (the limit of double precision)"
    return ContinuousResult(
        budgets=l,
        objective=model.objective(profile, l),
        converged=converged,
        iterations=iterations,
        evaluations=evaluations,
        method=method,
        message=message,
        kkt_residual=residual,
        gap_bound=gap,
        profile=profile,
        start_objective=start_objective,
    )
