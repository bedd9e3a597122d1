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

On a batched server (``profile.batched``) J is alpha * accuracy - F(E[S], E[S^2]) with
F the batched delay law (:func:`thinkq.batching.delay`), one O(1) evaluation per
combination, so ``"best"`` searches exhaustively up to 10 fractional budgets (2^10
evaluations of F). Beyond, the local search starts from rounding, sorts the flips by
their gain linearised at the current point (F's partial derivatives there), evaluates
J exactly on prefixes of geometric lengths (1, 2, 4, ... and all the gaining flips:
O(log m) evaluations of F a round) and moves only to a better exact J. The answer is
checked against rounding with :func:`thinkq.model.objective`: never worse.
"""

from __future__ import annotations

import numpy as np

from thinkq import model
from thinkq._typing import FloatArray, IntArray
from thinkq.batching.delay import delay
from thinkq.batching.server import Server
from thinkq.profile import Profile

__all__ = ["BATCHED_EXHAUSTIVE_LIMIT", "EXHAUSTIVE_LIMIT", "best_integer", "round_budgets"]

#: Largest number of fractional budgets searched exhaustively (2^20 combinations).
EXHAUSTIVE_LIMIT = 20
#: The same on a batched server, where each combination costs one evaluation of F.
BATCHED_EXHAUSTIVE_LIMIT = 10
_BLOCK = 1 << 15
_MAX_ROUNDS = 64


def round_budgets(profile: Profile, budgets: FloatArray) -> IntArray:
    """Eq. (40): the nearest integer budget (halves up), within [0, l_max]."""
    rounded = np.clip(np.floor(budgets + 0.5), 0, profile.max_tokens)
    return rounded.astype(np.int64)


class _Sums:
    """The three sums J is made of, and the change each floor->ceil move brings."""

    def __init__(self, profile: Profile, base: FloatArray, index: IntArray) -> None:
        pi, c = profile.share, profile.c
        self.profile = profile
        t = model.service_time(profile, base)
        p = model.accuracy(profile, base)
        self.mean = float(np.dot(pi, t))
        self.second = float(np.dot(pi, t * t)) + profile.extra_second_moment
        self.acc = float(np.dot(pi, p))
        up = base[index] + 1.0
        t_up = profile.t0[index] + c[index] * up
        p_up = profile.A[index] * -np.expm1(-profile.b[index] * up) + profile.D[index]
        self.d_mean = pi[index] * c[index]
        self.d_second = pi[index] * (t_up - t[index]) * (t_up + t[index])
        self.d_acc = pi[index] * (p_up - p[index])

    def objective(self, acc: FloatArray, mean: FloatArray, second: FloatArray) -> FloatArray:
        rate = self.profile.rate
        slack = 1.0 - rate * mean
        with np.errstate(divide="ignore", invalid="ignore"):
            value = self.profile.alpha * acc - rate * second / (2.0 * slack) - mean
        result: FloatArray = np.where(slack > 0, value, -np.inf)
        return result


def _exhaustive(profile: Profile, floor: FloatArray, index: IntArray) -> FloatArray:
    sums = _Sums(profile, floor, index)
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
        sums = _Sums(profile, current, np.empty(0, dtype=np.int64))
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


def _batched_value(
    profile: Profile, server: Server, acc: FloatArray, mean: FloatArray, second: FloatArray
) -> FloatArray:
    """J = alpha * accuracy - F(E[S], E[S^2]) for each triple of sums (-inf if unstable)."""
    rate = profile.rate
    delays = [delay(server, rate, m1, m2).system_time for m1, m2 in zip(mean, second, strict=True)]
    values: FloatArray = profile.alpha * np.asarray(acc, dtype=np.float64) - np.array(delays)
    return values


def _batched_exhaustive(
    profile: Profile, server: Server, floor: FloatArray, index: IntArray
) -> FloatArray:
    sums = _Sums(profile, floor, index)
    m = index.size
    codes = np.arange(1 << m, dtype=np.int64)
    bits = ((codes[:, None] >> np.arange(m, dtype=np.int64)) & 1).astype(np.float64)
    values = _batched_value(
        profile,
        server,
        sums.acc + bits @ sums.d_acc,
        sums.mean + bits @ sums.d_mean,
        sums.second + bits @ sums.d_second,
    )
    chosen = floor.copy()
    chosen[index] += bits[int(np.argmax(values))]
    return chosen


def _prefix_lengths(count: int) -> IntArray:
    """1, 2, 4, ... below ``count``, and ``count``."""
    powers = 1 << np.arange(max(count, 1).bit_length(), dtype=np.int64)
    return np.unique(np.append(powers[powers < count], count))


def _batched_local_search(
    profile: Profile, server: Server, floor: FloatArray, index: IntArray, start: FloatArray
) -> FloatArray:
    """Improve ``start`` by prefixes of flips, sorted by their linearised gain."""
    current = start.copy()
    pi, t0, c = profile.share[index], profile.t0[index], profile.c[index]
    a, b = profile.A[index], profile.b[index]
    for _ in range(_MAX_ROUNDS):
        sums = _Sums(profile, current, np.empty(0, dtype=np.int64))
        law = delay(server, profile.rate, sums.mean, sums.second)
        now = profile.alpha * sums.acc - law.system_time
        here = current[index]
        other = np.where(here > floor[index], floor[index], floor[index] + 1.0)
        t, t_new = t0 + c * here, t0 + c * other
        d_mean = pi * (t_new - t)
        d_second = pi * (t_new - t) * (t_new + t)
        d_acc = pi * a * (np.exp(-b * here) - np.exp(-b * other))
        gain = profile.alpha * d_acc - law.d_mean * d_mean - law.d_second * d_second
        gaining = int(np.count_nonzero(gain > 0))
        if gaining == 0:
            break
        order = np.argsort(-gain, kind="stable")[:gaining]
        lengths = _prefix_lengths(gaining)
        values = _batched_value(
            profile,
            server,
            sums.acc + np.cumsum(d_acc[order])[lengths - 1],
            sums.mean + np.cumsum(d_mean[order])[lengths - 1],
            sums.second + np.cumsum(d_second[order])[lengths - 1],
        )
        k = int(np.argmax(values))
        if not values[k] > now:
            break
        take = order[: lengths[k]]
        current[index[take]] = other[take]
    return current


def _best_batched(
    profile: Profile, server: Server, budgets: FloatArray, floor: FloatArray, index: IntArray
) -> FloatArray:
    """The best floor/ceil combination under the batched J, never worse than rounding."""
    rounded = round_budgets(profile, budgets).astype(np.float64)
    if index.size <= BATCHED_EXHAUSTIVE_LIMIT:
        chosen = _batched_exhaustive(profile, server, floor, index)
    else:
        chosen = _batched_local_search(profile, server, floor, index, rounded)
    if not model.objective(profile, chosen) >= model.objective(profile, rounded):
        return rounded  # the sums' rounding errors cannot make it worse than eq. (40)
    return chosen


def best_integer(profile: Profile, budgets: FloatArray) -> IntArray:
    """Eq. (39): the best floor/ceil combination (exhaustive up to 20 fractional budgets).

    On a batched server, under the batched J (exhaustive up to 10).
    """
    floor = np.clip(np.floor(budgets), 0, profile.max_tokens)
    fractional = np.flatnonzero(np.floor(budgets) != np.ceil(budgets))
    fractional = fractional[floor[fractional] < profile.max_tokens]
    server = profile.batched
    if server is not None:
        return _best_batched(profile, server, budgets, floor, fractional).astype(np.int64)
    if fractional.size <= EXHAUSTIVE_LIMIT:
        chosen = _exhaustive(profile, floor, fractional)
    else:
        start = round_budgets(profile, budgets).astype(np.float64)
        chosen = _local_search(profile, floor, fractional, start)
    return chosen.astype(np.int64)
