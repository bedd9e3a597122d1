"""Optimal budgets on a batched server: :func:`solve_batched`.

The method (``docs/batching.md``, "The solver"):

1. **Global search over the load level.** J depends on the budgets through m1 = E[S]
   and m2 = E[S^2] only, linearly in m2. At a fixed m1 the problem is concave and its
   solution is the per-type best response (eq. 19) to a multiplier found by a
   bracketed search (:mod:`thinkq.batching.levels`). A scan of m1 over
   [E[S(0)], min(E[S(l_max)], C(B) / lambda)) finds the basin of the global optimum,
   whether or not J is concave.
2. **Polish.** Projected Newton on the full problem from the scan's two best local
   maxima (one where J*(a) has a single peak), with the Hessian's
   diagonal-plus-rank-two form (eqs. 33, 34) solved by Woodbury
   (:func:`thinkq.solve.newton.newton_direction`). -Hess J is not proven positive
   definite under the batched law, so a direction that is not an ascent direction is
   replaced by the diagonally scaled gradient, and every step must pass an Armijo test.
3. **Certificate.** The KKT residual (eq. 23) under the batched law, in tokens.

Every stage is O(N) per evaluation. At B = 1 the batched law is Pollaczek-Khinchine
and ``method="auto"`` hands the profile to :func:`thinkq.solve.solve_continuous`
(today's solver, whose numbers it then returns); ``method="scan"`` runs the method
above at every B (the tests check that both agree at B = 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from thinkq._typing import FloatArray
from thinkq.batching.levels import Levels, peaks
from thinkq.batching.objective import BatchedPoint, BatchedWorkspace, kkt_residual
from thinkq.batching.server import Server
from thinkq.model import project
from thinkq.profile import Profile
from thinkq.solve import solve_continuous
from thinkq.solve.newton import active_set, newton_direction

__all__ = ["BatchedResult", "solve_batched"]

_ARMIJO = 1e-4
_MAX_BACKTRACKS = 60
_MAX_ITER = 500
_NOISE = 16 * np.finfo(np.float64).eps


@dataclass(frozen=True)
class BatchedResult:
    """Optimal continuous budgets on a batched server, with their certificate.

    The fields of :class:`thinkq.solve.ContinuousResult` that hold for any server
    (its gap bound and Lemma constants are P-K's and are left out).

    Attributes
    ----------
    budgets:
        l*, tokens per type (floats in [0, l_max]).
    objective:
        J(l*) under the batched delay law (eq. 7).
    converged:
        Whether the KKT residual is at most the tolerance.
    iterations:
        Newton iterations of the polish (of today's solver at B = 1 with ``"auto"``).
    evaluations:
        O(N) evaluations in all (scan, refinement, polish).
    method:
        ``"scan+newton"``, or ``"newton"`` where B = 1 went to today's solver.
    message:
        Why it stopped, in words.
    kkt_residual:
        max_k |l_k - clip(l_hat_k(l))| in tokens (eq. 23 under the batched law).
    """

    budgets: FloatArray
    objective: float
    converged: bool
    iterations: int
    evaluations: int
    method: str
    message: str
    kkt_residual: float
    profile: Profile = field(repr=False, compare=False)
    server: Server = field(repr=False, compare=False)


def _step(
    ws: BatchedWorkspace, x: BatchedPoint, direction: FloatArray, grad: FloatArray
) -> tuple[BatchedPoint | None, int]:
    """Armijo backtracking along the projection arc (``None`` if nothing improves J).

    Also returns the points evaluated.
    """
    l_max = float(ws.profile.max_tokens)
    noise = _NOISE * (1.0 + abs(x.objective))
    step = 1.0
    for tries in range(1, _MAX_BACKTRACKS + 1):
        trial = ws.point(project(x.budgets + step * direction, l_max))
        change = trial.objective - x.objective
        predicted = float(np.dot(grad, trial.budgets - x.budgets))
        if change >= max(_ARMIJO * predicted, 0.0):
            return trial, tries
        if math.isfinite(change) and predicted <= noise and change >= -noise:
            return trial, tries  # a step below J's rounding: Newton's local regime, take it
        step *= 0.5
    return None, _MAX_BACKTRACKS


def _polish(
    ws: BatchedWorkspace, x: BatchedPoint, *, tol: float, max_iter: int
) -> tuple[BatchedPoint, int, int, str]:
    """Guarded projected Newton (as :mod:`thinkq.solve.newton`) from a stable point."""
    l_max = float(ws.profile.max_tokens)
    idle = ws.profile.share <= 0
    evaluations = 0
    for iteration in range(1, max_iter + 1):
        l = x.budgets
        grad, parts = ws.derivatives(x)
        evaluations += 1
        width, active, own, inverse = active_set(l, grad, parts.diagonal, idle, l_max)
        if width <= tol:
            return x, iteration - 1, evaluations, "KKT residual below tolerance"
        direction = newton_direction(parts, grad, inverse)
        free = ~active
        if not (np.all(np.isfinite(direction)) and np.dot(grad[free], direction[free]) > 0):
            direction = grad / own  # -Hess J not positive definite here: a scaled gradient
        direction[active] = grad[active] / own[active]
        trial, tries = _step(ws, x, direction, grad)
        evaluations += tries
        if trial is None:
            return x, iteration, evaluations, "line search failed to improve J"
        x = trial
    return x, max_iter, evaluations, "iteration limit reached"


def _search(
    ws: BatchedWorkspace, *, points: int, tol: float, max_iter: int
) -> tuple[BatchedPoint, int, int, str]:
    """Scan E[S] over ``points`` levels, polish the two best peaks, keep the better."""
    levels = Levels(ws)
    starts = peaks(levels.scan(points), keep=2)
    evaluations = levels.evaluations
    best: tuple[BatchedPoint, int, str] | None = None
    for start in starts:
        # the polish aims below tol: its stopping test is a proxy for the KKT residual
        x0 = ws.point(start.budgets)
        x, iterations, polished, message = _polish(ws, x0, tol=tol / 10, max_iter=max_iter)
        evaluations += polished
        if best is None or x.objective > best[0].objective:
            best = (x, iterations, message)
    assert best is not None  # the scan's first level (l = 0) is always stable
    x, iterations, message = best
    return x, iterations, evaluations, message


def _single(profile: Profile, server: Server, tol: float, max_iter: int | None) -> BatchedResult:
    r = solve_continuous(profile, tol=tol, max_iter=max_iter)
    return BatchedResult(
        budgets=r.budgets, objective=r.objective, converged=r.converged,
        iterations=r.iterations, evaluations=r.evaluations, method=r.method,
        message=r.message, kkt_residual=r.kkt_residual, profile=profile, server=server,
    )  # fmt: skip


def solve_batched(
    profile: Profile,
    server: Server,
    *,
    method: str = "auto",
    tol: float = 1e-7,
    max_iter: int | None = None,
    points: int | None = None,
) -> BatchedResult:
    """Optimal continuous budgets for ``profile`` served by ``server``.

    Parameters
    ----------
    profile:
        The instance (rate, alpha, l_max and the task types).
    server:
        The batched server (:class:`thinkq.batching.Server`).
    method:
        ``"auto"``: today's solver at B = 1 (P-K, concave), the scan otherwise;
        ``"scan"``: the global scan over E[S] with a Newton polish at every B.
    tol:
        Tolerance on the KKT residual, in tokens.
    max_iter:
        Newton iteration limit of the polish (default 500).
    points:
        Levels of E[S] in the scan (default 24 up to N = 10^4, 8 beyond).

    Returns
    -------
    BatchedResult
        Budgets, J, and the certificate (KKT residual in tokens, converged, message).
    """
    if method not in ("auto", "scan"):
        raise ValueError(f"method: expected 'auto' or 'scan', got {method!r}")
    if not (isinstance(tol, int | float) and tol > 0):
        raise ValueError(f"tol: expected a positive number of tokens, got {tol!r}")
    if max_iter is not None and max_iter < 1:
        raise ValueError(f"max_iter: expected a positive integer, got {max_iter!r}")
    if points is not None and points < 2:
        raise ValueError(f"points: expected at least 2 levels, got {points!r}")
    if method == "auto" and server.single:
        return _single(profile, server, tol, max_iter)
    x, iterations, evaluations, message = _search(
        BatchedWorkspace(profile, server),
        points=points or (24 if profile.size <= 10_000 else 8),
        tol=tol,
        max_iter=max_iter or _MAX_ITER,
    )
    residual = kkt_residual(profile, server, x.budgets)
    converged = bool(residual <= tol)
    if not converged and message == "KKT residual below tolerance":
        message = "step below tolerance, KKT residual not (the limit of double precision)"
    return BatchedResult(
        budgets=x.budgets, objective=x.objective, converged=converged, iterations=iterations,
        evaluations=evaluations + 1, method="scan+newton", message=message,
        kkt_residual=residual, profile=profile, server=server,
    )  # fmt: skip
