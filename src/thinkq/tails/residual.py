"""The equilibrium (residual) service time R on a lattice, moment-matched per cell.

R has density P(S > u) / E[S]. On the cells [jh, (j+1)h) its mass is
I0_j / E[S] and its first moment about the cell's left end I1_j / E[S], where

    I0_j = int_cell P(S > u) du = P1(jh) - P1((j+1)h),
    I1_j = int_cell (u - jh) P(S > u) du = P2(jh) - P2((j+1)h) - h P1((j+1)h),

with the stop-loss transforms P1(x) = E[(S - x)^+] and P2(x) = E[((S - x)^+)^2] / 2.
Both are closed forms: for an atom at s, (s - x)^+ and ((s - x)^+)^2 / 2; for a
shifted lognormal, partial moments of the normal CDF. Each cell's mass is split
between its two ends so that mass and mean stay exact (local moment matching), so
the lattice R has exactly the mean E[S^2] / (2 E[S]) of R (up to the mass beyond the
lattice), and the waiting time built from it has exactly the Pollaczek-Khinchine mean.
"""

from __future__ import annotations

import math

import numpy as np

from thinkq._typing import FloatArray, IntArray
from thinkq.tails.lognormal import slice_atoms, stop_loss
from thinkq.tails.service import Z_EDGE, Mixture

__all__ = ["EXACT_CELLS", "residual_lattice"]

#: Exact cell integrals while (distinct lognormal types) x (cells) stays below this;
#: beyond, slice atoms.
EXACT_CELLS = 1 << 21
#: Atoms added one by one while atoms x this < cells (else by a bincount per lattice).
_FEW_ATOMS = 64


def residual_lattice(mix: Mixture, h: float, n: int) -> FloatArray:
    """The pmf of R at 0, h, ..., (n-1) h (mass beyond the lattice is left out)."""
    full = _zeros(n + 1)  # weight of the services that outlast cell j entirely, by j
    i0 = _zeros(n)
    i1 = _zeros(n)
    weight = mix.share[mix.atom_type] * mix.atom_weight
    _add_atoms(mix.atom_at, weight, h, n, full, i0, i1)
    groups = _lognormal_groups(mix)
    if len(groups) * n > EXACT_CELLS:
        _add_slices(np.array(groups), h, n, full, i0, i1)
        groups = []
    for shift, mu, sigma, w in groups:
        first = max(0, math.floor((shift + math.exp(mu - Z_EDGE * sigma)) / h))
        top = shift + math.exp(mu + (Z_EDGE + sigma) * sigma)
        last = min(n, max(first + 1, math.ceil(top / h)))
        if first >= n:
            _add_atoms(np.array([shift]), np.array([w]), h, n, full, i0, i1)
            continue
        # below the first cell the survival is 1: an atom at its left end
        full[first] += w
        x = h * np.arange(first, last + 1, dtype=np.float64)
        p1, p2 = stop_loss(x - shift, mu, sigma)
        i0[first:last] += w * (p1[:-1] - p1[1:])
        i1[first:last] += w * (p2[:-1] - p2[1:] - h * p1[1:])
    # add the services with a cell index above j (full cells), clip, split each
    # cell's mass between its ends: one compiled pass
    from thinkq.tails.kernels import cell_masses  # numba: only when it is used

    return np.asarray(cell_masses(full, i0, i1, h, mix.mean), float)


def _zeros(n: int) -> FloatArray:
    """n zeros in memory the allocator may reuse: ``np.zeros`` takes fresh pages of
    the system for large arrays, and touching them costs more than the work here."""
    out = np.empty(n)
    out.fill(0.0)
    return out


def _add_slices(
    groups: FloatArray, h: float, n: int, full: FloatArray, i0: FloatArray, i1: FloatArray
) -> None:
    """Add lognormals (rows shift, mu, sigma, weight) as their slice atoms."""
    from thinkq.tails.kernels import bin_slices  # numba: only when it is used

    unit, pattern, probability = slice_atoms(groups[:, 2])
    out = np.zeros((3, n + 1))
    scale = np.exp(groups[:, 1])
    bin_slices(groups[:, 0].copy(), scale, groups[:, 3].copy(), pattern, unit, probability, h, out)
    full += out[0]
    i0 += out[1, :n]
    i1 += out[2, :n]


def _add_atoms(
    at: FloatArray,
    weight: FloatArray,
    h: float,
    n: int,
    full: FloatArray,
    i0: FloatArray,
    i1: FloatArray,
) -> None:
    """Add point masses at ``at`` (s) with ``weight``: full cells below, a part of one."""
    cell: IntArray = np.minimum(np.floor(at / h), n).astype(np.int64)
    inside = cell < n
    d = at[inside] - h * cell[inside]
    np.clip(d, 0.0, h, out=d)
    if at.size * _FEW_ATOMS < n:  # a few atoms: no pass over the whole lattice
        np.add.at(full, cell, weight)
        np.add.at(i0, cell[inside], weight[inside] * d)
        np.add.at(i1, cell[inside], weight[inside] * d * d / 2)
        return
    full += np.bincount(cell, weights=weight, minlength=n + 1)
    i0 += np.bincount(cell[inside], weights=weight[inside] * d, minlength=n)
    i1 += np.bincount(cell[inside], weights=weight[inside] * d * d / 2, minlength=n)


def _lognormal_groups(mix: Mixture) -> list[tuple[float, float, float, float]]:
    """(shift, mu, sigma, total share) of each distinct lognormal component."""
    if mix.ln_mu.size == 0:
        return []
    rows = np.stack([mix.ln_shift, mix.ln_mu, mix.ln_sigma], axis=1)
    unique, inverse = np.unique(rows, axis=0, return_inverse=True)
    weights = np.bincount(inverse.reshape(-1), weights=mix.share[mix.ln_type])
    return [
        (float(s), float(m), float(g), float(w))
        for (s, m, g), w in zip(unique, weights, strict=True)
        if w > 0
    ]
