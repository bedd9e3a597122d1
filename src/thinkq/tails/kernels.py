"""The loops of the tails that numpy would run as many passes over large arrays,
compiled with numba (imported on first use, as :mod:`thinkq.batching.kernel`).

* :func:`bin_slices`: the slice atoms of many lognormal types (shift + exp(mu) times
  a per-sigma pattern, see :func:`thinkq.tails.lognormal.slice_atoms`) added to the
  lattice cells of the residual service time without building the atoms' arrays;
* :func:`wait_quadrature`: E[G(y - X)] for lognormal X = exp(mu + sigma Z), by
  composite Gauss-Legendre quadrature over Z in [-edge, z*] (see
  :mod:`thinkq.tails.exact`), for many (y, mu, sigma) at once;
* :func:`cell_masses`: the lattice pmf of R from the cell integrals (see
  :mod:`thinkq.tails.residual`), and :func:`continuous_part`: G at the lattice
  nodes from the tent masses of W (see :mod:`thinkq.tails.waiting`): one or two
  passes where numpy takes five to twelve over up to 2^20 nodes (cumulative sums,
  clips, a running maximum), with the same operations in the same order, so the
  same bits.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from thinkq._typing import FloatArray, IntArray

__all__ = ["bin_slices", "cell_masses", "continuous_part", "wait_quadrature"]


@numba.njit(cache=True, nogil=True)
def bin_slices(
    shift: FloatArray,
    scale: FloatArray,
    weight: FloatArray,
    pattern: IntArray,
    unit: FloatArray,
    probability: FloatArray,
    h: float,
    out: FloatArray,
) -> None:  # pragma: no cover - compiled
    """Add the atoms shift_g + scale_g unit[pattern_g, j] (mass weight_g probability_j).

    ``out`` has three rows over the n + 1 cells: the mass of atoms past each cell
    (by the atom's cell), then I0 and I1 of the partial cells (see ``residual``).
    """
    n = out.shape[1] - 1
    for g in range(shift.size):
        row = unit[pattern[g]]
        for j in range(row.size):
            at = shift[g] + scale[g] * row[j]
            w = weight[g] * probability[j]
            position = at / h
            cell = n if position >= n else int(position)  # position >= 0
            out[0, cell] += w
            if cell < n:
                d = min(max(at - h * cell, 0.0), h)
                out[1, cell] += w * d
                out[2, cell] += w * d * d / 2


@numba.njit(cache=True, nogil=True)
def wait_quadrature(
    y: FloatArray,
    mu: FloatArray,
    sigma: FloatArray,
    g: FloatArray,
    h: float,
    nodes: FloatArray,
    weights: FloatArray,
    edge: float,
) -> FloatArray:  # pragma: no cover - compiled
    """int_{-edge}^{min(z*, edge)} G(y - exp(mu + sigma z)) phi(z) dz for each entry,
    z* the score where exp(mu + sigma z) = y; G linear between the nodes j h."""
    out = np.zeros(y.size)
    last = g.size - 1
    root = 1.0 / math.sqrt(2.0 * math.pi)
    for i in range(y.size):
        if y[i] <= 0:
            continue
        top = min((math.log(y[i]) - mu[i]) / sigma[i], edge)
        if top <= -edge:
            continue
        width = top + edge
        total = 0.0
        for j in range(nodes.size):
            z = -edge + width * nodes[j]
            x = (y[i] - math.exp(mu[i] + sigma[i] * z)) / h
            if x <= 0:
                continue
            if x >= last:
                value = g[last]
            else:
                k = int(x)
                value = g[k] + (x - k) * (g[k + 1] - g[k])
            total += weights[j] * value * math.exp(-z * z / 2)
        out[i] = width * total * root
    return out


@numba.njit(cache=True, nogil=True)
def continuous_part(w: FloatArray, rho: float) -> FloatArray:  # pragma: no cover - compiled
    """G_j = running max of clip(sum_{i<=j} w_i - w_j / 2 - (1 - rho), 0, rho), G_0 = 0."""
    g = np.empty(w.size)
    atom = 1.0 - rho
    total = 0.0
    high = 0.0
    for j in range(w.size):
        total += w[j]
        value = 0.0 if j == 0 else min(max(total - w[j] / 2 - atom, 0.0), rho)
        high = max(high, value)
        g[j] = high
    return g


@numba.njit(cache=True, nogil=True)
def cell_masses(
    full: FloatArray, i0: FloatArray, i1: FloatArray, h: float, mean: float
) -> FloatArray:  # pragma: no cover - compiled
    """The pmf of R at the nodes: I0 and I1 plus the services that outlast each cell,
    clipped (0 <= I1 <= h I0), each cell's mass split between its ends, / E[S]."""
    n = i0.size
    half_square = h * h / 2
    right = np.empty(n)
    r = np.empty(n)
    outlast = 0.0
    for j in range(n - 1, -1, -1):
        outlast = full[n] if j == n - 1 else outlast + full[j + 1]
        a = max(i0[j] + h * outlast, 0.0)
        b = min(max(i1[j] + half_square * outlast, 0.0), h * a)
        right[j] = b / h
        r[j] = a - right[j]
    for j in range(1, n):
        r[j] += right[j - 1]
    for j in range(n):
        r[j] /= mean
    return r
