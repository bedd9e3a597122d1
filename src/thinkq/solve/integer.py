"""Integer budgets from the continuous optimum (section III-E, eqs. 39-40).

J depends on the budgets only through three sums: mean accuracy, E[S] and E[S^2]
(eqs. 3, 7). Moving one budget between its floor and ceiling changes each sum by a
known amount, so the J of any floor/ceil combination is exact and cheap:

* ``"round"`` is eq. (40), component-wise rounding (halves go up);
* ``"best"`` is eq. (39), the best of all 2^m floor/ceil combinations of the m
  fractional budgets, by exhaustive search when m <= 20 (vectorised in blocks);
  for larger m a local search that starts from rounding and repeatedly applies the
  best prefix of flips sorted by their single-flip gain (O(m log m) a round), so it
  never returns a worse J than rounding.

On a batched server (``profile.batched``) the search is under the batched J
(:mod:`thinkq.solve.batched_integer`): exhaustive up to 10 fractional budgets, then an
integer ascent; a local search with exact J beyond; never worse than rounding.
"""

from __future__ import annotations

import numpy as np

from thinkq._typing import FloatArray, IntArray
from thinkq.profile import Profile
from thinkq.solve.batched_integer import BATCHED_EXHAUSTIVE_LIMIT, best_batched_integer
from thinkq.solve.sums import Sums, round_budgets

__all__ = ["BATCHED_EXHAUSTIVE_LIMIT", "EXHAUSTIVE_LIMIT", "best_integer", "round_budgets"]

#: Largest number of fractional budgets searched exhaustively (2^20 combinations).
EXHAUSTIVE_LIMIT = 20
_BLOCK = 1 << 15
_MAX_ROUNDS = 64


def _exhaustive(profile: Profile, floor: FloatArray, index: IntArray) -> FloatArray:
    sums = Sums(profile, floor, index)
    m = index.size
    best_value, best_code = -np.inf, 0
    weights = 1 << np.arange(m, dtype=np.int64)
    for start in range(0, 1 << m, _BLOCK):
        codes = np.arange(start, min(start + _BLOCK, 1 << m), dtype=np.int64)
        bits = ((codes[:, None] & weights) != 0).astype(np.float64)
        values = sums.objective(
            sums.acc + bits @ sums.d_acc,
            sums.mean + bits @ sums.d_mean,
            sums.second + bits @ sums.d_second,
        )
        k = int(np.argmax(values))
        if values[k] > best_value:
            best_value, best_code = float(values[k]), int(codes[k])
    chosen = floor.copy()
    chosen[index] += ((best_code & weights) != 0).astype(np.float64)
    return chosen


def _local_search(
    profile: Profile, floor: FloatArray, index: IntArray, start: FloatArray
) -> FloatArray:
    """Improve ``start`` by prefixes of floor/ceil flips of ``index``, best first."""
    current = start.copy()
    pi = profile.share[index]
    for _ in range(_MAX_ROUNDS):
        sums = Sums(profile, current, np.empty(0, dtype=np.int64))
        here = current[index]
        other = np.where(here > floor[index], floor[index], floor[index] + 1.0)
        t = profile.t0[index] + profile.c[index] * here
        t_new = profile.t0[index] + profile.c[index] * other
        a, b = profile.A[index], profile.b[index]
        d_mean = pi * (t_new - t)
        d_second = pi * (t_new - t) * (t_new + t)
        d_acc = pi * a * (np.exp(-b * here) - np.exp(-b * other))
        single = sums.objective(sums.acc + d_acc, sums.mean + d_mean, sums.second + d_second)
        order = np.argsort(-single, kind="stable")
        values = sums.objective(
            sums.acc + np.cumsum(d_acc[order]),
            sums.mean + np.cumsum(d_mean[order]),
            sums.second + np.cumsum(d_second[order]),
        )
        now = sums.objective(np.array(sums.acc), np.array(sums.mean), np.array(sums.second))
        if values.size == 0 or float(np.max(values)) <= float(now):
            break
        take = order[: int(np.argmax(values)) + 1]
        current[index[take]] = other[take]
    return current


def best_integer(profile: Profile, budgets: FloatArray) -> IntArray:
    """Eq. (39): the best floor/ceil combination (exhaustive up to 20 fractional budgets).

    On a batched server, under the batched J (exhaustive up to 10).
    """
    floor = np.clip(np.floor(budgets), 0, profile.max_tokens)
    fractional = np.flatnonzero(np.floor(budgets) != np.ceil(budgets))
    fractional = fractional[floor[fractional] < profile.max_tokens]
    server = profile.batched
    if server is not None:
        return best_batched_integer(profile, server, budgets, floor, fractional).astype(np.int64)
    if fractional.size <= EXHAUSTIVE_LIMIT:
        chosen = _exhaustive(profile, floor, fractional)
    else:
        start = round_budgets(profile, budgets).astype(np.float64)
        chosen = _local_search(profile, floor, fractional, start)
    return chosen.astype(np.int64)
