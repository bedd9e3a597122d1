"""The paper's projected fixed-point iteration (eqs. 22-24).

l^(n+1) = clip(l_hat(l^(n)), 0, l_max), with l_hat the Lambert-W best response of
:func:`thinkq.model.best_response`. It converges when the map is a contraction
(Lemma 2, L_inf < 1), which is rare; it may oscillate or diverge otherwise, and then
reports ``converged=False`` rather than a wrong answer.
"""

from __future__ import annotations

import numpy as np

from thinkq import model
from thinkq._typing import FloatArray
from thinkq.profile import Profile

__all__ = ["projected_fixed_point"]


def projected_fixed_point(
    profile: Profile, start: FloatArray, *, tol: float, max_iter: int
) -> tuple[FloatArray, int, int, str]:
    """Iterate eq. (24) from ``start`` until successive budgets differ by <= ``tol`` tokens.

    Returns the budgets, the iterations, the map evaluations and why it stopped.
    """
    l = model.project(np.asarray(start, dtype=np.float64), profile.max_tokens)
    for iteration in range(1, max_iter + 1):
        if model.utilization(profile, l) >= 1.0:
            return l, iteration - 1, iteration - 1, "left the stability region (diverged)"
        new = model.project(model.best_response(profile, l), profile.max_tokens)
        change = float(np.max(np.abs(new - l)))
        l = new
        if change <= tol:
            return l, iteration, iteration, "successive iterates within tolerance"
    return l, max_iter, max_iter, "iteration limit reached (the map may not be contractive)"
