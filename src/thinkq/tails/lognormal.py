"""Closed forms of a lognormal X = exp(mu + sigma Z) that the lattice needs.

* :func:`stop_loss`: E[(X - y)^+] and E[((X - y)^+)^2] / 2, for the exact integrals
  of X's survival function over each lattice cell (:mod:`~thinkq.tails.residual`);
* :func:`slice_atoms`: X as about 1,800 point masses with exactly its mean and second
  moment. X is cut into slices: of equal probability 1/M in the bulk, halving their
  probability toward both tails (down to 2^-44 / M), and cut again every 0.05 in
  normal score (so that no slice of the upper tail spans a wide range of times). Each
  slice becomes two atoms of half its mass at its mean plus and minus its standard
  deviation, which keeps the slice's mass, mean and variance. The route for many
  lognormal types, where the exact cell integrals would cost N times the lattice;
  against them, percentiles agree to about 1e-6 (``tests/test_tails.py``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr, ndtri

from thinkq._typing import FloatArray, IntArray

__all__ = ["SLICES", "slice_atoms", "stop_loss"]

#: Slices of equal probability in the bulk of each lognormal (slice_atoms).
SLICES = 512
_TAIL_HALVINGS = 44
_EVEN_STEP, _EVEN_TOP = 0.05, 8.0  # also slices of equal width in z, for the tails


def stop_loss(y: FloatArray, mu: float, sigma: float) -> tuple[FloatArray, FloatArray]:
    """E[(X - y)^+] and E[((X - y)^+)^2] / 2 of X = exp(N(mu, sigma^2)), for each y."""
    m1 = math.exp(mu + sigma * sigma / 2)
    m2 = math.exp(2 * mu + 2 * sigma * sigma)
    below = y <= 0
    d = np.where(below, -y, 0.0)
    with np.errstate(divide="ignore"):
        z = (np.log(np.where(below, 1.0, y)) - mu) / sigma
    sf0, sf1, sf2 = ndtr(-z), ndtr(sigma - z), ndtr(2 * sigma - z)
    yy = np.where(below, 0.0, y)
    p1 = np.where(below, d + m1, m1 * sf1 - yy * sf0)
    p2_above = (m2 * sf2 - 2 * yy * m1 * sf1 + yy * yy * sf0) / 2
    p2 = np.where(below, (d * d + 2 * d * m1 + m2) / 2, p2_above)
    return np.maximum(p1, 0.0), np.maximum(p2, 0.0)


def _scores(slices: int) -> FloatArray:
    """The slices' boundaries as normal scores, -inf and inf included, increasing."""
    tail = 2.0 ** -np.arange(_TAIL_HALVINGS, 0, -1) / slices  # 2^-44/M .. 1/(2M)
    below = np.concatenate([tail, np.arange(1, slices // 2 + 1) / slices])
    low = ndtri(below)  # P(Z <= z) = below, up to the median
    high = -low[-2::-1]  # the mirror images above the median
    even = np.arange(-_EVEN_TOP, _EVEN_TOP + _EVEN_STEP / 2, _EVEN_STEP)
    return np.unique(np.concatenate([[-np.inf], low, high, even, [np.inf]]))


def _between(a: FloatArray, b: FloatArray) -> FloatArray:
    """P(a < Z <= b), from whichever tail keeps the digits."""
    return np.asarray(np.where(a > 0, ndtr(-a) - ndtr(-b), ndtr(b) - ndtr(a)), float)


def slice_atoms(sigma: FloatArray, slices: int = SLICES) -> tuple[FloatArray, IntArray, FloatArray]:
    """The slice atoms of lognormals with log-sd ``sigma`` and log-mean 0: positions
    ``unit`` (s, one row per distinct sigma), the row of each sigma, and the atoms'
    probabilities. Those of exp(mu + sigma Z) are exp(mu) times the row: the same
    mass, mean and second moment as the lognormal."""
    z = _scores(slices)
    lo, hi = z[:-1], z[1:]
    mass = _between(lo, hi)
    keep = mass > 0
    lo, hi, mass = lo[keep], hi[keep], mass[keep]
    distinct, which = np.unique(np.asarray(sigma, dtype=np.float64), return_inverse=True)
    s = distinct[:, None]
    first = np.exp(s * s / 2) * _between(lo - s, hi - s)
    second = np.exp(2 * s * s) * _between(lo - 2 * s, hi - 2 * s)
    mean = first / mass
    spread = np.sqrt(np.maximum(second / mass - mean * mean, 0.0))
    unit = np.concatenate([np.maximum(mean - spread, 0.0), mean + spread], axis=1)
    return unit, which.reshape(-1).astype(np.int64), np.concatenate([mass, mass]) / 2
