"""System times of FIFO M/G/1, exactly up to the lattice: T_k = W + S_k.

In FIFO M/G/1 with Poisson arrivals a query's wait W is independent of its own
service S_k, so

    P(T_k <= t) = (1 - rho) P(S_k <= t) + E[G(t - S_k)],

the first term from W's atom at 0 (exact: the atoms of S_k stay atoms of T_k), the
second from its continuous part G (:mod:`~thinkq.tails.waiting`). For an atom of S_k
the expectation is G at one point; for a lognormal S_k = a + exp(mu + sigma Z) it is
an integral over Z up to the normal score z* where the service reaches t (beyond it
G vanishes), by composite Gauss-Legendre quadrature on [-9, z*] (no kink inside).
The overall CDF is the share mixture of the per-type ones.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.special import ndtr

from thinkq._typing import FloatArray, IntArray
from thinkq.tails.search import inverse_cdf
from thinkq.tails.service import Z_EDGE, Mixture
from thinkq.tails.waiting import TAIL, Waiting

__all__ = ["ExactLaw"]

_PANELS, _POINTS = 16, 8
#: The highest quantile resolved (the wait's mass beyond the lattice is below TAIL).
RESOLVED = 1.0 - 10 * TAIL


def _unit_rule() -> tuple[FloatArray, FloatArray]:
    """Composite Gauss-Legendre nodes and weights on [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(_POINTS)
    starts = np.arange(_PANELS) / _PANELS
    nodes = (starts[:, None] + (x[None, :] + 1) / (2 * _PANELS)).reshape(-1)
    weights = np.tile(w / (2 * _PANELS), _PANELS)
    return nodes, weights


class ExactLaw:
    """The per-type and overall CDFs of the system time, from W and the mixture."""

    def __init__(self, mix: Mixture, wait: Waiting) -> None:
        self.mix, self.wait = mix, wait
        self.ln_of_type = np.full(mix.size, -1, dtype=np.int64)
        self.ln_of_type[mix.ln_type] = np.arange(mix.ln_type.size)
        order = np.lexsort((mix.atom_at, mix.atom_type))
        self.atom_order = order
        counts = np.bincount(mix.atom_type, minlength=mix.size)
        self.atom_start = np.concatenate([[0], np.cumsum(counts)])
        self.single_atom = counts == 1

    @functools.cached_property
    def _rule(self) -> tuple[FloatArray, FloatArray]:
        """The quadrature's nodes and weights on [0, 1] (only lognormal types use it)."""
        return _unit_rule()

    def quantiles(self, q: FloatArray, task: IntArray | None) -> FloatArray:
        """The q-quantiles (s): overall when ``task`` is None, else of each pair."""
        resolved = RESOLVED if self.wait.tail <= TAIL else 1.0 - 10 * self.wait.tail
        if np.any(q > resolved):
            raise ValueError(
                f"p: percentiles above {100 * resolved:.6f} lie beyond the resolved tail "
                f"(the wait is computed to a mass of {max(TAIL, self.wait.tail):.1g})"
            )
        top = self.wait.h * (self.wait.G.size - 1) + self.mix.edge()
        if task is None:
            found = inverse_cdf(lambda t, _: self.overall_cdf(t), q, top)
            return self._snap(found, q, self.mix.atom_at, None)
        found = inverse_cdf(lambda t, which: self.type_cdf(t, task[which]), q, top)
        return self._snap(found, q, self.mix.atom_at, task)

    def _snap(
        self, t: FloatArray, q: FloatArray, atoms: FloatArray, task: IntArray | None
    ) -> FloatArray:
        """A percentile found within the search's tolerance above an atom of the service
        (where the CDF jumps) is that atom exactly, if the CDF there reaches q."""
        if atoms.size == 0:
            return t
        if task is None:
            ordered = np.sort(atoms)
            below = ordered[np.maximum(np.searchsorted(ordered, t, side="right") - 1, 0)]
        else:
            below = np.full(t.shape, -1.0)
            sorted_at = self.mix.atom_at[self.atom_order]  # by type, then by time
            single = (self.ln_of_type[task] < 0) & self.single_atom[task]
            below[single] = sorted_at[self.atom_start[task[single]]]
            for i in np.flatnonzero((self.ln_of_type[task] < 0) & ~self.single_atom[task]):
                mine = sorted_at[self.atom_start[task[i]] : self.atom_start[task[i] + 1]]
                j = int(np.searchsorted(mine, t[i], side="right")) - 1
                below[i] = mine[j] if j >= 0 else -1.0
        close = (below >= 0) & (below <= t) & (t - below <= 1e-10 * t)
        if not np.any(close):
            return t
        index = np.flatnonzero(close)
        values = (
            self.overall_cdf(below[index])
            if task is None
            else self.type_cdf(below[index], task[index])
        )
        t = t.copy()
        t[index[values >= q[index]]] = below[index[values >= q[index]]]
        return t

    def cdf(self, t: float, task: int | None) -> float:
        """P(T <= t), overall or of type ``task``."""
        if task is None:
            return float(self.overall_cdf(np.array([t]))[0])
        return float(self.type_cdf(np.array([t]), np.array([task]))[0])

    def interval(self, q: float, task: int | None) -> tuple[float, float]:
        """The q-quantile twice: the method has no sampling error."""
        value = float(self.quantiles(np.array([q]), None if task is None else np.array([task]))[0])
        return value, value

    def type_cdf(self, t: FloatArray, k: IntArray) -> FloatArray:
        """P(T_k <= t) for pairs (t, k) of equal shape (seconds, type indices)."""
        t = np.asarray(t, dtype=np.float64)
        k = np.asarray(k, dtype=np.int64)
        out = np.zeros(t.shape)
        ln = self.ln_of_type[k]
        is_ln = ln >= 0
        if np.any(is_ln):
            out[is_ln] = self._lognormal(t[is_ln], ln[is_ln])
        single = ~is_ln & self.single_atom[k]
        if np.any(single):
            at = self.mix.atom_at[self.atom_order[self.atom_start[k[single]]]]
            out[single] = self._atoms(t[single], at)
        for i in np.flatnonzero(~is_ln & ~self.single_atom[k]):
            part = self.atom_order[self.atom_start[k[i]] : self.atom_start[k[i] + 1]]
            weight = self.mix.atom_weight[part]
            out[i] = float(
                np.dot(weight, self._atoms(np.full(part.size, t[i]), self.mix.atom_at[part]))
            )
        return out

    def overall_cdf(self, t: FloatArray) -> FloatArray:
        """P(T <= t) over the share mixture, for each t (s)."""
        t = np.asarray(t, dtype=np.float64).reshape(-1)
        mix = self.mix
        weight = mix.share[mix.atom_type] * mix.atom_weight
        out = self._atoms(t[:, None], mix.atom_at[None, :]) @ weight
        if mix.ln_type.size:
            parts = np.arange(mix.ln_type.size)
            values = self._lognormal(np.repeat(t, parts.size), np.tile(parts, t.size)).reshape(
                t.size, parts.size
            )
            out += values @ mix.share[mix.ln_type]
        return np.asarray(out, float)

    def _atoms(self, t: FloatArray, at: FloatArray) -> FloatArray:
        """E over W of 1{W + s <= t} for atoms s (broadcast with t)."""
        y = t - at
        return np.where(y >= 0, 1.0 - self.wait.rho, 0.0) + self.wait.continuous(y)

    def _lognormal(self, t: FloatArray, part: IntArray) -> FloatArray:
        """P(T <= t) for lognormal components ``part``: the atom term and the quadrature."""
        from thinkq.tails.kernels import wait_quadrature  # numba: only when it is used

        mix, wait = self.mix, self.wait
        y = np.ascontiguousarray(t - mix.ln_shift[part])
        mu, sigma = mix.ln_mu[part], mix.ln_sigma[part]
        with np.errstate(divide="ignore"):
            z_star = (np.log(np.maximum(y, 0.0)) - mu) / sigma
        nodes, weights = self._rule
        quadrature = wait_quadrature(y, mu, sigma, wait.G, wait.h, nodes, weights, Z_EDGE)
        return np.asarray((1.0 - wait.rho) * ndtr(z_star) + quadrature, float)
