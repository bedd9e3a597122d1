"""The number in system with a prompt stage: a Markov chain on (N, j).

With a prompt stage (:attr:`~thinkq.batching.server.Server.prompt` = p > 0, llama.cpp's
semantics) a query that takes a slot first has its prompt computed alone at full speed,
one prompt at a time, while the decoding sequences wait; then it decodes. With
exponential prompt (mean p) and decode (mean d = E[S] - p) times this is a Markov chain
on (N, j): N queries present, j of the min(N, B) in service still in their prompt.

* an arrival (rate lambda) takes a slot and joins the prompts if one is free;
* with j > 0 the first prompt ends at rate 1 / p, and its query starts decoding;
* with j = 0 and m = min(N, B) decoding, one of them ends at rate C(m) / d (each
  advances at tau(1) / tau(m)); the first query waiting, if any, takes its slot and
  starts its prompt.

At p -> 0 it is the birth-death chain of :mod:`thinkq.batching.chain`. The chain is
truncated at K queries, K doubled until the law's mass at K is negligible, and solved
by one banded LU (states ordered by level: a band of about 2 (B + 1)). Its
derivatives in the mean solo time m1 (d = m1 - p moves, the rate and p do not) come
from the same factorisation: the generator is Q = Q0 + Qd / d, so x Q = 0 gives
x' Q = -x Q' and x'' Q = -2 x' Q' - x Q'', with Q' = -Qd / d^2 and Q'' = 2 Qd / d^3.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import scipy.sparse as sparse
from scipy.linalg import lapack

from thinkq._typing import FloatArray, IntArray
from thinkq.batching.server import Server

__all__ = ["PromptChain", "prompt_chain"]

#: The law's mass at the truncation, relative, below which the chain is long enough.
_TAIL = 1e-15
#: The most states the chain is solved on (beyond: the load is within 1e-5 of capacity).
_MOST_STATES = 2_000_000


class PromptChain(NamedTuple):
    """Aggregates of the (N, j) chain at mean solo time m1, with their m1-derivatives.

    ``batch`` is E[min(N, B)], ``waiting`` E[(N - B)^+], ``empty`` P(N = 0),
    ``decoding`` P(J = 0, N > 0) (some query decodes, no prompt runs) and ``stepping``
    E[tau(min(N, B)); J = 0, N > 0]; ``d_*`` and ``d2_*`` are first and second
    derivatives in m1 (the arrival rate and the prompt held).
    """

    empty: float
    batch: float
    d_batch: float
    d2_batch: float
    waiting: float
    d_waiting: float
    d2_waiting: float
    decoding: float
    stepping: float


def _states(slots: int, size: int) -> tuple[IntArray, IntArray]:
    """n and j of every state (n = 0..``size``, j = 0..min(n, B)), in index order."""
    n = np.repeat(np.arange(size + 1), np.minimum(np.arange(size + 1), slots) + 1)
    start = np.concatenate(([0], np.cumsum(np.minimum(np.arange(size), slots) + 1)))
    return n, np.arange(n.size) - start[n]


def _index(slots: int, n: IntArray, j: IntArray) -> IntArray:
    """The index of states (n, j) in :func:`_states`' order."""
    head = (slots + 1) * (slots + 2) // 2
    result: IntArray = np.where(
        n <= slots, n * (n + 1) // 2 + j, head + (n - slots - 1) * (slots + 1) + j
    )
    return result


def _generator(rows: IntArray, cols: IntArray, rates: FloatArray, size: int) -> sparse.csr_matrix:
    """The generator with these off-diagonal rates (the diagonal makes rows sum to 0)."""
    q = sparse.csr_matrix((rates, (rows, cols)), shape=(size, size))
    return q - sparse.diags(np.asarray(q.sum(axis=1)).ravel())


@lru_cache(maxsize=64)
def _parts(server: Server, rate: float, size: int) -> tuple[sparse.csr_matrix, ...]:
    """Q0 (arrivals and prompts) and Qd (decodes at d = 1) of the chain cut at ``size``."""
    slots, p = server.slots, server.prompt
    n, j = _states(slots, size)
    states = n.size
    busy = np.minimum(n, slots)
    up = n < size
    rows = [np.flatnonzero(up), np.flatnonzero(j > 0)]
    cols = [
        _index(slots, n[up] + 1, j[up] + (busy[up] < slots)),
        _index(slots, n[j > 0], j[j > 0] - 1),
    ]
    rates = [np.full(rows[0].size, rate), np.full(rows[1].size, 1.0 / p)]
    q0 = _generator(np.concatenate(rows), np.concatenate(cols), np.concatenate(rates), states)
    ends = np.flatnonzero((j == 0) & (n > 0))
    m = busy[ends].astype(np.float64)
    speed = server.step_time(1) / server.step_times(m)
    target = _index(slots, n[ends] - 1, (n[ends] > slots).astype(np.int64))
    qd = _generator(ends, target, m * speed, states)
    return q0, qd


def _banded(matrix: sparse.coo_matrix) -> tuple[Callable[[FloatArray], FloatArray], int]:
    """A solver of ``matrix`` (banded: the chain's states are ordered by level) by
    LAPACK's banded LU with partial pivoting, factorised once; and LAPACK's info."""
    rows, cols = matrix.row, matrix.col
    lower, upper = int(np.max(rows - cols, initial=0)), int(np.max(cols - rows, initial=0))
    band = np.zeros((2 * lower + upper + 1, matrix.shape[1]))
    np.add.at(band, (lower + upper + rows - cols, cols), matrix.data)
    lu, pivots, info = lapack.dgbtrf(band, lower, upper)

    def solve(right: FloatArray) -> FloatArray:
        result: FloatArray = lapack.dgbtrs(lu, lower, upper, right, pivots)[0]
        return result

    return solve, int(info)


def _solve(server: Server, rate: float, m1: float, size: int) -> tuple[FloatArray, ...]:
    """The stationary law x and its m1-derivatives x', x'' on the chain cut at ``size``.

    y Q = 0 with y_0 = 1 (state 0's balance dropped: it follows from the others) is a
    banded system; so are y' Q = -y Q' and y'' Q = -2 y' Q' - y Q'' with y'_0 = y''_0 = 0.
    Then x = y / S (S = sum y) and its derivatives by the quotient rule.
    """
    d = m1 - server.prompt
    q0, qd = _parts(server, rate, size)
    system = (q0 + qd / d).T.tocsr()
    solve, info = _banded(system[1:, 1:].tocoo())
    if info != 0:
        raise ArithmeticError(f"the prompt chain's system is singular (LAPACK info {info})")
    y = np.concatenate(([1.0], solve(-system[1:, 0].toarray().ravel())))
    flow = qd.T @ y  # y Qd, as a column
    y1 = np.concatenate(([0.0], solve((flow / d**2)[1:])))
    y2 = np.concatenate(([0.0], solve((2.0 * (qd.T @ y1) / d**2 - 2.0 * flow / d**3)[1:])))
    s, s1, s2 = y.sum(), y1.sum(), y2.sum()
    x = y / s
    x1 = y1 / s - x * s1 / s
    x2 = y2 / s - 2.0 * y1 * s1 / s**2 - x * s2 / s + 2.0 * x * s1 * s1 / s**2
    return x, x1, x2


def _size(server: Server, rate: float, m1: float) -> int:
    """A first truncation: u^(K - B) at the tail's threshold, u the utilisation (the
    levels' masses decay a little faster than u: checked after the solve)."""
    u = server.utilization(rate, m1)
    return server.slots + 16 + int(0.5 * math.log(_TAIL) / math.log(u))


@lru_cache(maxsize=512)
def prompt_chain(server: Server, rate: float, m1: float) -> PromptChain:
    """The aggregates at arrival rate ``rate`` and mean solo time ``m1`` (p < m1 and
    :meth:`~thinkq.batching.server.Server.utilization` below 1)."""
    if not server.prompt < m1:
        raise ValueError(f"m1: must exceed the prompt {server.prompt!r}, got {m1!r}")
    if not 0.0 < server.utilization(rate, m1) < 1.0:
        raise ValueError(f"rate: the load must be in (0, 1) of capacity, got rate {rate!r}")
    slots = server.slots
    size = _size(server, rate, m1)
    while True:
        x, x1, x2 = _solve(server, rate, m1, size)
        n, j = _states(slots, size)
        last = float(x[n == size].sum())
        if last < _TAIL or (size * 2) * (slots + 1) > _MOST_STATES:
            break
        size *= 2
    busy = np.minimum(n, slots).astype(np.float64)
    queue = np.maximum(n - slots, 0).astype(np.float64)
    decoding = (j == 0) & (n > 0)
    taus = np.where(decoding, server.step_times(np.maximum(busy, 1.0)), 0.0)
    return PromptChain(
        empty=float(x[0]),
        batch=float(busy @ x),
        d_batch=float(busy @ x1),
        d2_batch=float(busy @ x2),
        waiting=float(queue @ x),
        d_waiting=float(queue @ x1),
        d2_waiting=float(queue @ x2),
        decoding=float(x[decoding].sum()),
        stepping=float(taus @ x),
    )
