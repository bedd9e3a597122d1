"""The accuracy-latency frontier: what each alpha buys, traced from 0 upwards.

Every point is ``thinkq.solve`` at one alpha (the integer budgets it prints): its
weighted mean accuracy, mean system time (eq. 6) and a percentile of the system time
(:func:`thinkq.tails.system_times`). The trace starts at alpha = 0 (zero budgets),
continues on a geometric grid from the alpha at which the first budget leaves zero
(``min_k dE[T]/dl_k / (pi_k A_k b_k)`` at l = 0, where the accuracy gain first
outweighs the delay), and ends where more alpha buys nothing: every type with
queries at ``l_max``, the accuracy within 1e-4 of its value at ``l_max``, or the
utilisation at :data:`UTILISATION_STOP` (beyond it the queue, not the accuracy,
grows: the load approaches instability).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from thinkq import model
from thinkq._typing import IntArray
from thinkq.profile import Profile
from thinkq.slo.evaluate import TimesFunction
from thinkq.slo.times import tails
from thinkq.solve import SolveResult, solve

__all__ = [
    "DEFAULT_POINTS",
    "UTILISATION_STOP",
    "Frontier",
    "FrontierPoint",
    "Tracer",
    "first_alpha",
    "frontier",
]

#: Points of the trace by default (alpha = 0 and a geometric grid).
DEFAULT_POINTS = 30
#: The trace stops at this utilisation (of the server, or of C(B) on a batched one).
UTILISATION_STOP = 0.95
#: ... or once the accuracy is this close to its value at l_max everywhere.
ACCURACY_STOP = 1e-4
#: The geometric search for the end takes steps of this factor, at most this many.
_STEP, _MAX_STEPS = 4.0, 400


class FrontierPoint(NamedTuple):
    """One point of the frontier: the integer solve at ``alpha``.

    ``percentile_time`` is the frontier's percentile (p95 by default) of the system
    time, seconds; times are ``inf`` where the queue is unstable.
    """

    alpha: float
    budgets: tuple[int, ...]
    accuracy: float
    mean_system_time: float
    percentile_time: float
    utilization: float

    def to_dict(self, percentile: float) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "accuracy": self.accuracy,
            "mean_system_time": self.mean_system_time,
            f"p{percentile:g}_system_time": self.percentile_time,
            "utilization": self.utilization,
            "budgets": list(self.budgets),
        }


@dataclass(frozen=True)
class Frontier:
    """The frontier traced over alpha (see the module docstring).

    Attributes
    ----------
    names:
        The task types, in the order of each point's budgets.
    points:
        Ascending alpha, the first at alpha = 0 (zero budgets).
    operating_point:
        The solve at the profile's own alpha.
    percentile:
        The percentile of :attr:`FrontierPoint.percentile_time` (95).
    percentile_method:
        How percentiles were computed (``"pk-transform"``, or ``"simulation"``).
    stop:
        Why the trace ends: ``"saturated"``, ``"accuracy"``, ``"utilisation"``, or
        ``"alpha"`` (1e300 reached).
    """

    names: tuple[str, ...]
    points: tuple[FrontierPoint, ...]
    operating_point: FrontierPoint
    percentile: float
    percentile_method: str
    stop: str

    def to_dict(self) -> dict[str, Any]:
        """The frontier as plain JSON-ready data (``thinkq frontier --json``)."""
        return {
            "names": list(self.names),
            "percentile": self.percentile,
            "percentile_method": self.percentile_method,
            "stop": self.stop,
            "operating_point": self.operating_point.to_dict(self.percentile),
            "points": [p.to_dict(self.percentile) for p in self.points],
        }


def first_alpha(profile: Profile) -> float:
    """The alpha below which the continuous optimum is zero budgets: dJ/dl_k <= 0 at
    l = 0 for every k, i.e. alpha pi_k A_k b_k <= dE[T]/dl_k (eqs. 10, 15)."""
    zero = np.zeros(profile.size)
    with np.errstate(all="ignore"):
        gain = profile.share * profile.A * profile.b
        delay = gain - model.gradient(profile.replace(alpha=1.0), zero)
        ratios = delay / gain
    usable = ratios[np.isfinite(ratios) & (ratios > 0) & (gain > 0)]
    return float(np.clip(usable.min(), 1e-300, 1e300)) if usable.size else 1e-6


class Tracer:
    """Frontier points at given budgets, the percentile once per budget vector."""

    def __init__(self, profile: Profile, times: TimesFunction, percentile: float) -> None:
        self.profile, self.times, self.percentile = profile, times, percentile
        self.method = "none"
        self._cache: dict[bytes, float] = {}

    def point(self, alpha: float, budgets: IntArray) -> FrontierPoint:
        mean = model.system_time(self.profile, budgets)
        key = budgets.tobytes()
        if key not in self._cache:
            stable = np.isfinite(mean)
            law = self.times(self.profile, budgets) if stable else None
            self.method = law.method if law is not None else self.method
            value = law.percentile(self.percentile) if law is not None else float("inf")
            self._cache[key] = value
        return FrontierPoint(
            alpha=alpha,
            budgets=tuple(int(b) for b in budgets),
            accuracy=model.mean_accuracy(self.profile, budgets),
            mean_system_time=mean,
            percentile_time=self._cache[key],
            utilization=model.utilization(self.profile, budgets),
        )


def _end(
    profile: Profile, start: float, solve_at: Callable[[float], SolveResult]
) -> tuple[float, str]:
    """The alpha where the trace ends, and why (see the module docstring): found by
    steps of 4 from ``start``, then narrowed to 2% by bisection on log alpha."""
    positive = profile.share > 0
    best = model.mean_accuracy(profile, np.full(profile.size, profile.max_tokens))

    def reason(alpha: float) -> str | None:
        result = solve_at(alpha)
        if np.all(result.budgets[positive] >= profile.max_tokens):
            return "saturated"
        if result.accuracy >= best - ACCURACY_STOP:
            return "accuracy"
        if result.utilization >= UTILISATION_STOP:
            return "utilisation"
        return "alpha" if alpha >= 1e300 else None

    below, alpha = start, start
    for _ in range(_MAX_STEPS):
        why = reason(alpha)
        if why is not None:
            break
        below, alpha = alpha, min(alpha * _STEP, 1e300)
    else:
        return alpha, "alpha"
    while below < alpha and alpha / below > 1.02 and why != "alpha":
        middle = math.sqrt(below) * math.sqrt(alpha)
        found = reason(middle)
        below, alpha, why = (below, middle, found) if found else (middle, alpha, why)
    return alpha, why


# long: the docstring documents the six options; the body is one pass over the grid
def frontier(
    profile: Profile,
    *,
    points: int = DEFAULT_POINTS,
    percentile: float = 95.0,
    times: TimesFunction | None = None,
    progress: Callable[[int, int], None] | None = None,
    options: dict[str, Any] | None = None,
) -> Frontier:
    """The accuracy-latency frontier of ``profile`` over alpha.

    Parameters
    ----------
    profile:
        The instance; its alpha marks :attr:`Frontier.operating_point` only.
    points:
        Points on the trace (at least 2): alpha = 0, then a geometric grid.
    percentile:
        The percentile of the system time reported beside the mean, in (0, 100).
    times:
        Budgets -> the system-time distribution; default :func:`thinkq.slo.times.tails`
        (exact on the paper's server, 200,000 simulated queries on a batched one).
    progress:
        Called with (points done, points in all) as the trace proceeds.
    options:
        Passed to every :func:`thinkq.solve` (``method``, ``tol``, ...).
    """
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ValueError(f"points: expected an integer >= 2, got {points!r}")
    if not 0 < percentile < 100:
        raise ValueError(f"percentile: expected a number in (0, 100), got {percentile!r}")
    opts = options or {}

    def solve_at(alpha: float) -> SolveResult:
        return solve(profile.replace(alpha=alpha), **opts)

    tracer = Tracer(profile, times or tails(), percentile)
    start = first_alpha(profile)
    end, stop = (start, "saturated") if profile.max_tokens == 0 else _end(profile, start, solve_at)
    grid = np.geomspace(start, max(end, start), points)[1:]  # at start: still zero budgets
    trace = [tracer.point(0.0, np.zeros(profile.size, dtype=np.int64))]
    for i, alpha in enumerate(grid):
        if progress is not None:
            progress(i + 1, points)
        trace.append(tracer.point(float(alpha), solve_at(float(alpha)).budgets))
    own = tracer.point(profile.alpha, solve_at(profile.alpha).budgets)
    if progress is not None:
        progress(points, points)
    return Frontier(profile.names, tuple(trace), own, percentile, tracer.method, stop)
