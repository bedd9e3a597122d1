"""The number in system of the batched server with exponential service: a birth-death chain.

With offered load rho = lambda E[S] (solo-seconds of work per second) and capacity
C(n) (:class:`~thinkq.batching.server.Server`), the number N of queries present is a
birth-death chain with P(N = n) proportional to rho^n / (C(1) ... C(n)), where
C(n) = C(B) for n > B, so beyond B it is geometric with ratio x = rho / C(B) < 1.
The same law holds for *any* service distribution when the slots are unlimited:
processor sharing with a state-dependent capacity is a symmetric queue, insensitive
to the service distribution beyond its mean (Kelly 1979; Cohen 1979).

The law is an exponential family in theta = log rho with sufficient statistic N, so
for any f, d E[f(N)] / d theta = Cov(f(N), N) and d^2 E[f(N)] / d theta^2 =
E[(f - E f)(N - E N)^2]. That gives exact first and second derivatives in rho of the
two aggregates the delay law needs: the mean batch E[min(N, B)] and the mean number
waiting E[(N - B)^+]. Sums run over the head n <= K (K = B, or less where the rest
of the head is below 1e-35 of its peak); the geometric tail beyond B is summed in
closed form.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from thinkq._typing import FloatArray
from thinkq.batching.server import Server

__all__ = ["Chain", "chain"]

_NEGLIGIBLE = -80.0  # log of a weight (relative to the peak) below which terms are dropped
_FIRST = 256


class Chain(NamedTuple):
    """Aggregates of the number in system N at load rho, with their rho-derivatives.

    ``batch`` is E[min(N, B)] (the mean number in service, idle time included),
    ``waiting`` is E[(N - B)^+] (the mean number in the FIFO queue) and ``empty`` is
    P(N = 0). ``d_*`` and ``d2_*`` are first and second derivatives in rho.
    """

    empty: float
    batch: float
    d_batch: float
    d2_batch: float
    waiting: float
    d_waiting: float
    d2_waiting: float
    #: E[tau(min(N, B)); N > 0]: the step time integrated over the law, idle time as 0
    #: (only with a measured ``steps`` table; the line's is tau0 P(N > 0) + tau1 E[min(N, B)]).
    stepping: float = math.nan


@lru_cache(maxsize=64)
def _log_capacities(server: Server) -> tuple[FloatArray, FloatArray]:
    """n = 0..B and sum_{k <= n} log C(k), for a server with at most ``_FIRST`` slots.

    They do not depend on the load, and the solver evaluates the chain of one server
    many times: computed once per server.
    """
    n = np.arange(1, server.slots + 1, dtype=np.float64)
    capacity = n * server.step_time(1) / server.step_times(n)
    states = np.arange(server.slots + 1, dtype=np.float64)
    return states, np.concatenate(([0.0], np.cumsum(np.log(capacity))))


def _head(server: Server, rho: float) -> tuple[FloatArray, FloatArray, bool]:
    """n = 0..K and log-weights (peak 0); whether the head reaches B (a tail follows)."""
    if server.slots <= _FIRST:
        states, cumulative = _log_capacities(server)
        logw = states * math.log(rho) - cumulative
        return states, logw - logw.max(), True
    size = _FIRST
    while True:
        n = np.arange(1, size + 1, dtype=np.float64)
        capacity = n * server.step_time(1) / server.step_times(n)
        logw = np.concatenate(([0.0], np.cumsum(math.log(rho) - np.log(capacity))))
        logw -= logw.max()
        if size == server.slots:
            return np.arange(size + 1, dtype=np.float64), logw, True
        # beyond K every ratio is below rho / C(K + 1); stop once the rest is negligible
        ratio = rho / server.capacity(size + 1)
        if ratio < 1.0 and logw[-1] < _NEGLIGIBLE + math.log1p(-ratio):
            return np.arange(size + 1, dtype=np.float64), logw, False
        size = min(server.slots, size * 4)


def _tail_sums(x: float) -> tuple[float, float, float, float]:
    """sum_{j>=1} j^k x^j for k = 0..3 (the tail n = B + j relative to P(N = B))."""
    r = 1.0 / (1.0 - x)
    g0 = x * r
    g1 = x * r * r
    g2 = x * (1.0 + x) * r**3
    g3 = x * (1.0 + 4.0 * x + x * x) * r**4
    return g0, g1, g2, g3


def chain(server: Server, rho: float) -> Chain:
    """The aggregates of N at offered load ``rho`` (requires 0 < rho < C(B))."""
    if not 0.0 < rho < server.max_capacity:
        raise ValueError(f"rho: must be in (0, {server.max_capacity:g}), got {rho!r}")
    n, logw, tail = _head(server, rho)
    p = np.exp(logw)
    B = float(server.slots)
    x = rho / server.max_capacity if tail else 0.0
    g0, g1, g2, g3 = _tail_sums(x)
    pb = p[-1] if tail else 0.0  # the weight of N = B, which the tail scales
    z = float(p.sum()) + pb * g0
    mean = (float(np.dot(n, p)) + pb * (B * g0 + g1)) / z
    c = n - mean
    d = B - mean  # N - E[N] at n = B; on the tail it is d + j
    var = (float(np.dot(c * c, p)) + pb * (d * d * g0 + 2 * d * g1 + g2)) / z
    batch = (float(np.dot(n, p)) + pb * B * g0) / z
    waiting = pb * g1 / z
    # Cov(f, N) and E[(f - Ef)(N - EN)^2] for f = min(N, B) and f = (N - B)^+
    e = n - batch
    cov_b = (float(np.dot(e * c, p)) + pb * (B - batch) * (d * g0 + g1)) / z
    third_b = (float(np.dot(e * c * c, p)) + pb * (B - batch) * (d * d * g0 + 2 * d * g1 + g2)) / z
    cov_w = pb * (d * g1 + g2) / z
    third_w = pb * (d * d * g1 + 2 * d * g2 + g3) / z - waiting * var
    stepping = math.nan
    if server.steps:  # E[tau(min(N, B)); N > 0], the head's steps and the tail's at B
        taus = server.step_times(np.maximum(n, 1.0))
        stepping = (float(np.dot(taus[1:], p[1:])) + pb * g0 * server.step_time(B)) / z
    return Chain(
        empty=float(p[0]) / z,
        batch=batch,
        d_batch=cov_b / rho,
        d2_batch=(third_b - cov_b) / rho**2,
        waiting=waiting,
        d_waiting=cov_w / rho,
        d2_waiting=(third_w - cov_w) / rho**2,
        stepping=stepping,
    )
