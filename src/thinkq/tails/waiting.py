"""The FIFO M/G/1 waiting time W, by the Pollaczek-Khinchine (Benes) formula.

With rho = lambda E[S] < 1, the stationary wait is a geometric sum of independent
equilibrium service times R (density P(S > u) / E[S]):

    P(W <= x) = (1 - rho) sum_{n >= 0} rho^n R^{*n}(x),

an atom 1 - rho at 0 and a continuous part G(x) = P(0 < W <= x). On a lattice of
step h the pmf of W is the inverse transform of (1 - rho) / (1 - rho r_hat), r_hat
the discrete Fourier transform of the moment-matched lattice R
(:mod:`~thinkq.tails.residual`). The transform is taken on exponentially damped
sequences (a factor e^{-8} over the lattice) so that the mass beyond the lattice,
which the circular convolution would fold back, is damped by e^{-8} more; the lattice
starts at a guess of the tail's reach (:func:`_span`) and is doubled until the mass
beyond it is below :data:`TAIL`. The lattice masses are
tent (local moment) masses, so G at the nodes is their trapezoid sum, and G between
nodes is linear interpolation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from thinkq._typing import FloatArray
from thinkq.tails.residual import residual_lattice
from thinkq.tails.service import Mixture

__all__ = ["MAX_NODES", "RESOLUTION", "TAIL", "Waiting", "waiting_time"]

#: The largest mass of W left beyond the lattice: percentiles up to 100 (1 - 1e-8).
TAIL = 1e-9
#: Lattice cells per mean service time (finer when the lattice allows).
RESOLUTION = 1024
_MIN_NODES = 1 << 12
#: The most nodes of the lattice; beyond, its step grows instead.
MAX_NODES = 1 << 20
_DOUBLINGS = 12  # at most this many times the lattice is doubled
_DAMPING = 8.0  # log of the damping factor over the whole lattice


@dataclass(frozen=True)
class Waiting:
    """The waiting time's law: the atom ``1 - rho`` at 0 and ``G`` at the nodes j h.

    ``tail`` is the mass beyond the last node, as computed (at most :data:`TAIL`
    unless the lattice reached its largest size).
    """

    rho: float
    h: float
    G: FloatArray
    tail: float

    def continuous(self, x: FloatArray) -> FloatArray:
        """G(x) = P(0 < W <= x) for each x (s): 0 for x <= 0, linear between nodes."""
        position = np.asarray(x, dtype=np.float64) / self.h
        np.clip(position, 0.0, self.G.size - 1, out=position)
        j = np.minimum(position.astype(np.int64), self.G.size - 2)
        frac = position - j
        return np.asarray(self.G[j] + frac * (self.G[j + 1] - self.G[j]), float)

    def cdf(self, x: FloatArray) -> FloatArray:
        """P(W <= x) for each x (s)."""
        x = np.asarray(x, dtype=np.float64)
        return np.where(x >= 0, 1.0 - self.rho, 0.0) + self.continuous(x)


def waiting_time(
    mix: Mixture, rate: float, *, resolution: int = RESOLUTION, max_nodes: int = MAX_NODES
) -> Waiting:
    """The waiting time of FIFO M/G/1 with Poisson ``rate`` and service ``mix``.

    The lattice has ``resolution`` cells per mean service time, unless that would take
    more than ``max_nodes`` nodes to cover the tail. The caller checks stability.
    """
    rho = rate * mix.mean
    if mix.mean <= 0:
        return Waiting(rho=0.0, h=1.0, G=np.zeros(2), tail=0.0)
    h = mix.mean / resolution
    nodes = max(_MIN_NODES, 1 << math.ceil(math.log2(_span(mix, rho) / h)))
    if nodes > max_nodes:
        h *= nodes / max_nodes
        nodes = max_nodes
    for _ in range(_DOUBLINGS):
        w = _lattice_wait(residual_lattice(mix, h, nodes), rho)
        tail = 1.0 - float(w.sum())
        if tail <= TAIL:
            break
        if nodes < max_nodes:
            nodes *= 2
        else:
            h *= 2
    return Waiting(rho=rho, h=h, G=_continuous_part(w, rho), tail=max(tail, 0.0))


def _span(mix: Mixture, rho: float) -> float:
    """A first guess of the time beyond which W has mass below :data:`TAIL` (s).

    A light tail decays like exp(-x (1 - rho) / E[R]) at most; a heavy one (lognormal
    services) like rho / (1 - rho) P(R > x), with P(R > x) = E[(S - x)^+] / E[S].
    """
    light = 4 * mix.mean + 30 * (mix.second / (2 * mix.mean)) / (1 - rho)
    heavy = mix.edge(4.0)
    target = TAIL / 4 * (1 - rho) / max(rho, 1e-300)
    while mix.residual_tail(heavy) > target and heavy < 1e6 * light:
        heavy *= 1.5
    return max(light, heavy)


def _lattice_wait(r: FloatArray, rho: float) -> FloatArray:
    """The pmf of the geometric sum of the lattice ``r`` (success 1 - rho), damped FFT."""
    n = r.size
    damp = np.arange(n, dtype=np.float64)
    damp *= -_DAMPING / n
    np.exp(damp, out=damp)
    transform = np.fft.rfft(r * damp)
    transform *= -rho  # (1 - rho) / (1 - rho r_hat), in place
    transform += 1.0
    np.divide(1.0 - rho, transform, out=transform)
    w = np.fft.irfft(transform, n)
    w /= damp
    return np.asarray(w, float)


def _continuous_part(w: FloatArray, rho: float) -> FloatArray:
    """G at the nodes from the tent masses ``w``: G(0) = 0, trapezoid sums after
    (clipped to [0, rho] and made nondecreasing; one compiled pass)."""
    from thinkq.tails.kernels import continuous_part  # numba: only when it is used

    return np.asarray(continuous_part(np.ascontiguousarray(w, dtype=np.float64), rho), float)
