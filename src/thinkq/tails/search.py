"""Percentiles from a CDF: the smallest t with P(T <= t) >= q, vectorised.

This is numpy's ``'inverted_cdf'`` definition: at an atom of T (a deterministic
service at low load) the percentile is the atom itself for every q that falls in its
jump. The search keeps a bracket with P(T <= lo) < q <= P(T <= hi) for every target
at once: first geometrically (times may spread over many decades), then by the
Illinois variant of regula falsi, with a bisection every third step so that a jump
(where the secant gains nothing) still halves the bracket, and a step just below the
upper end once that end is a root to rounding. It stops when every bracket is below
a relative 1e-11 of its upper end, which it returns; only the open brackets are
evaluated.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from thinkq._typing import FloatArray, IntArray

__all__ = ["inverse_cdf"]

_RELATIVE = 1e-11
_MAX_STEPS = 300
_SETTLED = 1e-14  # cdf(hi) - q this small: hi is a root to rounding


def inverse_cdf(
    cdf: Callable[[FloatArray, IntArray], FloatArray], q: FloatArray, top: float
) -> FloatArray:
    """For each q in (0, 1), the smallest t in [0, top] with cdf(t) >= q (vectorised).

    ``cdf(t, which)`` gives the CDF values at times ``t`` of the targets ``q[which]``
    (one time per index). Where ``cdf(top) < q`` (beyond the resolved tail), ``top``.
    """
    q = np.asarray(q, dtype=np.float64)
    every = np.arange(q.size)
    at_zero = cdf(np.zeros(q.shape), every) >= q
    lo, hi = np.zeros(q.shape), np.full(q.shape, float(top))
    f_lo, f_hi = np.where(at_zero, 0.0, -q), 1.0 - q
    scale = np.full(q.shape, float(top))
    for _ in range(120):  # 8^-120 of top: below any time worth resolving
        scale /= 8.0
        f = cdf(scale, every) - q
        below = f < 0
        lo, f_lo = (
            np.where(below & (scale > lo), scale, lo),
            np.where(below & (scale > lo), f, f_lo),
        )
        hi, f_hi = np.where(below, hi, scale), np.where(below, f_hi, f)
        if np.all(below | at_zero):
            break
    side = np.zeros(q.shape, dtype=np.int64)  # +1: hi moved last, -1: lo moved last
    for step in range(_MAX_STEPS):
        open_ = np.flatnonzero(~at_zero & (hi - lo > _RELATIVE * hi))
        if open_.size == 0:
            break
        a, b, fa, fb = lo[open_], hi[open_], f_lo[open_], f_hi[open_]
        mid = (a + b) / 2
        if step % 3 != 2:
            secant = b - fb * (b - a) / np.where(fb > fa, fb - fa, 1.0)
            mid = np.where((secant > a) & (secant < b) & (fb > fa), secant, mid)
        # hi on a root (to rounding): a step just below it closes the bracket
        mid = np.where(fb <= _SETTLED, b - _RELATIVE / 2 * b, mid)
        f = cdf(mid, open_) - q[open_]
        up = f >= 0
        last = side[open_]
        # Illinois: halve the value kept twice in a row on the other side
        f_lo[open_] = np.where(up, np.where(last == 1, fa / 2, fa), f)
        f_hi[open_] = np.where(up, f, np.where(last == -1, fb / 2, fb))
        hi[open_] = np.where(up, mid, b)
        lo[open_] = np.where(up, a, mid)
        side[open_] = np.where(up, 1, -1)
    return np.where(at_zero, 0.0, hi)
