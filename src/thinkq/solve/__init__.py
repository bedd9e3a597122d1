"""Optimal budgets: :func:`solve` and the methods behind it (section III).

``method="auto"`` (the default) runs projected Newton (:mod:`.newton`), which
converges on every valid profile; ``"fixed-point"`` is the paper's iteration (24)
and ``"gradient"`` its projected gradient ascent (29) with eta = 1 / L_J < 2 / L_J.
Every result carries its certificate: the KKT residual in tokens (eq. 23), an upper
bound on the gap to the optimum, and the constants of Lemmas 2 and 3.
"""

from __future__ import annotations

from typing import get_args

import numpy as np
from numpy.typing import ArrayLike

from thinkq import model
from thinkq._typing import FloatArray
from thinkq.profile import Profile
from thinkq.solve.bounds import Bounds, frank_wolfe_gap, lemma_bounds, paper_lower_bound
from thinkq.solve.fixed_point import projected_fixed_point
from thinkq.solve.gradient import projected_gradient
from thinkq.solve.integer import best_integer, round_budgets
from thinkq.solve.newton import projected_newton
from thinkq.solve.result import ContinuousResult, Method, SolveResult

__all__ = [
    "INTEGER_RULES",
    "METHODS",
    "Bounds",
    "ContinuousResult",
    "SolveResult",
    "solve",
    "solve_continuous",
]

METHODS: tuple[str, ...] = get_args(Method)
INTEGER_RULES: tuple[str, ...] = ("best", "round")
_MAX_ITER = {"newton": 500, "fixed-point": 10_000, "gradient": 2_000_000}
#: Default tolerance on the KKT residual, in tokens.
DEFAULT_TOL = 1e-7


def _start(profile: Profile, start: ArrayLike | None) -> FloatArray:
    if start is None:
        return np.zeros(profile.size)
    l = np.asarray(start, dtype=np.float64)
    if l.shape != (profile.size,):
        raise ValueError(f"start: expected {profile.size} budgets, got shape {l.shape}")
    if not np.all(np.isfinite(l)):
        raise ValueError("start: budgets must be finite")
    l = model.project(l, profile.max_tokens)
    if model.utilization(profile, l) >= 1.0:
        raise ValueError("start: budgets outside the stability region (rate * E[S] >= 1)")
    return l


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


def solve_continuous(
    profile: Profile,
    *,
    method: str = "auto",
    tol: float = DEFAULT_TOL,
    max_iter: int | None = None,
    start: ArrayLike | None = None,
) -> ContinuousResult:
    """Solve the continuous relaxation (9) by ``method`` from ``start`` (default 0).

    Parameters
    ----------
    profile:
        The instance.
    method:
        ``"auto"`` or ``"newton"`` (projected Newton), ``"fixed-point"`` (24) or
        ``"gradient"`` (29).
    tol:
        Tolerance on the KKT residual, in tokens.
    max_iter:
        Iteration limit (a per-method default if ``None``).
    start:
        A stable starting budget vector (warm start), default all zeros.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    if not (isinstance(tol, int | float) and tol > 0):
        raise ValueError(f"tol: expected a positive number of tokens, got {tol!r}")
    if max_iter is not None and max_iter < 1:
        raise ValueError(f"max_iter: expected a positive integer, got {max_iter!r}")
    name = "newton" if method == "auto" else method
    limit = max_iter if max_iter is not None else _MAX_ITER[name]
    l0 = _start(profile, start)
    start_objective = model.objective(profile, l0)
    l, iterations, evaluations, message = _run(profile, name, l0, tol=tol, max_iter=limit)
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
        method=name,
        message=message,
        kkt_residual=residual,
        gap_bound=gap,
        profile=profile,
        start_objective=start_objective,
    )


def solve(
    profile: Profile,
    *,
    method: str = "auto",
    integer: str = "best",
    tol: float = DEFAULT_TOL,
    max_iter: int | None = None,
    start: ArrayLike | None = None,
) -> SolveResult:
    """Optimal integer budgets for ``profile`` (problem 9, then eq. 39 or 40).

    Parameters
    ----------
    profile:
        The instance (see :func:`thinkq.load_profile`, :func:`thinkq.paper_profile`).
    method:
        Continuous solver: ``"auto"`` (projected Newton; always converges),
        ``"fixed-point"`` (eq. 24) or ``"gradient"`` (eq. 29).
    integer:
        ``"best"``: the best floor/ceil combination (eq. 39; local search beyond 20
        fractional budgets, never worse than rounding); ``"round"``: eq. (40).
    tol:
        Tolerance on the KKT residual of the continuous solution, in tokens.
    max_iter, start:
        Iteration limit and warm start of the continuous solver.

    Returns
    -------
    SolveResult
        Integer budgets, J there, the continuous solution with its certificate and
        the paper's lower bound (41).

    Examples
    --------
    >>> import thinkq
    >>> result = thinkq.solve(thinkq.paper_profile())
    >>> result.budgets.tolist()
    [0, 341, 0, 0, 346, 30]
    """
    if integer not in INTEGER_RULES:
        raise ValueError(f"integer: expected one of best, round, got {integer!r}")
    continuous = solve_continuous(profile, method=method, tol=tol, max_iter=max_iter, start=start)
    if integer == "round":
        budgets = round_budgets(profile, continuous.budgets)
    else:
        budgets = best_integer(profile, continuous.budgets)
    return SolveResult(
        profile=profile,
        budgets=budgets,
        integer=integer,
        objective=model.objective(profile, budgets),
        continuous=continuous,
        lower_bound=paper_lower_bound(profile, continuous.budgets),
    )
