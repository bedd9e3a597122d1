"""Mean waiting and system time of the batched server, and their derivatives.

The model (derivation and checks in ``docs/batching.md``): with load rho = lambda E[S]
and the chain of :mod:`thinkq.batching.chain` evaluated at rho,

* time in service: a query of solo time s spends sigma s in service, sigma =
  E[min(N, B)] / rho (Little's law on the slots; linear in s as under processor
  sharing, where it is exact);
* wait in the FIFO queue: E[W] = (1 + cs^2) / 2 * E[(N - B)^+] / lambda, the
  exponential chain's wait scaled by the service time's squared coefficient of
  variation cs^2 = E[S^2] / E[S]^2 - 1 as in Pollaczek-Khinchine, i.e.
  E[W] = lambda E[S^2] kappa / 2 with kappa = E[(N - B)^+] / rho^2;
* mean system time E[T] = E[S] sigma + E[W] = F(E[S], E[S^2]).

At B = 1, sigma = 1 and kappa = 1 / (1 - rho): exactly Pollaczek-Khinchine (eq. 5, 6),
computed here by the paper's formula itself. With unlimited slots the queue is empty
and E[T] = E[N] / lambda, exact for every service distribution (insensitivity).

F depends on the budgets only through m1 = E[S] and m2 = E[S^2], linearly in m2, so
the gradient and Hessian of J keep the paper's diagonal-plus-rank-two form (eqs. 33,
34) with the partial derivatives F1, F2, F11, F12 (F22 = 0) in place of P-K's.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from thinkq.batching.chain import chain
from thinkq.batching.server import Server

__all__ = ["Delay", "delay"]


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


def delay(server: Server, rate: float, m1: float, m2: float) -> Delay:
    """E[T] = F(m1, m2) of the batched server at arrival rate ``rate`` (1/s).

    ``m1`` = E[S] (s) and ``m2`` = E[S^2] (s^2) are the solo service-time moments.
    """
    rho = rate * m1
    if not rho < server.max_capacity:
        return _unstable(server)
    if server.single:
        return _single(server, rate, m1, m2)
    if rho <= 0.0:  # no load: every query runs alone
        return Delay(m1, 0.0, 1.0, 0.0, 0.0, server.step_time(1), 1.0, 0.0, 0.0, 0.0)
    c = chain(server, rho)
    sigma = c.batch / rho
    kappa = c.waiting / rho**2
    d_kappa = c.d_waiting / rho**2 - 2.0 * c.waiting / rho**3
    d2_kappa = c.d2_waiting / rho**2 - 4.0 * c.d_waiting / rho**3 + 6.0 * c.waiting / rho**4
    wait = rate * m2 * kappa / 2.0
    busy = 1.0 - c.empty
    return Delay(
        system_time=m1 * sigma + wait,
        waiting_time=wait,
        slowdown=sigma,
        batch=c.batch,
        busy=busy,
        step=(server.tau0 * busy + server.tau1 * c.batch) / busy,
        d_mean=c.d_batch + rate**2 * m2 * d_kappa / 2.0,
        d_second=rate * kappa / 2.0,
        d_mean_mean=rate * c.d2_batch + rate**3 * m2 * d2_kappa / 2.0,
        d_mean_second=rate**2 * d_kappa / 2.0,
    )
