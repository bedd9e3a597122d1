"""The objective J and its derivatives on a batched server.

J(l) = alpha sum_k pi_k p_k(l_k) - F(m1, m2) (eq. 7 with the batched delay law of
:func:`thinkq.batching.delay` in place of eqs. 5, 6), where m1 = E[S] = sum pi_k t_k and
m2 = E[S^2] = sum pi_k t_k^2 + sum pi_k Var(S_k) are the paper's aggregates (eq. 3).
F is linear in m2 (F22 = 0), so

* the gradient keeps the form of eqs. (10, 15):
  dJ/dl_k = alpha pi_k A_k b_k e^{-b_k l_k} - pi_k c_k (F1 + 2 F2 t_k);
* the Hessian keeps the diagonal-plus-rank-two form of eqs. (33, 34):
  -Hess J = diag(alpha pi A b^2 e^{-b l} + 2 F2 pi c^2) + F11 u u^T + 2 F12 (u v^T + v u^T)
  with u = pi c, v = pi c t (:class:`thinkq.model.HessianParts`, cross = 2 F12,
  outer = F11). Unlike P-K's, this matrix is not proven positive definite;
* with (F1, F2) frozen, type k's best response solves l - L e^{-b l} = K (eq. 19) with
  L = alpha A b / (2 F2 c^2) and K = -t0 / c - F1 / (2 F2 c) (eqs. 20, 21 with
  lambda / (2 D) -> F2); at F2 = 0 (no queue) it is log(alpha A b / (c F1)) / b.

At B = 1 every formula here is the paper's (the delay law is P-K there).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import wrightomega

from thinkq._shapes import HessianParts, project
from thinkq._typing import FloatArray, IntArray
from thinkq.batching.delay import Delay, delay
from thinkq.batching.server import Server
from thinkq.lambert import halley_omega, root_unguarded
from thinkq.profile import Profile

BoolArray = NDArray[np.bool_]
#: Up to this many types a level's responses skip the masks (numpy's call overhead).
_SMALL = 256

__all__ = [
    "BatchedPoint",
    "BatchedWorkspace",
    "best_response",
    "gradient",
    "hessian_parts",
    "kkt_residual",
    "objective",
    "respond",
]


class BatchedPoint(NamedTuple):
    """J's ingredients at one budget vector: t, e^{-b l}, m1, m2 and the delay law there."""

    budgets: FloatArray
    service: FloatArray
    decay: FloatArray
    m1: float
    m2: float
    delay: Delay
    objective: float


def respond(profile: Profile, f1: float, f2: float) -> FloatArray:
    """Each type's unprojected best response to frozen marginal costs (F1, F2), tokens.

    Maximises alpha A_k (1 - e^{-b l}) - F1 t_k(l) - F2 t_k(l)^2 per type: the root of
    l - L e^{-b l} = K (eq. 19) with L = alpha A b / (2 F2 c^2), K = -t0/c - F1 / (2 F2 c),
    by :func:`thinkq.lambert.fixed_point_root` in logs. At F2 = 0 the root is
    log(alpha A b / (c F1)) / b, and +inf where F1 <= 0 (more tokens always pay).
    """
    return _Responder(profile)(f1, f2)


class _Types(NamedTuple):
    """Per-type constants of the best response (all types, or a subset of them)."""

    b: FloatArray
    c: FloatArray
    t0: FloatArray
    gain: FloatArray  # alpha A b / c
    log_gain: FloatArray  # log(alpha A b^2 / c^2)
    log_t0: FloatArray
    log_bc: FloatArray  # log(b / c)
    minus_c: FloatArray

    def take(self, index: IntArray) -> _Types:
        return _Types(*(column[index] for column in self))


def _root(types: _Types, f1: float, f2: float, *, fast: bool = False) -> FloatArray:
    """The root of eq. (19) for ``types`` at marginal costs (F1, F2) (see :func:`respond`).

    ``fast``: omega by :func:`thinkq.lambert.halley_omega` (1e-14 of scipy's).
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _unguarded_root(types, f1, f2, fast=fast)


def _unguarded_root(types: _Types, f1: float, f2: float, *, fast: bool) -> FloatArray:
    """:func:`_root` without its :class:`numpy.errstate` (entering one costs about a
    microsecond): for callers already inside one that ignores divide, invalid and over."""
    b, c, t0 = types.b, types.c, types.t0
    if f2 <= 0.0:
        if f1 <= 0.0:
            return np.full(b.shape, np.inf)
        result: FloatArray = np.log(types.gain / f1) / b
        return result
    log_bl = types.log_gain - math.log(2.0 * f2)
    ratio = f1 / (2.0 * f2)
    if f1 > 0.0 and not ratio < 1e300:  # F1 / (2 F2) overflows: in logs
        shift = np.logaddexp(types.log_t0, math.log(f1) - math.log(2.0 * f2))
        k = -np.exp(shift) / c
        log_minus_bk: FloatArray | Callable[[], FloatArray] = types.log_bc + shift
    else:  # -c K = t0 + F1 / (2 F2); log(-b K) only if needed (y = inf), nan if K > 0
        total = t0 + ratio
        k = total / types.minus_c

        def log_minus_bk() -> FloatArray:
            result: FloatArray = types.log_bc + np.log(total)
            return result

    return root_unguarded(log_bl, k, b, log_minus_bk, omega=halley_omega if fast else wrightomega)


class _Responder:
    """:func:`respond` with the per-type logarithms computed once."""

    def __init__(self, profile: Profile) -> None:
        a, b, c, t0 = profile.alpha * profile.A, profile.b, profile.c, profile.t0
        with np.errstate(divide="ignore"):
            self.types = _Types(
                b, c, t0, a * b / c, np.log(a) + 2.0 * np.log(b) - 2.0 * np.log(c),
                np.log(t0), np.log(b) - np.log(c), -c,
            )  # fmt: skip
        self.l_max = float(profile.max_tokens)
        self.t_max = t0 + c * self.l_max
        self.gain_max = self.types.gain * np.exp(-b * self.l_max)  # the marginal gain at l_max

    def __call__(self, f1: float, f2: float) -> FloatArray:
        return _root(self.types, f1, f2)

    def projected(self, f1: float, f2: float) -> tuple[FloatArray, BoolArray]:
        """clip(respond(f1, f2), 0, l_max), the root computed only where it is inside.

        A type's own objective is concave, so its response is 0 where its marginal
        gain at l = 0 is at most its marginal cost there, l_max where the gain at l_max
        is at least the cost there, and the root of eq. (19) otherwise. Also returns
        the mask of those other types. For the search over levels: the root's omega
        is :func:`thinkq.lambert.halley_omega`; the certificate uses scipy's. Call it
        inside a :class:`numpy.errstate` ignoring divide, invalid and over
        (:class:`thinkq.batching.levels.Levels` enters one for all its responses).
        """
        types = self.types
        if types.b.size <= _SMALL:  # a few types: fewest numpy calls
            root = _unguarded_root(types, f1, f2, fast=False)
            l: FloatArray = np.minimum(np.maximum(root, 0.0), self.l_max)
            return l, (l > 0.0) & (l < self.l_max)
        top = self.gain_max >= f1 + 2.0 * f2 * self.t_max
        inside = (types.gain > f1 + 2.0 * f2 * types.t0) & ~top
        result: FloatArray = np.where(top, self.l_max, 0.0)
        count = int(np.count_nonzero(inside))
        if 4 * count > inside.size:  # most types: no gather, the root everywhere
            root = _unguarded_root(types, f1, f2, fast=True)
            root = np.minimum(np.maximum(root, 0.0), self.l_max)
            result = np.where(inside, root, result)
        elif count:
            index = np.flatnonzero(inside)
            root = _unguarded_root(types.take(index), f1, f2, fast=True)
            result[index] = np.minimum(np.maximum(root, 0.0), self.l_max)
        return result, inside


class BatchedWorkspace:
    """A profile and server with their constant coefficients, for repeated evaluation."""

    def __init__(self, profile: Profile, server: Server) -> None:
        self.profile = profile
        self.server = server
        pi = profile.share
        self.pc = pi * profile.c
        self.pc2 = self.pc * profile.c
        self.pi_gain = pi * profile.alpha * profile.A * profile.b
        self.pi_curvature = self.pi_gain * profile.b
        self.pi_a = pi * profile.A
        self.floor = float(np.dot(pi, profile.D))
        self.respond = _Responder(profile)

    def point(self, budgets: FloatArray) -> BatchedPoint:
        """Evaluate t, m1, m2, the delay law and J (eq. 7; -inf if unstable) at ``budgets``."""
        p = self.profile
        t = p.t0 + p.c * budgets
        weighted = p.share * t
        m1 = float(np.add.reduce(weighted))
        m2 = float(np.dot(weighted, t)) + p.extra_second_moment
        decay = np.exp(-p.b * budgets)
        law = delay(self.server, p.rate, m1, m2)
        if math.isinf(law.system_time):
            return BatchedPoint(budgets, t, decay, m1, m2, law, -math.inf)
        accuracy = float(np.dot(self.pi_a, -np.expm1(-p.b * budgets))) + self.floor
        value = p.alpha * accuracy - law.system_time
        return BatchedPoint(budgets, t, decay, m1, m2, law, value)

    def derivatives(self, x: BatchedPoint) -> tuple[FloatArray, HessianParts]:
        """The gradient and the Hessian parts of J at a stable point (eqs. 10, 33, 34)."""
        law = x.delay
        v = self.pc * x.service
        grad = self.pi_gain * x.decay - law.d_mean * self.pc - 2.0 * law.d_second * v
        diagonal = self.pi_curvature * x.decay + 2.0 * law.d_second * self.pc2
        parts = HessianParts(diagonal, self.pc, v, 2.0 * law.d_mean_second, law.d_mean_mean)
        return grad, parts

    def best_response(self, x: BatchedPoint) -> FloatArray:
        """l_hat at the marginal costs (F1, F2) of the point ``x`` (eq. 22), unprojected."""
        return self.respond(x.delay.d_mean, x.delay.d_second)


def _point(profile: Profile, server: Server, budgets: ArrayLike) -> BatchedPoint:
    l = np.asarray(budgets, dtype=np.float64)
    if l.shape != (profile.size,):
        raise ValueError(f"budgets: expected {profile.size} values, got shape {l.shape}")
    return BatchedWorkspace(profile, server).point(l)


def _stable(profile: Profile, server: Server, budgets: ArrayLike) -> BatchedPoint:
    x = _point(profile, server, budgets)
    if math.isinf(x.objective):
        raise ValueError("budgets: outside the stability region (rate * E[S] >= C(B))")
    return x


def objective(profile: Profile, server: Server, budgets: ArrayLike) -> float:
    """J(l) = alpha sum_k pi_k p_k - E[T] on ``server`` (eq. 7); -inf outside stability.

    The sums and one evaluation of the delay law, without a workspace (the integer
    search calls this on its candidates).
    """
    p = profile
    l = np.asarray(budgets, dtype=np.float64)
    if l.shape != (p.size,):
        raise ValueError(f"budgets: expected {p.size} values, got shape {l.shape}")
    t = p.t0 + p.c * l
    weighted = p.share * t
    m1 = float(np.add.reduce(weighted))
    law = delay(server, p.rate, m1, float(np.dot(weighted, t)) + p.extra_second_moment)
    if math.isinf(law.system_time):
        return -math.inf
    # as BatchedWorkspace.point, to the last bit
    accuracy = float(np.dot(p.share * p.A, -np.expm1(-p.b * l))) + float(np.dot(p.share, p.D))
    return p.alpha * accuracy - law.system_time


def gradient(profile: Profile, server: Server, budgets: ArrayLike) -> FloatArray:
    """dJ/dl_k = alpha pi_k A_k b_k e^{-b_k l_k} - pi_k c_k (F1 + 2 F2 t_k), per token.

    Raises ``ValueError`` outside the stability region.
    """
    x = _stable(profile, server, budgets)
    return BatchedWorkspace(profile, server).derivatives(x)[0]


def hessian_parts(profile: Profile, server: Server, budgets: ArrayLike) -> HessianParts:
    """The Hessian of J as diagonal plus rank two (eqs. 33, 34 with F11, F12, F2)."""
    x = _stable(profile, server, budgets)
    return BatchedWorkspace(profile, server).derivatives(x)[1]


def best_response(profile: Profile, server: Server, budgets: ArrayLike) -> FloatArray:
    """The unprojected best response l_hat(l) (eq. 22 under the batched law), tokens."""
    x = _stable(profile, server, budgets)
    return respond(profile, x.delay.d_mean, x.delay.d_second)


def kkt_residual(profile: Profile, server: Server, budgets: ArrayLike) -> float:
    """max_k |l_k - clip(l_hat_k(l), 0, l_max)| in tokens (eq. 23): zero at a KKT point."""
    x = _stable(profile, server, budgets)
    target = project(respond(profile, x.delay.d_mean, x.delay.d_second), profile.max_tokens)
    return float(np.maximum.reduce(np.abs(x.budgets - target), initial=0.0))
