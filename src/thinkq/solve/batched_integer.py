"""Integer budgets under the batched J (section III-E with the batched delay law).

On a batched server J = alpha * accuracy - F(E[S], E[S^2]), F the delay law of
:func:`thinkq.batching.delay`: the three sums and one O(1) evaluation of F give the
exact J of any budget vector (:class:`thinkq.solve.lattice.Lattice`). The budgets are
coupled through E[S], the more so near the capacity: once one budget is rounded up,
another's best integer can lie below its floor, so eq. (39)'s floor/ceil box is not
enough and the search looks around it.

* Up to :data:`BOX_LIMIT` (5) types with a share: every integer vector within 2 of
  the floor/ceil of each budget (at most 6^5 = 7776, screened, the best 64 exact).
* Up to :data:`BATCHED_EXHAUSTIVE_LIMIT` (10) fractional budgets: every floor/ceil
  combination (eq. 39), then a steepest ascent over moves of one or two of those
  budgets by one or two tokens, exact J, until no move gains.
* Beyond: a local search from rounding (eq. 40). At the current point the flips are
  sorted by their gain, with F to second order in its partial derivatives there
  (exact but for O((pi_k c_k)^3)); every prefix of the gaining flips is valued the
  same way from cumulative sums, the 8 best are evaluated exactly (O(m log m) work
  a round), and the best is taken only if it beats the current J.

Either way the answer is compared with rounding by :func:`thinkq.model.objective`,
so it is never worse than eq. (40).
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np

from thinkq import model
from thinkq._typing import FloatArray, IntArray
from thinkq.batching.delay import Delay, delay
from thinkq.batching.server import Server
from thinkq.profile import Profile
from thinkq.solve.lattice import Lattice, batched_values
from thinkq.solve.sums import Sums, round_budgets

__all__ = ["BATCHED_EXHAUSTIVE_LIMIT", "BOX_LIMIT", "best_batched_integer"]

#: Most types searched over the whole box within 2 tokens of their floor/ceil.
BOX_LIMIT = 5
#: Most fractional budgets whose floor/ceil combinations are all tried.
BATCHED_EXHAUSTIVE_LIMIT = 10
_REACH = 2
_MAX_ROUNDS = 64
#: Prefixes of flips evaluated exactly a round (the best by F to second order).
_PREFIXES = 8
_MAX_ASCENT = 256


def _box(profile: Profile, server: Server, budgets: FloatArray, index: IntArray) -> FloatArray:
    """The best integer vector within ``_REACH`` of the floor/ceil of ``budgets[index]``."""
    top = profile.max_tokens
    low = np.clip(np.floor(budgets[index]) - _REACH, 0, top).astype(np.int64)
    high = np.clip(np.ceil(budgets[index]) + _REACH, 0, top).astype(np.int64)
    axes = [range(int(lo), int(hi) + 1) for lo, hi in zip(low, high, strict=True)]
    rows = np.array(list(itertools.product(*axes)), dtype=np.float64)
    base = np.clip(np.floor(budgets + 0.5), 0, top)
    k, _, _ = Lattice(profile, server, base, index).best(rows)
    base[index] = rows[k]
    return base


@lru_cache(maxsize=16)
def _moves(m: int) -> FloatArray:
    """Moves of m budgets: one by +-1 or +-2 tokens, or two by +-1 each (read-only)."""
    eye = np.eye(m)
    singles = [step * eye for step in (1.0, -1.0, 2.0, -2.0)]
    i, j = np.triu_indices(m, 1)
    pairs = [si * eye[i] + sj * eye[j] for si in (1.0, -1.0) for sj in (1.0, -1.0)]
    moves = np.vstack([*singles, *pairs])
    moves.flags.writeable = False
    return moves


def _ascend(profile: Profile, server: Server, floor: FloatArray, index: IntArray) -> FloatArray:
    """The best floor/ceil combination, then steepest ascent over :func:`_moves`."""
    m = index.size
    lattice = Lattice(profile, server, floor, index)
    codes = np.arange(1 << m, dtype=np.int64)
    bits = ((codes[:, None] >> np.arange(m, dtype=np.int64)) & 1).astype(np.float64)
    rows = floor[index] + bits
    k, now, center = lattice.best(rows)
    here, moves, top = rows[k], _moves(m), float(profile.max_tokens)
    for _ in range(_MAX_ASCENT):
        trial = here + moves
        trial = trial[np.all((trial >= 0.0) & (trial <= top), axis=1)]
        # the moves' screen expands F around the current point, whose law is known
        k, value, moved = lattice.best(trial, center)
        if not value > now:
            break
        here, now, center = trial[k], value, moved
    chosen = floor.copy()
    chosen[index] = here
    return chosen


def _local_search(
    profile: Profile, server: Server, floor: FloatArray, index: IntArray, start: FloatArray
) -> FloatArray:
    """Improve ``start`` by prefixes of flips, ordered by their gain (module docstring)."""
    current = start.copy()
    pi, t0, c = profile.share[index], profile.t0[index], profile.c[index]
    a, b = profile.A[index], profile.b[index]
    for _ in range(_MAX_ROUNDS):
        sums = Sums(profile, current, np.empty(0, dtype=np.int64))
        law = delay(server, profile.rate, sums.mean, sums.second)
        now = profile.alpha * sums.acc - law.system_time
        here = current[index]
        other = np.where(here > floor[index], floor[index], floor[index] + 1.0)
        t, t_new = t0 + c * here, t0 + c * other
        d_mean = pi * (t_new - t)
        d_second = pi * (t_new - t) * (t_new + t)
        d_acc = pi * a * (np.exp(-b * here) - np.exp(-b * other))
        gain = profile.alpha * d_acc - _change(law, d_mean, d_second)
        gaining = np.flatnonzero(gain > 0)
        if gaining.size == 0:
            break
        order = gaining[np.argsort(-gain[gaining], kind="stable")]
        acc, mean = np.cumsum(d_acc[order]), np.cumsum(d_mean[order])
        second = np.cumsum(d_second[order])
        # every prefix by F to second order, the best few exactly
        screen = profile.alpha * acc - _change(law, mean, second)
        count = min(_PREFIXES, screen.size)
        top = np.argpartition(-screen, count - 1)[:count]
        values = batched_values(
            profile, server, sums.acc + acc[top], sums.mean + mean[top], sums.second + second[top]
        )
        k = int(np.argmax(values))
        if not values[k] > now:
            break
        take = order[: top[k] + 1]
        current[index[take]] = other[take]
    return current


def _change(law: Delay, d_mean: FloatArray, d_second: FloatArray) -> FloatArray:
    """F's change for changes of E[S] and E[S^2], to second order (F22 = 0)."""
    change: FloatArray = law.d_mean * d_mean + law.d_second * d_second
    change += d_mean * (0.5 * law.d_mean_mean * d_mean + law.d_mean_second * d_second)
    return change


def best_batched_integer(
    profile: Profile, server: Server, budgets: FloatArray, floor: FloatArray, index: IntArray
) -> FloatArray:
    """Integer budgets under the batched J, never worse than rounding (module docstring).

    ``floor`` is the floor of ``budgets`` in [0, l_max] and ``index`` the fractional ones.
    """
    rounded = round_budgets(profile, budgets).astype(np.float64)
    shared = np.flatnonzero(profile.share > 0)
    if shared.size <= BOX_LIMIT:
        chosen = _box(profile, server, budgets, shared)
    elif index.size <= BATCHED_EXHAUSTIVE_LIMIT:
        chosen = _ascend(profile, server, floor, index) if index.size else floor.copy()
    else:
        chosen = _local_search(profile, server, floor, index, rounded)
    if np.array_equal(chosen, rounded):
        return chosen
    if not model.objective(profile, chosen) >= model.objective(profile, rounded):
        return rounded  # the sums' rounding errors cannot make it worse than eq. (40)
    return chosen
