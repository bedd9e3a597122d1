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

import bisect
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
def _log_capacities(server: Server, size: int) -> tuple[FloatArray, FloatArray]:
    """n = 0..K and sum_{k <= n} log C(k) for a head of K = ``size`` <= ``_FIRST`` states.

    They do not depend on the load, and the solver evaluates the chain of one server
    many times: computed once per server.
    """
    return np.arange(size + 1, dtype=np.float64), np.concatenate(
        ([0.0], np.cumsum(_logs(server, size)))
    )


def _logs(server: Server, size: int) -> FloatArray:
    """log C(n) for n = 1..``size``."""
    n = np.arange(1, size + 1, dtype=np.float64)
    result: FloatArray = np.log(n * server.step_time(1) / server.step_times(n))
    return result


def _log_weights(server: Server, size: int, log_rho: float) -> tuple[FloatArray, FloatArray]:
    """n = 0..K and log(rho^n / (C(1) ... C(n))) for the head K = ``size``.

    Beyond ``_FIRST`` states the terms log rho - log C(k) are summed one by one (n log
    rho and the sum of log C(k) are each of order 1e7 there: their difference would
    lose eight digits).
    """
    if size <= _FIRST:
        states, cumulative = _log_capacities(server, size)
        return states, states * log_rho - cumulative
    states = np.arange(size + 1, dtype=np.float64)
    return states, np.concatenate(([0.0], np.cumsum(log_rho - _logs(server, size))))


def _powers(states: FloatArray, server: Server, mode: int) -> FloatArray:
    """Rows (n - mode)^j for j = 0..3 and tau(n) (0 at n = 0), over ``states``."""
    x = states - float(mode)
    taus = server.step_times(np.maximum(states, 1.0)) if server.steps else np.zeros_like(x)
    taus[0] = 0.0
    return np.vstack((np.ones_like(x), x, x * x, x * x * x, taus))


@lru_cache(maxsize=4096)
def _cached_powers(server: Server, size: int, mode: int) -> FloatArray:
    """:func:`_powers` over n = 0..``size`` (at most ``_FIRST``)."""
    return _powers(_log_capacities(server, size)[0], server, mode)


@lru_cache(maxsize=64)
def _log_ratios(server: Server) -> tuple[list[float], list[float]] | None:
    """log C(n) for n = 1..B and the cumulative sums from n = 0, as Python floats, if
    log C is nondecreasing (then the mode is where rho last exceeds C(n)); else None."""
    cumulative = _log_capacities(server, server.slots)[1]
    logs = np.diff(cumulative)
    if not np.all(np.diff(logs) >= 0.0):
        return None
    return logs.tolist(), cumulative.tolist()


def _whole_head(server: Server, log_rho: float) -> list[float]:
    """:func:`_head`'s sums over n = 0..B (B <= ``_FIRST``), with few numpy calls: the
    mode from the ordered log C(n) by bisection, then one exp and one product."""
    size = server.slots
    states, cumulative = _log_capacities(server, size)
    ordered = _log_ratios(server)
    if ordered is None:
        logw = states * log_rho - cumulative
        mode = int(logw.argmax())
        w = np.exp(logw - logw[mode])
    else:
        logs, sums = ordered
        mode = bisect.bisect_left(logs, log_rho)  # log C(n) < log rho for n <= mode
        w = np.exp(states * log_rho - (cumulative + (mode * log_rho - sums[mode])))
    head: list[float] = _cached_powers(server, size, mode).dot(w).tolist()
    return [*head, mode, float(w[0]), float(w[-1])]


def _head(server: Server, rho: float) -> tuple[list[float], bool]:
    """Sums over the head n = 0..K (weights w relative to the peak, at the mode m):

    sum (n - m)^j w_n for j = 0..3, sum_{n >= 1} tau(n) w_n, m, w_0 and w_K; whether the
    head reaches B (a tail follows). One matrix product: on a few states numpy's
    per-call overhead is most of the cost, and the solver evaluates the chain often.
    K is B, or (B beyond ``_FIRST``) the first of 256, 1024, ... where the rest is
    below 1e-35 of the peak.
    """
    size = min(server.slots, _FIRST)
    log_rho = math.log(rho)
    if size == server.slots:  # the whole head at once (the solver's usual case)
        return _whole_head(server, log_rho), True
    while True:
        states, logw = _log_weights(server, size, log_rho)
        mode = int(logw.argmax())
        reached = size == server.slots
        # beyond K every ratio is below rho / C(K + 1); stop once the rest is negligible
        ratio = 0.0 if reached else rho / server.capacity(size + 1)
        last = float(logw[-1] - logw[mode])
        if reached or (ratio < 1.0 and last < _NEGLIGIBLE + math.log1p(-ratio)):
            w = np.exp(logw - logw[mode])
            small = size <= _FIRST
            powers = _cached_powers(server, size, mode) if small else _powers(states, server, mode)
            sums: list[float] = powers.dot(w).tolist()
            return [*sums, mode, float(w[0]), float(w[-1])], reached
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
    sums, tail = _head(server, rho)
    h0, h1, h2, h3, h_tau, mode, w_first, w_last = sums
    B = float(server.slots)
    x = rho / server.max_capacity if tail else 0.0
    g0, g1, g2, g3 = _tail_sums(x)
    pb = w_last if tail else 0.0  # the weight of N = B, which the tail scales
    z = h0 + pb * g0
    # moments about the mode, moved to the mean and the mean batch (a shift of a few
    # standard deviations at most: no cancellation)
    mean = mode + (h1 + pb * ((B - mode) * g0 + g1)) / z
    batch = mode + (h1 + pb * (B - mode) * g0) / z
    dm, db = mean - mode, batch - mode
    head_var = h2 - 2.0 * dm * h1 + dm * dm * h0  # sum (n - mean)^2 w over the head
    head_cov = h2 - (db + dm) * h1 + db * dm * h0  # sum (n - batch)(n - mean) w
    head_third = h3 - (2.0 * dm + db) * h2 + (dm * dm + 2.0 * db * dm) * h1 - db * dm * dm * h0
    d = B - mean  # N - E[N] at n = B; on the tail it is d + j
    var = (head_var + pb * (d * d * g0 + 2 * d * g1 + g2)) / z
    waiting = pb * g1 / z
    # Cov(f, N) and E[(f - Ef)(N - EN)^2] for f = min(N, B) and f = (N - B)^+
    cov_b = (head_cov + pb * (B - batch) * (d * g0 + g1)) / z
    third_b = (head_third + pb * (B - batch) * (d * d * g0 + 2 * d * g1 + g2)) / z
    cov_w = pb * (d * g1 + g2) / z
    third_w = pb * (d * d * g1 + 2 * d * g2 + g3) / z - waiting * var
    stepping = math.nan
    if server.steps:  # E[tau(min(N, B)); N > 0], the head's steps and the tail's at B
        stepping = (h_tau + pb * g0 * server.step_time(B)) / z
    return Chain(
        empty=w_first / z,
        batch=batch,
        d_batch=cov_b / rho,
        d2_batch=(third_b - cov_b) / rho**2,
        waiting=waiting,
        d_waiting=cov_w / rho,
        d2_waiting=(third_w - cov_w) / rho**2,
        stepping=stepping,
    )
