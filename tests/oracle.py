"""An independent reference solver for the relaxed problem (9): cvxpy + Clarabel.

Nothing here calls thinkq's formulas or solvers, so a test that compares thinkq with
this module checks two independent implementations of the paper against each other.

J (eq. 7) is DCP-concave once written as

    alpha * sum_k pi_k (A_k (1 - exp(-b_k l_k)) + D_k)
        - lambda / 2 * quad_over_lin(sqrt(pi) * t, 1 - lambda E[S]) - E[S]

with t = t0 + c l affine and E[S] = pi . t: quad_over_lin(x, y) = |x|^2 / y is jointly
convex for y > 0, which also keeps the solution inside the stability region (4).
The variable is scaled, l = l_max x with x in [0, 1]^N, so that the conic solver sees
numbers of order one whatever l_max is.

Types with share 0 do not enter J; they are dropped from the program and get budget 0
in the returned vector (any budget is optimal for them).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from decimal import (
    MAX_EMAX,
    MIN_EMIN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    localcontext,
)
from typing import Any

import cvxpy as cp
import numpy as np
from numpy.typing import NDArray

__all__ = [
    "OracleResult",
    "exact_context",
    "exact_moments",
    "exact_objective",
    "objective_value",
    "solve_oracle",
    "term_scale",
]

FloatArray = NDArray[np.float64]

_ACCEPTED = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
# Clarabel at (almost) the limit of float64, then looser where it fails numerically;
# the tests compare J to 1e-7 relative, and 1e-8 still leaves a margin of ten.
_TOLERANCES = (1e-12, 1e-10, 1e-8)
_CLARABEL = {"tol_ktratio": 1e-10, "max_iter": 400}


@dataclass(frozen=True)
class OracleResult:
    """The oracle's optimal budgets (tokens) and J there (by :func:`objective_value`)."""

    budgets: FloatArray
    objective: float
    status: str


def _columns(profile: Any) -> tuple[FloatArray, ...]:
    return tuple(
        np.asarray(getattr(profile, key), dtype=np.float64)
        for key in ("share", "A", "b", "D", "t0", "c")
    )


def _extra(profile: Any) -> float:
    """sum_k pi_k Var(S_k): what service-time variance adds to E[S^2] (0 in the paper)."""
    variance = getattr(profile, "variance", None)
    if variance is None:
        return 0.0
    return math.fsum(np.asarray(profile.share, dtype=np.float64) * np.asarray(variance))


def objective_value(profile: Any, budgets: Any) -> float:
    """J(l) of eq. (7), written out independently of thinkq.model; -inf if unstable.

    Uses math.fsum for the sums so that its own rounding error is negligible.
    """
    pi, a, b, d, t0, c = _columns(profile)
    ell = np.asarray(budgets, dtype=np.float64)
    rate, alpha = float(profile.rate), float(profile.alpha)
    t = t0 + c * ell
    mean = math.fsum(pi * t)
    second = math.fsum(pi * t * t) + _extra(profile)
    slack = 1.0 - rate * mean
    if slack <= 0:
        return float("-inf")
    accuracy = math.fsum(pi * (a * -np.expm1(-b * ell) + d))
    return alpha * accuracy - rate * second / (2.0 * slack) - mean


def term_scale(profile: Any, budgets: Any) -> float:
    """|alpha * mean accuracy| + mean system time at ``budgets``: the size of J's terms.

    J itself can be close to zero while its two terms are large, so relative
    comparisons of J are made against this scale.
    """
    pi, a, b, d, t0, c = _columns(profile)
    ell = np.asarray(budgets, dtype=np.float64)
    rate, alpha = float(profile.rate), float(profile.alpha)
    t = t0 + c * ell
    mean = math.fsum(pi * t)
    second = math.fsum(pi * t * t) + _extra(profile)
    slack = 1.0 - rate * mean
    accuracy = math.fsum(pi * (a * -np.expm1(-b * ell) + d))
    return abs(alpha * accuracy) + rate * second / (2.0 * slack) + mean


def solve_oracle(profile: Any) -> OracleResult:
    """Solve (9) for ``profile`` with cvxpy + Clarabel at tight tolerances (1e-12;
    1e-10, then 1e-8 where Clarabel fails numerically)."""
    pi, a, b, d, t0, c = _columns(profile)
    rate, alpha = float(profile.rate), float(profile.alpha)
    l_max = float(profile.max_tokens)
    n = pi.size
    keep = pi > 0
    budgets = np.zeros(n)
    if l_max == 0 or not np.any(keep):
        return OracleResult(budgets, objective_value(profile, budgets), "trivial")
    pi, a, b, d, t0, c = (x[keep] for x in (pi, a, b, d, t0, c))
    x = cp.Variable(int(keep.sum()))
    ell = l_max * x
    t = t0 + cp.multiply(c, ell)
    mean = pi @ t
    accuracy = pi @ (a - cp.multiply(a, cp.exp(cp.multiply(-b, ell)))) + float(np.dot(pi, d))
    slack = 1.0 - rate * mean
    wait = (rate / 2.0) * cp.quad_over_lin(cp.multiply(np.sqrt(pi), t), slack)
    extra = _extra(profile)
    if extra > 0:
        wait = wait + (rate * extra / 2.0) * cp.inv_pos(slack)
    problem = cp.Problem(cp.Maximize(alpha * accuracy - wait - mean), [x >= 0, x <= 1])
    for tol in _TOLERANCES:
        try:
            with warnings.catch_warnings():
                # At tight tolerances Clarabel may stop at its "reduced accuracy" level
                # and cvxpy warns "Solution may be inaccurate". The tests compare J,
                # not the status, so the warning carries no information for them.
                warnings.filterwarnings("ignore", "Solution may be inaccurate", UserWarning)
                settings = {**_CLARABEL, "tol_gap_abs": tol, "tol_gap_rel": tol, "tol_feas": tol}
                problem.solve(solver=cp.CLARABEL, **settings)
        except cp.error.SolverError:
            continue  # numerical trouble (e.g. load near 1): retry a little looser
        if x.value is not None and problem.status in _ACCEPTED:
            break
    else:
        raise RuntimeError(f"oracle: Clarabel returned no solution ({problem.status})")
    budgets[keep] = np.clip(l_max * np.asarray(x.value, dtype=np.float64), 0.0, l_max)
    return OracleResult(budgets, objective_value(profile, budgets), str(problem.status))


def _decimal(value: Any) -> Decimal:
    # float -> Decimal is exact: every binary64 number is a finite decimal
    return Decimal(float(value))


def exact_moments(profile: Any, budgets: Any) -> tuple[Decimal, Decimal]:
    """E[S] and E[S^2] (eq. 3) at ``budgets`` in Decimal arithmetic (call within
    :func:`exact_context`)."""
    pi, _a, _b, _d, t0, c = _columns(profile)
    mean = Decimal(0)
    second = Decimal(0)
    variance = getattr(profile, "variance", None)
    if variance is not None:
        for k, v_k in enumerate(np.asarray(variance, dtype=np.float64)):
            second += _decimal(pi[k]) * _decimal(v_k)
    for k, l_k in enumerate(np.asarray(budgets, dtype=np.float64)):
        t = _decimal(t0[k]) + _decimal(c[k]) * _decimal(l_k)
        mean += _decimal(pi[k]) * t
        second += _decimal(pi[k]) * t * t
    return mean, second


def exact_objective(profile: Any, budgets: Any) -> Decimal:
    """J(l) of eq. (7) in Decimal arithmetic, to ~80 significant digits.

    The float64 inputs are converted exactly, so the only error is Decimal's own
    rounding at 80 digits: a reference for checks that float64 cannot make (finite
    differences with tiny steps, changes of J far below J's last digit).
    """
    pi, a, b, d, _t0, _c = _columns(profile)
    ell = np.asarray(budgets, dtype=np.float64)
    with exact_context():
        mean, second = exact_moments(profile, ell)
        rate = _decimal(profile.rate)
        slack = 1 - rate * mean
        if slack <= 0:
            return Decimal("-Infinity")
        accuracy = Decimal(0)
        for k, l_k in enumerate(ell):
            decay = (-_decimal(b[k]) * _decimal(l_k)).exp()
            accuracy += _decimal(pi[k]) * (_decimal(a[k]) * (1 - decay) + _decimal(d[k]))
        return _decimal(profile.alpha) * accuracy - rate * second / (2 * slack) - mean


def exact_context() -> Any:
    """A Decimal context of 80 digits with an exponent range that never overflows."""
    return localcontext(
        Context(prec=80, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[InvalidOperation, DivisionByZero])
    )
