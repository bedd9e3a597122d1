"""Accuracy curves p(l) = A (1 - exp(-b l)) + D (eq. 2) by maximum likelihood.

The data of one task are binomial counts: at budget l_j, ``correct[j]`` of
``trials[j]`` answers were right. The fit maximises the binomial likelihood over the
paper's constraint set (section II), 0 < A, 0 <= D, A + D <= 1, b > 0, with A at
least :data:`~thinkq.fit.A_MIN` and b within bounds set by the measured budgets.

For a fixed b, p(l) = D e^{-b l} + (A + D)(1 - e^{-b l}) is linear in (D, A + D), so
the likelihood is concave in them and has one maximum, found by projected Newton. Only
the profile likelihood over b can have several optima. It is computed on a grid of
log b; around each of its (up to three best) local optima successively finer grids
and a parabolic step locate b, and the best optimum wins. Replicates of a bootstrap
are searched in the same batched array operations. The search is in
:mod:`._likelihood`, the goodness of fit in :mod:`._goodness`; :func:`fit_warnings`
says in words what a fit cannot tell: a flat or degenerate curve, too few budgets, b
on a bound or still rising at the largest budget, and a curve the data reject.

``b`` is bounded by the measurement: ``b_lo = 0.01 / l_max`` (below it the curve is a
straight line over the measured budgets: A and b cannot be told apart) and
``b_hi = 10 / l_min`` with l_min the smallest positive budget (above it the curve has
saturated before the first positive budget). A fit that ends on a bound says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thinkq._typing import FloatArray
from thinkq.fit._goodness import goodness
from thinkq.fit._likelihood import A_MIN, search

__all__ = ["AccuracyFit", "b_bounds", "fit_accuracy", "fit_warnings", "refit_accuracy"]

#: b * l_max at the lower bound and b * l_min at the upper bound of b.
B_SPAN = (0.01, 10.0)
#: b of a flat curve where no budget > 0 bounds it (irrelevant while A = A_MIN).
FLAT_B = 1e-3
_GRID = 64  # values of b of the point estimate's profile grid
_COARSE = 24  # the same for bootstrap replicates


@dataclass(frozen=True)
class AccuracyFit:
    """A fitted accuracy curve with its goodness of fit.

    ``status`` is ``"ok"``, ``"flat"`` (no measurable gain: A = A_MIN, D = the mean
    accuracy), ``"one budget"``, ``"all correct"`` or ``"all wrong"``. ``deviance`` is
    the binomial G^2 against the saturated model and ``pearson`` X^2, both on ``dof``
    degrees of freedom (budgets minus fitted parameters); ``p_value`` is
    P(chi^2_dof >= deviance) (None when dof = 0). ``dispersion`` = X^2 / dof: about 1
    for binomial data, larger when answers are correlated (the same items in every run).
    """

    A: float
    b: float
    D: float
    status: str
    b_bounds: tuple[float, float] | None
    deviance: float
    pearson: float
    dof: int
    p_value: float | None
    warnings: tuple[str, ...] = ()

    @property
    def dispersion(self) -> float | None:
        return self.pearson / self.dof if self.dof > 0 else None

    def curve(self, budgets: FloatArray) -> FloatArray:
        """p(l) at ``budgets`` (tokens)."""
        result: FloatArray = self.A * -np.expm1(-self.b * np.asarray(budgets, float)) + self.D
        return result


def b_bounds(budgets: FloatArray) -> tuple[float, float] | None:
    """(b_lo, b_hi) per token from the measured budgets; None without a budget > 0."""
    positive = budgets[budgets > 0]
    if positive.size == 0:
        return None
    return B_SPAN[0] / float(positive.max()), B_SPAN[1] / float(positive.min())


def _flat(
    l: FloatArray, n: FloatArray, k: FloatArray, bounds: tuple[float, float] | None, status: str
) -> AccuracyFit:
    D = min(float(k.sum() / n.sum()), 1.0 - A_MIN)
    b = float(np.sqrt(bounds[0] * bounds[1])) if bounds else FLAT_B
    p = A_MIN * -np.expm1(-b * l) + D
    deviance, pearson, dof, p_value = goodness(l, n, k, p, 1)
    return AccuracyFit(A_MIN, b, D, status, bounds, deviance, pearson, dof, p_value)


def fit_accuracy(budgets: FloatArray, trials: FloatArray, correct: FloatArray) -> AccuracyFit:
    """Maximum-likelihood p(l) = A (1 - e^{-b l}) + D from binomial counts.

    Parameters
    ----------
    budgets:
        The distinct measured budgets l_j (tokens).
    trials, correct:
        Answers and correct answers at each budget.

    Degenerate data never fail: one budget, all correct, all wrong or no measurable
    gain give a flat curve (A = A_MIN, D = the accuracy) with ``status`` and a warning.
    """
    l, n, k = (np.asarray(a, dtype=np.float64) for a in (budgets, trials, correct))
    bounds = b_bounds(l)
    if l.size < 2 or bounds is None:
        fit = _flat(l, n, k, bounds, "one budget")
    elif np.all(k == n) or np.all(k == 0):
        fit = _flat(l, n, k, bounds, "all correct" if np.all(k == n) else "all wrong")
    else:
        found = search(l, n[None, :], k[None, :], bounds, _GRID)
        A, b, D = (float(a[0]) for a in found)
        if A * -np.expm1(-b * float(l.max())) < 1e-3:
            fit = _flat(l, n, k, bounds, "flat")
        else:
            p = A * -np.expm1(-b * l) + D
            deviance, pearson, dof, p_value = goodness(l, n, k, p, 3)
            fit = AccuracyFit(A, b, D, "ok", bounds, deviance, pearson, dof, p_value)
    return _with_warnings(fit, l, n, k)


def _with_warnings(fit: AccuracyFit, l: FloatArray, n: FloatArray, k: FloatArray) -> AccuracyFit:
    return AccuracyFit(**{**fit.__dict__, "warnings": fit_warnings(fit, l, n, k)})


def fit_warnings(fit: AccuracyFit, l: FloatArray, n: FloatArray, k: FloatArray) -> tuple[str, ...]:
    """What ``fit`` of counts ``n``, ``k`` at budgets ``l`` cannot tell, in words."""
    notes = []
    top = float(l.max())
    if fit.status == "one budget":
        notes.append(
            f"only budget {top:g} was measured: the curve is taken as flat at the measured "
            f"accuracy {fit.D:.3f} (A and b are not identified; this task gets no thinking)"
        )
    elif fit.status in ("all correct", "all wrong"):
        notes.append(
            f"{fit.status}: accuracy is {fit.D:.0f} at every measured budget; the curve is "
            f"flat (A = {A_MIN:g}) and this task gets no thinking tokens"
        )
    elif fit.status == "flat":
        notes.append(
            f"no measurable gain from thinking: the fitted curve is flat at accuracy "
            f"{fit.D:.3f} (A = {A_MIN:g}); this task gets no thinking tokens"
        )
    elif l.size < 3:
        notes.append(
            f"only {l.size} budgets were measured: the curve's three parameters are not "
            "identified (measure at least 3 budgets, better 5 or more)"
        )
    elif fit.b_bounds is not None:
        lo, hi = fit.b_bounds
        positive = float(l[l > 0].min())
        if fit.b >= hi * (1 - 1e-6):
            notes.append(
                f"b is at its upper bound {hi:.3g} (= 10 / {positive:g}): accuracy saturates "
                f"before the smallest positive budget, so b is not identified; measure "
                "smaller budgets"
            )
        elif fit.b <= lo * (1 + 1e-6):
            notes.append(
                f"b is at its lower bound {lo:.3g} (= 0.01 / {top:g}): accuracy rises in a "
                "straight line over the measured budgets, so A and b are not told apart and "
                f"budgets above {top:g} are extrapolation"
            )
        elif fit.b * top < 1.0:
            reached = -np.expm1(-fit.b * top)
            notes.append(
                f"accuracy is still rising at the largest budget {top:g} ({reached:.0%} of "
                f"its fitted rise A): A, b and budgets above {top:g} rest on extrapolation"
            )
    if fit.p_value is not None and fit.p_value < 1e-3:
        gap = float(np.max(np.abs(k / n - fit.curve(l))))
        if gap > 0.02:
            notes.append(
                f"the curve does not describe the data (deviance {fit.deviance:.1f} on "
                f"{fit.dof} dof, p = {fit.p_value:.1e}; largest gap {gap:.3f})"
            )
    return tuple(notes)


def refit_accuracy(
    budgets: FloatArray, trials: FloatArray, correct: FloatArray, point: AccuracyFit
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(A, b, D) for R resampled sets of counts (bootstrap replicates, shape (R, J)).

    Flat point fits stay flat (D = the replicate's accuracy); otherwise each row gets
    the same search as the point estimate, on a coarser grid of b.
    """
    l = np.asarray(budgets, dtype=np.float64)
    n = np.atleast_2d(np.asarray(trials, dtype=np.float64))
    k = np.atleast_2d(np.asarray(correct, dtype=np.float64))
    flat_D = np.minimum(k.sum(1) / np.maximum(n.sum(1), 1.0), 1.0 - A_MIN)
    A, b, D = np.full(n.shape[0], A_MIN), np.full(n.shape[0], point.b), flat_D
    fitted = np.count_nonzero(n > 0, axis=1) >= 2
    if point.status != "ok" or point.b_bounds is None or not fitted.any():
        return A, b, D
    A[fitted], b[fitted], D[fitted] = search(l, n[fitted], k[fitted], point.b_bounds, _COARSE)
    return A, b, D
