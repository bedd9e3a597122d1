"""``solve_slo``: the best accuracy whose system time meets latency objectives.

See :mod:`thinkq.slo.search` for the path along alpha and ``docs/slo.md`` for what is
exact (an overall mean objective: the budgets are the unconstrained solve at the
shadow price, with a duality bound on what any budgets could reach) and what is a
heuristic (percentiles and per-type objectives follow the same path).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from thinkq.errors import SloError
from thinkq.profile import Profile
from thinkq.simulate.distributions import Distribution
from thinkq.slo.evaluate import Measured, Target, TimesFunction, resolve
from thinkq.slo.objectives import Objective, parse_objectives
from thinkq.slo.result import SloResult
from thinkq.slo.screen import MAX_TYPES, Screen
from thinkq.slo.search import AlphaPath, PathPoint, search
from thinkq.slo.times import DEFAULT_QUERIES, tails
from thinkq.solve import DEFAULT_TOL

__all__ = ["DEFAULT_RTOL", "solve_slo"]

#: Relative precision of the shadow price.
DEFAULT_RTOL = 1e-9


def _unmeetable(targets: Sequence[Target], zero: Measured) -> SloError:
    """The error for the first objective that fails at zero budgets."""
    for target, value in zip(targets, zero.values, strict=True):
        o = target.objective
        if not value <= o.target:
            shown = "infinite (the queue is unstable)" if math.isinf(value) else f"{value:.4g} s"
            return SloError(
                f"slo: {o.text!r}: {o.statistic}"
                f"{'' if o.task is None else ' of ' + o.task} at zero budgets is {shown} > "
                f"{o.target:g} s; no budgets meet it",
                objective=str(o),
                smallest=value,
            )
    raise AssertionError("zero budgets meet every objective")  # pragma: no cover


def _accuracy_bound(targets: Sequence[Target], points: Sequence[PathPoint]) -> float | None:
    """Weak duality: for budgets with E[T] <= T* and any alpha,
    A(l) <= (J_opt(alpha) + T*) / alpha <= (J(l*) + gap_bound + T*) / alpha."""
    if not all(t.objective.exact for t in targets):
        return None
    bound = math.inf
    limit = min(t.objective.target for t in targets)
    for point in points:
        gap = point.result.continuous.gap_bound
        if gap is None:
            return None
        value = (point.result.continuous_objective + gap + limit) / point.alpha
        bound = min(bound, value)
    return bound if math.isfinite(bound) else None


# long: the signature and docstring document its eleven options (as thinkq.solve does)
def solve_slo(
    profile: Profile,
    objectives: Iterable[str | Objective],
    *,
    method: str = "auto",
    integer: str = "best",
    tol: float = DEFAULT_TOL,
    max_iter: int | None = None,
    rtol: float = DEFAULT_RTOL,
    answer_times: Sequence[Distribution] | None = None,
    queries: int = DEFAULT_QUERIES,
    seed: int = 0,
    times: TimesFunction | None = None,
    screening: bool = True,
) -> SloResult:
    """Maximise sum_k pi_k p_k(l_k) over integer budgets subject to ``objectives``.

    The SLO replaces the profile's alpha: the answer is ``thinkq.solve`` at alpha*,
    the largest alpha (to ``rtol``, relative) at which its integer budgets meet every
    objective; the profile's alpha is only where the search starts.

    Parameters
    ----------
    profile:
        The instance (its alpha is not used in the answer).
    objectives:
        ``"mean<=2s"``, ``"p95<=8s"``, ``"gsm8k:p99<=15s"``, ... (all must hold;
        see :mod:`thinkq.slo.objectives`).
    method, integer, tol, max_iter:
        Passed to every :func:`thinkq.solve` along the path.
    rtol:
        Relative precision of the shadow price alpha*.
    answer_times, queries, seed:
        Passed to :func:`thinkq.tails.system_times` for percentile objectives: the
        answer-time distributions, and on a batched server the simulated queries per
        budget vector and their seed (the same at every point of the path).
    times:
        Budgets -> their system-time distribution, in place of ``system_times``
        with the three options above (tests inject their own).
    screening:
        With the default ``times`` on the paper's server, decide most points of the
        path on coarse lattices (:mod:`thinkq.slo.screen`); the exact law still
        gives every reported value. False: the exact law at every point.

    Raises
    ------
    ValueError
        A malformed objective, an unknown task, a bad ``rtol``.
    SloError
        An objective that zero budgets (the smallest mean and percentiles) miss.
    """
    parsed = parse_objectives(objectives)
    targets = resolve(parsed, profile)
    if not (math.isfinite(rtol) and 0.0 < rtol < 1.0):
        raise ValueError(f"rtol: expected a number in (0, 1), got {rtol!r}")
    coarse = None
    if times is None:
        times = tails(answer_times=answer_times, queries=queries, seed=seed)
        percentiles = any(t.objective.percentile is not None for t in targets)
        if screening and percentiles and profile.batched is None and profile.size <= MAX_TYPES:
            coarse = Screen(profile, targets, answer_times)
    options = {"method": method, "integer": integer, "tol": tol, "max_iter": max_iter}
    path = AlphaPath(profile, targets, times, options, coarse)
    zero = np.zeros(profile.size, dtype=np.int64)
    if not (coarse is not None and coarse.holds(zero)) and not path.measure(zero).feasible:
        raise _unmeetable(targets, path.measure(zero, exact=True))
    lo, hi = search(path, profile.alpha, rtol)
    lo = path.exact(lo)
    if not lo.feasible:  # the screen misjudged (never seen): the exact path throughout
        path = AlphaPath(profile, targets, times, options)
        lo, hi = search(path, profile.alpha, rtol)
    return SloResult(
        objectives=tuple(t.objective for t in targets),
        achieved=lo.measured.values,
        solution=lo.result,
        shadow_price=None if hi is None and path.saturated(lo) else lo.alpha,
        next_alpha=None if hi is None else hi.alpha,
        next_accuracy=None if hi is None else hi.result.accuracy,
        accuracy_bound=None if hi is None else _accuracy_bound(targets, (lo, hi)),
        solves=path.solves,
        evaluations=path.evaluations,
        percentile_method=lo.measured.method,
    )
