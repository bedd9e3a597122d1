"""A scan's levels and what it tells: its peaks, a single one, the cubic's top.

A :class:`Level` is the best budgets at one value a of E[S], with J*(a) and its slope
dJ*/da (:mod:`thinkq.batching.levels`). :func:`peaks` finds a scan's best local
maxima; :func:`single_peak` whether values and slopes agree on exactly one;
:func:`hermite_top` the maximum of the cubic through two levels' values and slopes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from thinkq._typing import FloatArray

__all__ = ["Level", "hermite_top", "peaks", "single_peak"]


class Level(NamedTuple):
    """The best budgets at one level ``a`` of E[S] (s), the multiplier mu and J there.

    ``slope`` is dJ*/da (per second of E[S]; NaN where every type sits at a bound).
    """

    a: float
    mu: float
    budgets: FloatArray
    objective: float
    slope: float = math.nan


def peaks(found: list[Level], keep: int) -> list[Level]:
    """The ``keep`` best local maxima of J*(a) along a scan, best first."""
    values = [f.objective for f in found]
    n = len(values)
    tops = [
        i
        for i in range(n)
        if math.isfinite(values[i])
        and (i == 0 or values[i] >= values[i - 1])
        and (i == n - 1 or values[i] >= values[i + 1])
    ]
    tops.sort(key=lambda i: values[i], reverse=True)
    return [found[i] for i in tops[:keep]]


def single_peak(found: list[Level]) -> int | None:
    """The index of the scan's one peak, if its values and slopes both say it has one.

    J rises strictly to the best level (finite) and falls strictly after it (-inf
    allowed), and every slope (where defined) is positive before it and negative after
    it; else ``None``.
    """
    values = [f.objective for f in found]
    if not values:
        return None
    top = max(range(len(values)), key=values.__getitem__)
    rising = all(values[i] < values[i + 1] for i in range(top))
    # beyond the top, levels at the capacity may be -inf (unstable in double precision)
    falling = all(
        values[i] > values[i + 1] or values[i] == values[i + 1] == -math.inf
        for i in range(top, len(values) - 1)
    )
    before = all(not f.slope <= 0.0 for f in found[:top])  # NaN passes
    after = all(not f.slope >= 0.0 for f in found[top + 1 :])
    return top if rising and falling and before and after else None


def hermite_top(left: Level, right: Level) -> float | None:
    """The level of the maximum of the cubic through two levels' values and slopes.

    ``None`` unless the slope falls from positive at ``left`` to negative at ``right``.
    """
    if not (left.slope > 0.0 > right.slope):
        return None
    h = right.a - left.a
    d = right.objective - left.objective
    # the cubic's derivative in t = (a - a_left) / h is q(t) = A t^2 + B t + C
    big_a = 3.0 * (h * (left.slope + right.slope) - 2.0 * d)
    big_b = 2.0 * (3.0 * d - h * (2.0 * left.slope + right.slope))
    big_c = h * left.slope
    # q(0) = h s_left > 0 > q(1) = h s_right: exactly one root in (0, 1)
    root = math.sqrt(max(big_b * big_b - 4.0 * big_a * big_c, 0.0))
    half = -0.5 * (big_b + math.copysign(root, big_b))  # the stable quadratic formula
    roots = [big_c / half] if half != 0.0 else []
    if big_a != 0.0:
        roots.append(half / big_a)
    inside = [r for r in roots if 0.0 <= r <= 1.0]
    t = inside[0] if inside else 0.5
    return left.a + h * min(max(t, 0.0), 1.0)
