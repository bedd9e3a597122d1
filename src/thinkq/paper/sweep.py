"""What-if sweeps: optimal budgets and their outcome across rate, alpha or slots.

Over ``alpha`` a sweep traces the accuracy-latency frontier: for any exact maximiser
of alpha * accuracy - system time, both accuracy and system time are non-decreasing
in alpha (compare the optimality of the two solutions at two values of alpha). Over
``rate`` it shows budgets shrinking as load grows, up to the rate where even zero
budgets are unstable (rate * E[S(0)] >= 1); points beyond it are reported as
``stable=False`` rather than solved. Over ``slots`` it serves the same profile with
B = 1, 2, 4, ... decode slots (the step-time law of the profile's ``[server]``
table), showing what batching buys: a point whose zero budgets are unstable with B
slots (rate * E[S(0)] >= C(B)) is ``stable=False``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from thinkq import model
from thinkq._typing import FloatArray
from thinkq.batching.delay import delay
from thinkq.batching.server import Server
from thinkq.errors import UnstableLoadError
from thinkq.profile import Profile
from thinkq.simulate import simulate
from thinkq.solve import solve

__all__ = ["SWEEP_PARAMETERS", "Sweep", "SweepPoint", "sweep"]

SWEEP_PARAMETERS = ("rate", "alpha", "slots")


@dataclass(frozen=True)
class SweepPoint:
    """The optimum at one value of the swept parameter (times in seconds).

    ``accuracy``, ``mean_system_time`` and ``utilization`` are the analytic figures
    at the continuous optimum l* (the frontier itself); ``budgets`` are the integer
    budgets to deploy; ``p95_system_time`` is simulated at those budgets (``None`` if
    no simulation was asked for); ``mean_batch`` is the mean number in service at l*
    (over ``slots`` only, else ``None``).
    """

    value: float
    stable: bool
    budgets: tuple[int, ...] | None
    continuous_budgets: tuple[float, ...] | None
    objective: float | None
    accuracy: float | None
    mean_system_time: float | None
    utilization: float | None
    p95_system_time: float | None
    mean_batch: float | None = None

    @property
    def total_budget(self) -> float | None:
        """sum_k l*_k: all thinking tokens of one query of each type."""
        return None if self.continuous_budgets is None else float(sum(self.continuous_budgets))


@dataclass(frozen=True)
class Sweep:
    """A sweep of ``parameter`` over ``points``; ``names`` are the task names.

    ``saturation_rate`` is the rate from which even zero budgets are unstable
    (1 / E[S(0)]; infinite when every t0 is 0).
    """

    parameter: str
    names: tuple[str, ...]
    points: tuple[SweepPoint, ...]
    saturation_rate: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (the schema of ``thinkq sweep --json``): each point's
        per-task figures are a list of objects with ``name`` (``None`` where unstable)."""
        return {
            "parameter": self.parameter,
            "saturation_rate": self.saturation_rate,
            "points": [
                {
                    self.parameter: p.value,
                    "stable": p.stable,
                    "objective": p.objective,
                    "accuracy": p.accuracy,
                    "mean_system_time": p.mean_system_time,
                    "utilization": p.utilization,
                    "p95_system_time": p.p95_system_time,
                    **({"mean_batch": p.mean_batch} if self.parameter == "slots" else {}),
                    "tasks": None
                    if p.budgets is None or p.continuous_budgets is None
                    else [
                        {"name": name, "budget": budget, "continuous_budget": continuous}
                        for name, budget, continuous in zip(
                            self.names, p.budgets, p.continuous_budgets, strict=True
                        )
                    ],
                }
                for p in self.points
            ],
        }


def sweep(
    profile: Profile,
    *,
    over: Literal["rate", "alpha", "slots"],
    start: float,
    stop: float,
    points: int = 20,
    queries: int | None = 20_000,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Sweep:
    """Solve ``profile`` at ``points`` values of ``over`` from ``start`` to ``stop``.

    Values are evenly spaced (geometrically when the range spans more than a factor
    of 20 and both ends are positive); over ``slots`` they are the powers of two from
    ``start`` to ``stop`` (and ``stop`` itself; ``points`` is ignored), with the
    step-time law of the profile's ``[server]`` table. Each solve is warm-started from the previous
    optimum. With ``queries``, each point is also simulated (seeded) for the p95
    system time; ``queries=None`` skips the simulations. ``progress(done, total)`` is
    called after each point.
    """
    if over not in SWEEP_PARAMETERS:
        raise ValueError(f"over: expected rate, alpha or slots, got {over!r}")
    if not (np.isfinite(start) and np.isfinite(stop) and 0 < start < stop):
        raise ValueError(f"start, stop: expected 0 < start < stop, got {start!r}, {stop!r}")
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ValueError(f"points: expected an integer >= 2, got {points!r}")
    if over == "slots":
        values = np.array(_slots(profile, start, stop), dtype=np.float64)
        points = values.size
    elif stop / start > 20:
        values = np.geomspace(start, stop, points)
    else:
        values = np.linspace(start, stop, points)
    load = float(np.dot(profile.share, profile.t0))  # 0 when every t0 is 0: never saturates
    saturation = 1.0 / load if load > 0 else math.inf
    results: list[SweepPoint] = []
    previous: FloatArray | None = None
    for i, value in enumerate(values.tolist()):
        results.append(_point(profile, over, value, previous, queries, seed))
        budgets = results[-1].continuous_budgets
        previous = None if budgets is None else np.array(budgets)
        if progress is not None:
            progress(i + 1, points)
    return Sweep(
        parameter=over,
        names=profile.names,
        points=tuple(results),
        saturation_rate=saturation,
    )


def _slots(profile: Profile, start: float, stop: float) -> list[int]:
    """B = start, 2 start, 4 start, ... up to ``stop`` (and ``stop``), integers >= 1."""
    if profile.server is None:
        raise ValueError(
            "over: a sweep over slots needs the step-time law tau0 + tau1 n: a [server] "
            "table in the profile"
        )
    if not (float(start).is_integer() and float(stop).is_integer()):
        raise ValueError(f"start, stop: slots are integers, got {start!r}, {stop!r}")
    values, b = [], int(start)
    while b < stop:
        values.append(b)
        b *= 2
    return [*values, int(stop)]


def _at(profile: Profile, over: str, value: float) -> Profile:
    """The profile at one value of the swept parameter (validated: may raise)."""
    if over == "rate":
        return profile.replace(rate=value)
    if over == "alpha":
        return profile.replace(alpha=value)
    law = profile.server
    assert law is not None  # checked by _slots
    steps = tuple(point for point in law.steps if point[0] <= value)
    return profile.with_server(Server(int(value), law.tau0, law.tau1, steps, law.prompt))


def _point(
    profile: Profile,
    over: str,
    value: float,
    previous: FloatArray | None,
    queries: int | None,
    seed: int,
) -> SweepPoint:
    try:
        here = _at(profile, over, value)
    except UnstableLoadError:
        return SweepPoint(value, False, None, None, None, None, None, None, None)
    start = previous
    if start is not None and model.utilization(here, start) >= 1.0:
        start = None
    result = solve(here, start=start)
    l = result.continuous.budgets
    p95 = None
    if queries is not None and result.utilization < 1.0:
        p95 = simulate(here, result.budgets, queries=queries, seed=seed).p95_system_time
    batch = None
    if over == "slots":
        m = model.moments(here, l)
        assert here.server is not None
        batch = delay(here.server, here.rate, m.mean, m.second).batch
    return SweepPoint(
        value=value,
        stable=True,
        budgets=tuple(int(x) for x in result.budgets),
        continuous_budgets=tuple(float(x) for x in l),
        objective=result.continuous_objective,
        accuracy=model.mean_accuracy(here, l),
        mean_system_time=model.system_time(here, l),
        utilization=model.utilization(here, l),
        p95_system_time=p95,
        mean_batch=batch,
    )
