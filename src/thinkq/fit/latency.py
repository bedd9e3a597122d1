"""Service-time lines t(l) = t0 + c l (eq. 1) and the variance around them.

Latencies are summarised per budget first: the mean, the count and the sum of squared
deviations of the *inliers*. A request is an outlier when it lies more than
:data:`OUTLIER_CUTOFF` robust standard deviations (1.4826 x the median absolute
deviation) from the median of its budget: a request that stalled is set aside and
cannot tilt the line, while the mean of the rest still estimates the mean service time
(a median would not, for skewed answer times).

The line is a weighted least-squares fit to the budget means with weights
n_j / s_j^2 (the inverse variance of each mean), constrained to t0 >= 0 and
c >= :data:`C_MIN`; all functions work on stacked replicates (leading axes) so that a
bootstrap costs a few array operations. The variance written to a profile is the
pooled mean square of the inliers around the line: the variance of the answer part of
the service time (S = c l + X, :mod:`thinkq.simulate.distributions`), which adds to E[S^2].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, stats

from thinkq._typing import FloatArray

__all__ = [
    "C_MIN",
    "OUTLIER_CUTOFF",
    "LatencyFit",
    "LatencyStats",
    "fit_latency",
    "fit_line",
    "inliers",
    "pooled_variance",
    "r_squared",
]

#: A request further than this many robust standard deviations from its budget's
#: median latency is an outlier.
OUTLIER_CUTOFF = 5.0
#: The smallest c (seconds per token) a fit returns: profiles need c > 0.
C_MIN = 1e-9
#: Share of outliers above which the fit warns.
OUTLIER_WARNING = 0.05


class LatencyStats(NamedTuple):
    """Per-budget inlier latency summaries, shape (..., J): count, mean (s) and the sum
    of squared deviations from the mean (s^2)."""

    n: FloatArray
    mean: FloatArray
    ss: FloatArray


def inliers(latency: FloatArray, group: NDArray[np.intp], groups: int) -> NDArray[np.bool_]:
    """True for requests within OUTLIER_CUTOFF robust sd of their group's median."""
    keep = np.ones(latency.size, dtype=bool)
    for j in range(groups):
        where = np.flatnonzero(group == j)
        t = latency[where]
        if t.size < 3:
            continue
        deviation = np.abs(t - np.median(t))
        scale = 1.4826 * float(np.median(deviation))
        if scale == 0.0:  # more than half identical: fall back on the mean deviation
            scale = 1.2533 * float(np.mean(deviation))
        if scale > 0.0:
            keep[where] = deviation <= OUTLIER_CUTOFF * scale
    return keep


def _sums(budgets: FloatArray, weights: FloatArray, mean: FloatArray) -> tuple[FloatArray, ...]:
    w, l = weights, budgets
    return (
        w.sum(-1),
        (w * l).sum(-1),
        (w * l * l).sum(-1),
        (w * mean).sum(-1),
        (w * l * mean).sum(-1),
        (w * mean * mean).sum(-1),
    )


def fit_line(
    budgets: FloatArray, mean: FloatArray, weights: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """(t0, c) minimising sum_j w_j (mean_j - t0 - c l_j)^2 with t0 >= 0, c >= C_MIN.

    ``mean`` and ``weights`` have shape (..., J); so do the results without the J.
    Where the free solution is infeasible, the better of the faces t0 = 0 and
    c = C_MIN is the constrained optimum.
    """
    sw, swl, swll, swm, swlm, swmm = _sums(budgets, weights, mean)
    det = sw * swll - swl * swl
    with np.errstate(divide="ignore", invalid="ignore"):
        c_free = np.where(det > 0, (sw * swlm - swl * swm) / det, C_MIN)
        t0_free = (swm - c_free * swl) / sw
        c_face = np.maximum(np.where(swll > 0, swlm / swll, C_MIN), C_MIN)
    t0_face = np.maximum((swm - C_MIN * swl) / sw, 0.0)

    def sse(t0: FloatArray, c: FloatArray) -> FloatArray:
        out: FloatArray = (
            swmm - 2 * t0 * swm - 2 * c * swlm + t0 * t0 * sw + 2 * t0 * c * swl + c * c * swll
        )
        return out

    # the problem is convex: the free solution if feasible, else the better face
    feasible = (t0_free >= 0) & (c_free >= C_MIN)
    zero_t0 = sse(np.zeros_like(c_face), c_face) <= sse(t0_face, np.full_like(t0_face, C_MIN))
    t0 = np.where(feasible, t0_free, np.where(zero_t0, 0.0, t0_face))
    c = np.where(feasible, c_free, np.where(zero_t0, c_face, C_MIN))
    return np.asarray(t0, dtype=np.float64), np.asarray(c, dtype=np.float64)


def pooled_variance(
    budgets: FloatArray, data: LatencyStats, t0: FloatArray, c: FloatArray
) -> FloatArray:
    """Mean square of the inliers around the line, sum / (n - 2), seconds squared."""
    line = t0[..., None] + c[..., None] * budgets
    total = (data.ss + data.n * (data.mean - line) ** 2).sum(-1)
    dof = np.maximum(data.n.sum(-1) - 2.0, 1.0)
    result: FloatArray = np.maximum(total / dof, 0.0)
    return result


def r_squared(budgets: FloatArray, data: LatencyStats, t0: float, c: float) -> float | None:
    """1 - SSE / SST of the inlier requests around the line t0 + c l (None if SST = 0)."""
    total = float(data.n.sum())
    if total == 0:
        return None
    grand = float((data.n * data.mean).sum()) / total
    sse = float((data.ss + data.n * (data.mean - (t0 + c * budgets)) ** 2).sum())
    sst = float((data.ss + data.n * (data.mean - grand) ** 2).sum())
    return 1.0 - sse / sst if sst > 0 else None


def weights_of(budgets: FloatArray, data: LatencyStats) -> FloatArray:
    """n_j / v(l_j), the inverse variance of each budget mean.

    The latency variance v(l) = v0 + v1 l + v2 l^2 (all >= 0: a fixed part, a part
    per token and a part proportional to the thinking time) is fitted to the budgets'
    sample variances in relative terms, rather than each budget weighted by its own
    variance: with skewed latencies a budget's sample variance rises with its sample
    mean, and weighting each mean by its own variance would bias the line low.
    """
    var = data.ss / np.maximum(data.n - 1.0, 1.0)
    floor = (1e-6 * np.abs(data.mean) + 1e-9) ** 2
    var = np.maximum(var, floor)
    if budgets.size >= 4:
        scaled = budgets / max(float(budgets.max()), 1.0)
        design = np.column_stack([np.ones_like(scaled), scaled, scaled * scaled])
        coefficients, _ = optimize.nnls(design / var[:, None], np.ones_like(var))
        var = np.maximum(design @ coefficients, floor)
    result: FloatArray = data.n / var
    return result


@dataclass(frozen=True)
class LatencyFit:
    """A fitted service-time line with its goodness of fit.

    ``variance`` is the pooled variance around the line (s^2); ``budget_variance`` the
    variance at each budget. ``chi2`` = sum_j w_j (mean_j - t(l_j))^2 on ``dof`` = J - 2
    degrees of freedom, ``p_value`` its upper tail (None for fewer than 3 budgets).
    ``r_squared`` is the share of the inlier requests' latency variance that the
    line explains (None for a summary without variances); ``r_squared_means`` the
    same for the budget means, weighted by their counts: how straight the mean
    latency is in the budget, apart from the spread between requests (prompts of
    different lengths) that no line in l can explain. ``outliers`` counts the
    requests set aside; ``c_borrowed`` is True when c came from the other tasks
    because this one was measured at a single budget.
    """

    t0: float
    c: float
    variance: float
    budget_mean: FloatArray
    budget_variance: FloatArray
    weights: FloatArray
    chi2: float | None
    dof: int
    p_value: float | None
    outliers: int
    requests: int
    r_squared: float | None = None
    r_squared_means: float | None = None
    c_borrowed: bool = False
    warnings: tuple[str, ...] = ()

    def line(self, budgets: FloatArray) -> FloatArray:
        """t(l) = t0 + c l at ``budgets`` (tokens), seconds."""
        result: FloatArray = self.t0 + self.c * np.asarray(budgets, dtype=np.float64)
        return result


def fit_latency(
    budgets: FloatArray,
    data: LatencyStats,
    *,
    outliers: int = 0,
    c_fixed: float | None = None,
    variance_known: bool = True,
) -> LatencyFit:
    """Fit t(l) = t0 + c l to per-budget latency summaries.

    With a single budget, c is not identified: pass ``c_fixed`` (the other tasks'
    c; the per-token time is a property of the model and the server) and t0 follows.
    ``variance_known=False`` (a summary without variances) gives variance 0.
    """
    l = np.asarray(budgets, dtype=np.float64)
    weights = weights_of(l, data)
    if c_fixed is not None:
        c = np.asarray(c_fixed)
        t0 = np.maximum((weights * (data.mean - c * l)).sum() / weights.sum(), 0.0)
    else:
        t0, c = fit_line(l, data.mean, weights)
    budget_variance = data.ss / np.maximum(data.n - 1.0, 1.0)
    variance = float(pooled_variance(l, data, t0, c)) if variance_known else 0.0
    residual = data.mean - (t0 + c * l)
    dof = l.size - (1 if c_fixed is not None else 2)
    chi2 = float((weights * residual**2).sum()) if dof > 0 and variance_known else None
    p_value = float(stats.chi2.sf(chi2, dof)) if chi2 is not None else None
    fit = LatencyFit(
        t0=float(t0),
        c=float(c),
        variance=variance,
        budget_mean=np.asarray(data.mean, dtype=np.float64),
        budget_variance=budget_variance,
        weights=weights,
        chi2=chi2,
        dof=max(dof, 0),
        p_value=p_value,
        outliers=outliers,
        requests=int(data.n.sum()) + outliers,
        r_squared=r_squared(l, data, float(t0), float(c)) if variance_known else None,
        r_squared_means=r_squared(l, data._replace(ss=np.zeros_like(data.ss)), float(t0), float(c)),
        c_borrowed=c_fixed is not None,
    )
    return LatencyFit(**{**fit.__dict__, "warnings": _warnings(fit, l, variance_known)})


def _warnings(fit: LatencyFit, l: FloatArray, variance_known: bool) -> tuple[str, ...]:
    notes = []
    if fit.c_borrowed:
        notes.append(
            f"latency was measured at one budget only: c = {fit.c:.4g} s/token is the "
            "median of the other tasks (same model and server), t0 follows from it"
        )
    elif fit.c <= C_MIN * (1 + 1e-9):
        notes.append(
            f"latency does not grow with the budget: c is at its floor {C_MIN:g} s/token "
            "(thinking looks free; check the measurements)"
        )
    if fit.requests and fit.outliers > OUTLIER_WARNING * fit.requests:
        notes.append(
            f"{fit.outliers} of {fit.requests} requests ({fit.outliers / fit.requests:.1%}) "
            f"are outliers (> {OUTLIER_CUTOFF:g} robust sd from their budget's median) and "
            "are left out of t0, c and the variance"
        )
    if not variance_known:
        notes.append(
            "the summary gives no latency variance: service times are taken as "
            "deterministic (variance 0)"
        )
    if fit.p_value is not None and fit.p_value < 1e-3:
        line = fit.line(l)
        gap = float(np.max(np.abs(fit.budget_mean - line) / np.maximum(line, 1e-9)))
        if gap > 0.02:
            notes.append(
                f"latency is not linear in the budget (chi2 {fit.chi2:.1f} on {fit.dof} dof, "
                f"p = {fit.p_value:.1e}; a budget mean is {gap:.1%} off the line)"
            )
    return tuple(notes)
