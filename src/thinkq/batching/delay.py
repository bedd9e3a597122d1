"""Mean waiting and system time of the batched server, and their derivatives.

The model (derivation and checks in ``docs/batching.md``): with load rho = lambda E[S]
and the chain of :mod:`thinkq.batching.chain` evaluated at rho,

* time in service: a query of solo time s spends sigma s in service, sigma =
  E[min(N, B)] / rho (Little's law on the slots; linear in s as under processor
  sharing, where it is exact);
* wait in the FIFO queue: the exponential chain's wait W_exp = E[(N - B)^+] / lambda,
  exact for exponential service, interpolated in the squared coefficient of variation
  cs^2 = E[S^2] / E[S]^2 - 1 between deterministic and exponential service as for
  M/G/c (Cosmetatos 1976): E[W] = W_exp (h + (1 - h) cs^2), where h(u) is the
  M/D/c-to-M/M/c wait ratio with c = B servers at utilisation u = rho / C(B):
  Cosmetatos's h = 1/2 + K (1 - u) / (2 u), K = (c - 1)(sqrt(4 + 5c) - 2) / (16 c),
  saturated smoothly at its light-traffic limit c / (c + 1):
  h = 1/2 + D tanh(K (1 - u) / (D u)) / 2 with D = (c - 1) / (c + 1);
* mean system time E[T] = E[S] sigma + E[W] = F(E[S], E[S^2]).

At B = 1, h = 1/2 and kappa = 1 / (1 - rho): exactly Pollaczek-Khinchine (eq. 5, 6),
computed here by the paper's formula itself. With unlimited slots the queue is empty
and E[T] = E[N] / lambda, exact for every service distribution (insensitivity). With
exponential service (cs^2 = 1) the wait is the chain's own, exact at every B.

In the moments, E[W] = lambda kappa ((2h - 1) m1^2 + (1 - h) m2) with kappa =
E[(N - B)^+] / rho^2: F depends on the budgets only through m1 = E[S] and
m2 = E[S^2], linearly in m2, so the gradient and Hessian of J keep the paper's
diagonal-plus-rank-two form (eqs. 33, 34) with the partial derivatives F1, F2, F11,
F12 (F22 = 0) in place of P-K's.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

from thinkq.batching.chain import chain
from thinkq.batching.prompts import prompt_chain
from thinkq.batching.server import Server

__all__ = ["Delay", "delay", "deterministic_ratio"]

#: Below this fraction of C(B) the load is none: every query runs alone (to O(rho)
#: relative, 1e-12; the chain's busy fraction would round to 0 there).
_NO_LOAD = 1e-12


class Delay(NamedTuple):
    """The batched server's mean delays at (m1, m2) and the partial derivatives of E[T].

    Times in seconds. ``slowdown`` is sigma (time in service per second of solo
    service), ``batch`` the mean number in service, ``busy`` the fraction of time the
    server is not empty, ``step`` the mean decode-step time while busy. ``d_mean``,
    ``d_second``, ``d_mean_mean`` and ``d_mean_second`` are dF/dm1, dF/dm2,
    d2F/dm1^2 and d2F/dm1 dm2. Unstable (rate * m1 >= C(B)): times and derivatives inf.
    """

    system_time: float
    waiting_time: float
    slowdown: float
    batch: float
    busy: float
    step: float
    d_mean: float
    d_second: float
    d_mean_mean: float
    d_mean_second: float


def _unstable(server: Server) -> Delay:
    inf = math.inf
    return Delay(inf, inf, inf, float(server.slots), 1.0, server.step_time(server.slots),
                 inf, inf, inf, inf)  # fmt: skip


def _single(server: Server, rate: float, m1: float, m2: float) -> Delay:
    """B = 1: Pollaczek-Khinchine (eqs. 5, 6) and its derivatives, exactly."""
    d = 1.0 - rate * m1
    wait = rate * m2 / (2.0 * d)
    return Delay(
        system_time=m1 + wait, waiting_time=wait, slowdown=1.0, batch=rate * m1,
        busy=rate * m1, step=server.step_time(1),
        d_mean=1.0 + rate * rate * m2 / (2.0 * d * d), d_second=rate / (2.0 * d),
        d_mean_mean=rate**3 * m2 / d**3, d_mean_second=rate * rate / (2.0 * d * d),
    )  # fmt: skip


@lru_cache(maxsize=64)
def _constants(slots: int) -> tuple[float, float]:
    """Cosmetatos's K and the light-traffic limit D at c = B slots."""
    c = float(slots)
    return (c - 1.0) * (math.sqrt(4.0 + 5.0 * c) - 2.0) / (16.0 * c), (c - 1.0) / (c + 1.0)


def _shape(server: Server, rho: float) -> tuple[float, float, float]:
    """2 h - 1 = D tanh(r) at u = rho / C(B) and its first two rho-derivatives.

    r = K (1 - u) / (D u): Cosmetatos's correction 2 h - 1 = K (1 - u) / u of the
    M/D/c-to-M/M/c wait ratio at c = B, saturated at its light-traffic limit D.
    """
    k, d = _constants(server.slots)
    cap = server.max_capacity
    u = rho / cap
    r = k * (1.0 - u) / (d * u)
    if r > 40.0:  # tanh(r) = 1 to double precision: the light-traffic limit itself
        return d, 0.0, 0.0
    t = math.tanh(r)
    sech2 = 1.0 / math.cosh(r) ** 2
    r1 = -k / (d * u * u)
    r2 = 2.0 * k / (d * u**3)
    return d * t, d * sech2 * r1 / cap, d * sech2 * (r2 - 2.0 * t * r1 * r1) / cap**2


def deterministic_ratio(server: Server, rho: float) -> float:
    """h: the model's wait with deterministic service over the exponential chain's wait."""
    if server.single:
        return 0.5
    return 0.5 + 0.5 * _shape(server, rho)[0]


def delay(server: Server, rate: float, m1: float, m2: float) -> Delay:
    """E[T] = F(m1, m2) of the batched server at arrival rate ``rate`` (1/s).

    ``m1`` = E[S] (s) and ``m2`` = E[S^2] (s^2) are the solo service-time moments.
    """
    rho = rate * m1
    if not rho < server.load_limit(rate):
        return _unstable(server)
    if server.single:
        return _single(server, rate, m1, m2)
    if rho <= _NO_LOAD * server.max_capacity:  # no load: every query runs alone
        return Delay(m1, 0.0, 1.0, 0.0, 0.0, server.step_time(1), 1.0, 0.0, 0.0, 0.0)
    if server.prompt:
        return _prompted(server, rate, m1, m2)
    c = chain(server, rho)
    w, w1, w2 = c.waiting, c.d_waiting, c.d2_waiting
    s, s1, s2 = _shape(server, rho)
    # E[W] = P(rho) / rate + rate q(rho) m2 with P = s E[(N - B)^+] and q = kappa (1 - s) / 2
    p, p1, p2 = s * w, s1 * w + s * w1, s2 * w + 2.0 * s1 * w1 + s * w2
    kappa = w / rho**2
    d_kappa = w1 / rho**2 - 2.0 * w / rho**3
    d2_kappa = w2 / rho**2 - 4.0 * w1 / rho**3 + 6.0 * w / rho**4
    q = kappa * (1.0 - s) / 2.0
    q1 = (d_kappa * (1.0 - s) - kappa * s1) / 2.0
    q2 = (d2_kappa * (1.0 - s) - 2.0 * d_kappa * s1 - kappa * s2) / 2.0
    wait = p / rate + rate * q * m2
    busy = 1.0 - c.empty
    return Delay(
        system_time=c.batch / rate + wait,
        waiting_time=wait,
        slowdown=c.batch / rho,
        batch=c.batch,
        busy=busy,
        step=(c.stepping if server.steps else server.tau0 * busy + server.tau1 * c.batch) / busy,
        d_mean=c.d_batch + p1 + rate**2 * m2 * q1,
        d_second=rate * q,
        d_mean_mean=rate * (c.d2_batch + p2) + rate**3 * m2 * q2,
        d_mean_second=rate**2 * q1,
    )


def _prompted(server: Server, rate: float, m1: float, m2: float) -> Delay:
    """:func:`delay` with a prompt stage: the (N, j) chain of :mod:`thinkq.batching.prompts`.

    E[T] = b / rate + (w / rate) (s + (1 - s) m2 / (2 m1^2)) with b = E[min(N, B)],
    w = E[(N - B)^+] and s = 2 h - 1 (the cs^2 correction of the single-phase model,
    at the utilisation u = rate (p + (m1 - p) / C(B)), which reaches 1 at the load
    limit). The chain's aggregates come with their m1-derivatives, s with its own (u is
    linear in m1: a load of u C(B) in :func:`_shape`, moving at rate C(B) u' = rate).
    The step is the mean while some query decodes and no prompt runs.
    """
    c = prompt_chain(server, rate, m1)
    b, b1, b2 = c.batch, c.d_batch, c.d2_batch
    w, w1, w2 = c.waiting, c.d_waiting, c.d2_waiting
    s, s1, s2 = _shape(server, server.utilization(rate, m1) * server.max_capacity)
    s1, s2 = s1 * rate, s2 * rate * rate
    p, p1, p2 = w * s, w1 * s + w * s1, w2 * s + 2.0 * w1 * s1 + w * s2
    a, a1, a2 = w * (1.0 - s), w1 * (1.0 - s) - w * s1, w2 * (1.0 - s) - 2.0 * w1 * s1 - w * s2
    k, k1, k2 = 1.0 / m1**2, -2.0 / m1**3, 6.0 / m1**4
    g, g1, g2 = a * k, a1 * k + a * k1, a2 * k + 2.0 * a1 * k1 + a * k2
    wait = p / rate + m2 * g / (2.0 * rate)
    busy = 1.0 - c.empty
    return Delay(
        system_time=b / rate + wait,
        waiting_time=wait,
        slowdown=b / (rate * m1),
        batch=b,
        busy=busy,
        step=c.stepping / c.decoding,
        d_mean=(b1 + p1) / rate + m2 * g1 / (2.0 * rate),
        d_second=g / (2.0 * rate),
        d_mean_mean=(b2 + p2) / rate + m2 * g2 / (2.0 * rate),
        d_mean_second=g1 / (2.0 * rate),
    )
