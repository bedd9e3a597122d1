"""The solvers' shared options, checked once: tolerance, iteration limit, warm start.

Each check raises ``ValueError`` naming the argument (``"tol: ..."``), which the
command line turns into the option's name.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from thinkq import model
from thinkq._typing import FloatArray
from thinkq.profile import Profile

__all__ = ["DEFAULT_TOL", "check_limits", "start_budgets"]

#: Default tolerance on the KKT residual, in tokens.
DEFAULT_TOL = 1e-7


def check_limits(tol: float, max_iter: int | None) -> None:
    """``tol`` must be a positive number of tokens, ``max_iter`` positive (or ``None``)."""
    if not (isinstance(tol, int | float) and tol > 0):
        raise ValueError(f"tol: expected a positive number of tokens, got {tol!r}")
    if max_iter is not None and max_iter < 1:
        raise ValueError(f"max_iter: expected a positive integer, got {max_iter!r}")


def start_budgets(profile: Profile, start: ArrayLike | None) -> FloatArray:
    """The warm start projected onto [0, l_max]^N (zeros if ``None``), checked stable."""
    if start is None:
        return np.zeros(profile.size)
    l = np.asarray(start, dtype=np.float64)
    if l.shape != (profile.size,):
        raise ValueError(f"start: expected {profile.size} budgets, got shape {l.shape}")
    if not np.all(np.isfinite(l)):
        raise ValueError("start: budgets must be finite")
    l = model.project(l, profile.max_tokens)
    if model.utilization(profile, l) >= 1.0:
        limit = "1" if profile.batched is None else "C(B)"
        raise ValueError(f"start: budgets outside the stability region (rate * E[S] >= {limit})")
    return l
