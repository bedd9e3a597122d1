"""Percentiles from a CDF: the smallest t with P(T <= t) >= q, by vectorised bisection.

This is numpy's ``'inverted_cdf'`` definition: at an atom of T (a deterministic
service at low load) the percentile is the atom itself for every q that falls in its
jump. Bisection keeps P(T <= lo) < q <= P(T <= hi) and halves until the bracket is
below a relative 1e-12 (or absolute 1e-300) of ``hi``, so it converges to a jump as
well as to a root.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from thinkq._typing import FloatArray

__all__ = ["inverse_cdf"]

_RELATIVE = 1e-12
_MAX_STEPS = 200


def inverse_cdf(cdf: Callable[[FloatArray], FloatArray], q: FloatArray, top: float) -> FloatArray:
    """For each q in (0, 1), the smallest t in [0, top] with cdf(t) >= q (vectorised).

    ``cdf`` maps an array of times to their CDF values, elementwise and in the same
    order as ``q``. Where ``cdf(top) < q`` (beyond the resolved tail), ``top``.
    """
    q = np.asarray(q, dtype=np.float64)
    hi = np.full(q.shape, float(top))
    at_zero = cdf(np.zeros(q.shape)) >= q
    lo = np.zeros(q.shape)
    # narrow the bracket geometrically first: times spread over many decades
    scale = np.full(q.shape, float(top))
    for _ in range(64):
        scale /= 8.0
        below = cdf(scale) < q
        lo = np.where(below, np.maximum(lo, scale), lo)
        hi = np.where(below, hi, np.minimum(hi, scale))
        if np.all(below | at_zero):
            break
    for _ in range(_MAX_STEPS):
        if np.all(hi - lo <= _RELATIVE * hi):
            break
        mid = (lo + hi) / 2
        reached = cdf(mid) >= q
        hi = np.where(reached, mid, hi)
        lo = np.where(reached, lo, mid)
    return np.where(at_zero, 0.0, hi)
