"""The paper's projected gradient ascent (eq. 29) with the step bound of Lemma 3.

l^(n+1) = clip(l^(n) + eta grad J(l^(n)), 0, l_max) with 0 < eta < 2 / L_J (38). The
constant L_J is computed on a region that contains every iterate (see
:mod:`thinkq.solve.bounds`), so the iteration is monotone and converges; it is slow
when the problem is ill-conditioned (the step must suit the stiffest direction).
"""

from __future__ import annotations

import numpy as np

from thinkq import model
from thinkq._typing import FloatArray
from thinkq.profile import Profile

__all__ = ["projected_gradient"]

# check the (more expensive) KKT residual every this many iterations
_CHECK_EVERY = 25


def projected_gradient(
    profile: Profile,
    start: FloatArray,
    *,
    step: float,
    tol: float,
    max_iter: int,
) -> tuple[FloatArray, int, int, str]:
    """Iterate eq. (29) with learning rate ``step`` until the KKT residual is <= ``tol``.

    Returns the budgets, the iterations, the gradient evaluations and why it stopped.
    """
    l = model.project(np.asarray(start, dtype=np.float64), profile.max_tokens)
    for iteration in range(1, max_iter + 1):
        l = model.project(l + step * model.gradient(profile, l), profile.max_tokens)
        if iteration % _CHECK_EVERY == 0 and model.kkt_residual(profile, l) <= tol:
            return l, iteration, iteration, "KKT residual below tolerance"
    return l, max_iter, max_iter, "iteration limit reached"
