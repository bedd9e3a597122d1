"""Optimal budgets: :func:`solve` and the methods behind it (section III).

On the paper's one-at-a-time server (no ``[server]`` table, or ``slots = 1``),
``method="auto"`` (the default) runs projected Newton (:mod:`.newton`), which
converges on every valid profile; ``"fixed-point"`` is the paper's iteration (24)
and ``"gradient"`` its projected gradient ascent (29) with eta = 1 / L_J < 2 / L_J
(:mod:`.mg1`). On a server that decodes several queries at once
(``profile.batched``), ``"auto"`` and ``"newton"`` run the global scan over E[S]
with a Newton polish (:mod:`.batched`); the paper's two iterations are P-K's and
raise ``ValueError`` there. Every result carries its certificate: the KKT residual in
tokens (eq. 23) and, where J is proven concave (P-K), an upper bound on the gap to the
optimum and the constants of Lemmas 2 and 3.
"""

from __future__ import annotations

from typing import get_args

from numpy.typing import ArrayLike

from thinkq import model
from thinkq.profile import Profile
from thinkq.solve.batched import solve_batched
from thinkq.solve.bounds import Bounds, paper_lower_bound
from thinkq.solve.integer import best_integer, round_budgets
from thinkq.solve.mg1 import solve_mg1
from thinkq.solve.options import DEFAULT_TOL, check_limits, start_budgets
from thinkq.solve.result import ContinuousResult, Method, ServerFigures, SolveResult

__all__ = [
    "DEFAULT_TOL",
    "INTEGER_RULES",
    "METHODS",
    "Bounds",
    "ContinuousResult",
    "ServerFigures",
    "SolveResult",
    "solve",
    "solve_batched",
    "solve_continuous",
]

METHODS: tuple[str, ...] = get_args(Method)
INTEGER_RULES: tuple[str, ...] = ("best", "round")
#: The methods that hold on a batched server (both run the scan with a Newton polish).
BATCHED_METHODS: tuple[str, ...] = ("auto", "newton")


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
        The instance; with a batched server (``profile.batched``) the batched law.
    method:
        ``"auto"`` or ``"newton"`` (projected Newton; on a batched server the global
        scan over E[S] with a Newton polish), ``"fixed-point"`` (24) or
        ``"gradient"`` (29), both for the paper's one-at-a-time server only.
    tol:
        Tolerance on the KKT residual, in tokens.
    max_iter:
        Iteration limit (a per-method default if ``None``).
    start:
        A stable starting budget vector (warm start), default all zeros. On a
        batched server it is polished beside the scan's best levels.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    check_limits(tol, max_iter)
    if profile.batched is not None:
        if method not in BATCHED_METHODS:
            raise ValueError(
                f"method: {method!r} is the paper's M/G/1 iteration; a server with "
                f"{profile.batched.slots} slots is solved by 'auto' (or 'newton')"
            )
        return solve_batched(profile, tol=tol, max_iter=max_iter, start=start)
    name = "newton" if method == "auto" else method
    l0 = start_budgets(profile, start)
    return solve_mg1(profile, method=name, tol=tol, max_iter=max_iter, start=l0)


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
        The instance (see :func:`thinkq.load_profile`, :func:`thinkq.paper_profile`);
        a ``[server]`` table with more than one slot solves under the batched law.
    method:
        Continuous solver: ``"auto"`` (projected Newton; always converges; on a
        batched server the global scan), ``"fixed-point"`` (eq. 24) or
        ``"gradient"`` (eq. 29), the last two on the paper's server only.
    integer:
        ``"best"``: the best floor/ceil combination (eq. 39; local search beyond 20
        fractional budgets, 10 on a batched server, never worse than rounding);
        ``"round"``: eq. (40).
    tol:
        Tolerance on the KKT residual of the continuous solution, in tokens.
    max_iter, start:
        Iteration limit and warm start of the continuous solver.

    Returns
    -------
    SolveResult
        Integer budgets, J there, the continuous solution with its certificate and
        the paper's lower bound (41), ``None`` on a batched server (it is P-K's).

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
    batched = profile.batched is not None
    return SolveResult(
        profile=profile,
        budgets=budgets,
        integer=integer,
        objective=model.objective(profile, budgets),
        continuous=continuous,
        lower_bound=None if batched else paper_lower_bound(profile, continuous.budgets),
    )
