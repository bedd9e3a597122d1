"""Goodness of fit of an accuracy curve to binomial counts.

:func:`goodness` gives the binomial deviance G^2 against the saturated model,
Pearson's X^2, their degrees of freedom and the p-value of G^2.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from thinkq._typing import FloatArray
from thinkq.fit._likelihood import EPS

__all__ = ["goodness"]


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
