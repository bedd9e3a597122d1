"""Optimal budgets on a batched server: :func:`solve_batched`.

The method (``docs/batching.md``, "The solver"):

1. **Global search over the load level.** J depends on the budgets through m1 = E[S]
   and m2 = E[S^2] only, linearly in m2. At a fixed m1 the problem is concave and its
   solution is the per-type best response (eq. 19) to a multiplier found by a
   bracketed search (:mod:`thinkq.batching.levels`). A scan of m1 over
   [E[S(0)], min(E[S(l_max)], C(B) / lambda)) finds the basin of the global optimum,
   whether or not J is concave. The scan is coarse first: 8 levels, each with the
   value J*(a) and its slope dJ*/da (the envelope theorem). If values and slopes
   agree on a single peak, one more level at the top of the cubic through the peak's
   bracket starts the polish; otherwise the full scan runs (24 levels up to
   N = 10^4; beyond, the coarse scan's 8 are kept). ``points=k`` scans exactly k.
2. **Polish.** Projected Newton on the full problem from the scan's best level (two
   best local maxima after a full scan), and from the warm start if one is
   given, with the Hessian's diagonal-plus-rank-two form (eqs. 33, 34) solved by
   Woodbury (:func:`thinkq.solve.newton.newton_direction`). -Hess J is not proven
   positive definite under the batched law, so a direction that is not an ascent
   direction is replaced by the diagonally scaled gradient, and every step must pass
   an Armijo test.
3. **Certificate.** The KKT residual (eq. 23) under the batched law, in tokens. The
   Frank-Wolfe gap bound and the constants of Lemmas 2 and 3 rest on P-K's concavity
   and are ``None`` in the result.

Every stage is O(N) per evaluation. At B = 1 the batched law is Pollaczek-Khinchine
and ``method="auto"`` hands the profile to :func:`thinkq.solve.mg1.solve_mg1`
(today's solver, whose numbers it then returns); ``method="scan"`` runs the method
above at every B (the tests check that both agree at B = 1).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from thinkq._typing import FloatArray
from thinkq.batching.levels import Levels
from thinkq.batching.objective import BatchedPoint, BatchedWorkspace
from thinkq.batching.peaks import Level, hermite_top, peaks, single_peak
from thinkq.batching.server import Server
from thinkq.model import gradient, project
from thinkq.profile import Profile
from thinkq.solve.bounds import frank_wolfe_gap
from thinkq.solve.mg1 import solve_mg1
from thinkq.solve.newton import STALLED, active_set, newton_direction
from thinkq.solve.options import DEFAULT_TOL, check_limits, start_budgets
from thinkq.solve.result import ContinuousResult

__all__ = ["METHOD", "solve_batched"]

#: The ``method`` a result of the scan reports.
METHOD = "scan+newton"
#: Levels of the coarse scan, and of the full scan it falls back to up to N = _LARGE.
_COARSE = 8
_FULL = 24
_LARGE = 10_000
#: Tolerance of the scan's level solves, relative to the range of E[S]: loose beyond
#: N = _LARGE, where J from scratch at a point off its level costs less than a response.
_LOOSE = 1e-4
_LOOSER = 3e-2
_ARMIJO = 1e-4
_MAX_BACKTRACKS = 60
_MAX_ITER = 500
_NOISE = 16 * np.finfo(np.float64).eps


def _step(
    ws: BatchedWorkspace, x: BatchedPoint, direction: FloatArray, grad: FloatArray
) -> tuple[BatchedPoint | None, int]:
    """Armijo backtracking along the projection arc (``None`` if nothing improves J).

    Also returns the points evaluated.
    """
    l_max = float(ws.profile.max_tokens)
    noise = _noise(x)
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
    evaluations, stalled = 0, 0
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
        # gains below J's rounding three times in a row within 1e-6 of the capacity: the
        # limit of double precision (at a huge alpha the optimum's distance to it is below)
        near = ws.profile.rate * trial.m1 >= (1.0 - 1e-6) * ws.server.load_limit(ws.profile.rate)
        stalled = stalled + 1 if near and trial.objective - x.objective <= _noise(x) else 0
        x = trial
        if stalled >= 3:
            return x, iteration, evaluations, STALLED
    return x, max_iter, evaluations, "iteration limit reached"


def _noise(x: BatchedPoint) -> float:
    return _NOISE * (1.0 + abs(x.objective))


def _coarse(levels: Levels) -> tuple[list[Level], bool]:
    """The coarse scan; if it has one peak, that level and the cubic's top beside it."""
    rtol = _LOOSE if levels.ws.profile.size <= _LARGE else _LOOSER
    coarse = levels.scan(_COARSE, rtol=rtol)
    top = single_peak(coarse)
    if top is None:
        return coarse, False
    found = [coarse[top]]
    for i in (top - 1, top):
        if i >= 0 and i + 1 < len(coarse):
            a = hermite_top(coarse[i], coarse[i + 1])
            if a is not None:
                found.append(levels.solve(a, rtol=rtol))
    return found, True


def _levels(ws: BatchedWorkspace, points: int | None) -> tuple[list[FloatArray], int]:
    """The polish's starts from the scan over E[S], and the O(N) evaluations spent.

    ``points=None``: the coarse scan with slopes, the full one only if it is not
    single-peaked (module docstring); else exactly ``points`` levels.
    """
    levels = Levels(ws)
    if points is None:
        found, single = _coarse(levels)
        if single:
            best = max(found, key=lambda level: level.objective)
            return [best.budgets], levels.evaluations
        if ws.profile.size > _LARGE:  # the full scan would be the coarse one again
            return [level.budgets for level in peaks(found, keep=2)], levels.evaluations
        points = _FULL
    found = levels.scan(points)
    return [level.budgets for level in peaks(found, keep=2)], levels.evaluations


def _idle(ws: BatchedWorkspace, x: BatchedPoint) -> BatchedPoint:
    """``x`` with the types of zero share at their best response (they do not move J).

    As today's solver: the budget such a type would get as a marginal type.
    """
    idle = ws.profile.share <= 0
    if not np.any(idle):
        return x
    target = project(ws.respond(x.delay.d_mean, x.delay.d_second), ws.profile.max_tokens)
    return ws.point(np.where(idle, target, x.budgets))


def _residual(ws: BatchedWorkspace, x: BatchedPoint) -> float:
    """Eq. (23) under the batched law at ``x`` (with its own delay law), in tokens.

    The responses take scipy's omega, as :func:`thinkq.batching.objective.kkt_residual`.
    """
    target = project(ws.respond(x.delay.d_mean, x.delay.d_second), ws.profile.max_tokens)
    return float(np.maximum.reduce(np.abs(x.budgets - target), initial=0.0))


def _search(
    ws: BatchedWorkspace,
    start: FloatArray | None,
    *,
    points: int | None,
    tol: float,
    max_iter: int,
) -> tuple[BatchedPoint, int, int, str]:
    """Scan E[S], polish the best peaks (and ``start``), keep the best."""
    starts, evaluations = _levels(ws, points)
    if start is not None:
        starts.append(start)
    best: tuple[BatchedPoint, int, str] | None = None
    for budgets in starts:
        # the polish aims below tol: its stopping test is a proxy for the KKT residual
        x0 = ws.point(budgets)
        x, iterations, polished, message = _polish(ws, x0, tol=tol / 10, max_iter=max_iter)
        evaluations += polished
        if best is None or x.objective > best[0].objective:
            best = (x, iterations, message)
    assert best is not None  # the scan's first level (l = 0) is always stable
    x, iterations, message = best
    return x, iterations, evaluations, message


def _served(profile: Profile, server: Server | None) -> tuple[Profile, Server]:
    """The profile served by ``server`` (default: its own, else the paper's M/G/1)."""
    if server is None:
        return profile, profile.server or Server()
    if server != profile.server:
        profile = profile.with_server(server)
    return profile, server


# long: numpy-style docstring of six parameters, then the checks and one result
def solve_batched(
    profile: Profile,
    server: Server | None = None,
    *,
    method: str = "auto",
    tol: float = DEFAULT_TOL,
    max_iter: int | None = None,
    points: int | None = None,
    start: ArrayLike | None = None,
) -> ContinuousResult:
    """Optimal continuous budgets for ``profile`` served by ``server``.

    Parameters
    ----------
    profile:
        The instance (rate, alpha, l_max and the task types).
    server:
        The batched server (:class:`thinkq.batching.Server`); default the profile's
        own (``profile.server``), or one slot if it has none. A server other than the
        profile's replaces it (the result's ``profile`` carries it).
    method:
        ``"auto"``: today's solver at B = 1 (P-K, concave), the scan otherwise;
        ``"scan"``: the global scan over E[S] with a Newton polish at every B.
    tol:
        Tolerance on the KKT residual, in tokens.
    max_iter:
        Newton iteration limit of the polish (default 500).
    points:
        Levels of E[S] in the scan. Default: 8 with their slopes, 24 (up to
        N = 10^4) where those do not show a single peak.
    start:
        A stable budget vector polished as well (a warm start), default none.

    Returns
    -------
    ContinuousResult
        Budgets, J, and the certificate (KKT residual in tokens, converged, message);
        ``method`` is ``"scan+newton"``, and ``gap_bound`` and ``bounds`` are ``None``
        unless the server has one slot (they are P-K's).
    """
    if method not in ("auto", "scan"):
        raise ValueError(f"method: expected 'auto' or 'scan', got {method!r}")
    check_limits(tol, max_iter)
    if points is not None and points < 2:
        raise ValueError(f"points: expected at least 2 levels, got {points!r}")
    profile, server = _served(profile, server)
    l0 = start_budgets(profile, start)
    if method == "auto" and server.single:
        return solve_mg1(profile, method="newton", tol=tol, max_iter=max_iter, start=l0)
    ws = BatchedWorkspace(profile, server)
    warm, limit = (None if start is None else l0), max_iter or _MAX_ITER
    x, iterations, evaluations, message = _search(ws, warm, points=points, tol=tol, max_iter=limit)
    residual = _residual(ws, x)
    if not residual <= tol and points is None and profile.size <= _LARGE:
        # the coarse scan's one start did not converge: the full scan's two best peaks
        found = _search(ws, warm, points=_FULL, tol=tol, max_iter=limit)
        evaluations += found[2]
        if found[0].objective >= x.objective:
            x, iterations, _, message = found
            residual = _residual(ws, x)
    idle = _idle(ws, x)
    if idle is not x:
        x, residual = idle, _residual(ws, idle)
    converged = bool(residual <= tol)
    if not converged and message == "KKT residual below tolerance":
        message = "step below tolerance, KKT residual not (the limit of double precision)"
    gap = None  # P-K's Frank-Wolfe bound needs J concave: proven at B = 1 only
    if profile.batched is None:
        gap = frank_wolfe_gap(profile, x.budgets, gradient(profile, x.budgets))
    return ContinuousResult(
        budgets=x.budgets, objective=x.objective, converged=converged, iterations=iterations,
        evaluations=evaluations + 1, method=METHOD, message=message, kkt_residual=residual,
        gap_bound=gap, profile=profile, start_objective=ws.point(l0).objective,
    )  # fmt: skip
