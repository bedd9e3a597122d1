"""Goodness of fit of an accuracy curve, and the warnings a fit carries.

:func:`goodness` gives the binomial deviance G^2 against the saturated model,
Pearson's X^2, their degrees of freedom and the p-value of G^2;
:func:`fit_warnings` says in words what a fit cannot tell: a flat or degenerate
curve, too few budgets, b on a bound or still rising at the largest budget, and a
curve the data reject.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from thinkq.fit._likelihood import A_MIN, EPS

if TYPE_CHECKING:
    from thinkq.fit.accuracy import AccuracyFit

__all__ = ["fit_warnings", "goodness"]

FloatArray = NDArray[np.float64]


def goodness(
    l: FloatArray, n: FloatArray, k: FloatArray, p: FloatArray, parameters: int
) -> tuple[float, float, int, float | None]:
    """(deviance G^2, Pearson X^2, dof, p-value of G^2) of curve values ``p``.

    ``l``, ``n``, ``k``: budgets (tokens), trials and correct answers per budget;
    ``parameters`` is the number of fitted parameters (3, or 1 for a flat curve).
    The p-value is ``None`` when no degree of freedom is left.
    """
    p = np.clip(p, EPS, 1.0 - EPS)
    observed = k / n
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(k > 0, k * np.log(observed / p), 0.0) + np.where(
            k < n, (n - k) * np.log((1 - observed) / (1 - p)), 0.0
        )
    deviance = float(max(2.0 * term.sum(), 0.0))
    pearson = float(np.sum((k - n * p) ** 2 / (n * p * (1 - p))))
    dof = max(int(l.size - parameters), 0)
    p_value = float(stats.chi2.sf(deviance, dof)) if dof > 0 else None
    return deviance, pearson, dof, p_value


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
