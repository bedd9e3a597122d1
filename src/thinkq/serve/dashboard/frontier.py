"""The accuracy-latency frontier at the current load, computed off the event loop.

:func:`thinkq.slo.frontier` at the operating point of the plan in force (the
estimated rate and shares, the latency lines solved with) traces accuracy against
mean and p95 system time over alpha: :data:`POINTS` points, about a second at 10,000
task types. :class:`FrontierCache` computes it in a worker thread
(:func:`asyncio.to_thread`) only when the page asks for it and the load has moved
(:class:`FrontierCache` says when), and answers with the last one it has meanwhile:
the request path and the event loop never wait for it. The points carry no budgets
(10,000 numbers each); the operating point is the plan's own budgets.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from thinkq import model
from thinkq._json import finite_number
from thinkq.errors import ThinkqError
from thinkq.profile import Profile
from thinkq.serve.controller import Plan
from thinkq.serve.estimator import Clock, Estimate
from thinkq.serve.slo import GATEWAY_QUERIES
from thinkq.slo import frontier
from thinkq.slo.times import tails

__all__ = [
    "CPU_SHARE",
    "MAX_AGE",
    "MIN_INTERVAL",
    "POINTS",
    "RATE_CHANGE",
    "FrontierCache",
    "traced",
]

#: Points of the trace.
POINTS = 12
#: Least seconds between two computations.
MIN_INTERVAL = 10.0
#: Relative change of the estimated rate that calls for a new trace.
RATE_CHANGE = 0.05
#: Seconds after which a trace is redone anyway (the shares may have drifted).
MAX_AGE = 60.0
#: The largest share of one core the traces may take (the wait after a trace that
#: took d seconds is at least d / CPU_SHARE).
CPU_SHARE = 0.1


def traced(point: Profile, plan: Plan) -> dict[str, Any]:
    """The frontier of ``point`` (the plan's operating point) with ``plan`` on it."""
    trace = frontier(point, points=POINTS, times=tails(queries=GATEWAY_QUERIES))
    return {
        "rate": plan.rate,
        "percentile": trace.percentile,
        "stop": trace.stop,
        "points": [
            {
                "alpha": p.alpha,
                "accuracy": p.accuracy,
                "mean_system_time": finite_number(p.mean_system_time),
                "percentile_system_time": finite_number(p.percentile_time),
                "utilization": p.utilization,
            }
            for p in trace.points
        ],
        "operating_point": {
            "accuracy": model.mean_accuracy(point, np.asarray(plan.budgets)),
            "mean_system_time": finite_number(plan.predicted_mean_system_time),
            "utilization": plan.utilization,
        },
    }


class FrontierCache:
    """The last frontier traced, and at most one computation under way.

    A new trace is due when the plan in force moved away from the traced one (other
    budgets, the overload state, the rate by more than :data:`RATE_CHANGE`, or the
    trace older than :data:`MAX_AGE` seconds), at least :data:`MIN_INTERVAL` seconds
    after the last one started, and late enough that the worker uses at most
    :data:`CPU_SHARE` of a core.

    Parameters
    ----------
    at:
        The operating point of an estimate (:meth:`Controller.at`); raises
        :class:`~thinkq.errors.UnstableLoadError` when even zero budgets are unstable.
    clock:
        Monotonic seconds.
    """

    def __init__(self, at: Callable[[Estimate], Profile], *, clock: Clock) -> None:
        self.at, self.clock = at, clock
        self.plan: Plan | None = None  # the plan of the last computation started
        self.value: dict[str, Any] | None = None
        self.error: str | None = None
        self.started, self.took = -math.inf, 0.0
        self.task: asyncio.Task[None] | None = None

    def _moved(self, plan: Plan) -> bool:
        """Whether ``plan`` is far enough from the traced plan to trace again."""
        old = self.plan
        if old is None or plan is old:
            return old is None
        return (
            plan.overloaded != old.overloaded
            or abs(plan.rate - old.rate) > RATE_CHANGE * old.rate
            or self.clock() - self.started >= MAX_AGE
            or plan.budgets != old.budgets
        )

    def get(self, plan: Plan) -> dict[str, Any] | None:
        """The frontier for the plan in force if known, else the last one (``None``
        before the first); starts computing it when it is due (see the class)."""
        running = self.task is not None and not self.task.done()
        moved = self._moved(plan)
        wait = max(MIN_INTERVAL, self.took / CPU_SHARE)
        if not running and moved and self.clock() - self.started >= wait:
            self.plan, self.started = plan, self.clock()
            self.task = asyncio.get_running_loop().create_task(self._compute(plan))
            running, moved = True, False
        if self.value is None:
            return None
        return self.value | {"current": not (running or moved)}

    async def _compute(self, plan: Plan) -> None:
        if plan.overloaded:
            self.value, self.error = None, "overloaded: even zero budgets are unstable"
            return
        estimate = Estimate(plan.rate, np.asarray(plan.shares), 0)
        start = time.perf_counter()
        try:
            point = self.at(estimate)
            self.value = await asyncio.to_thread(traced, point, plan)
            self.error = None
        except (ThinkqError, ValueError, ArithmeticError) as exc:  # e.g. unstable meanwhile
            self.value, self.error = None, f"the frontier could not be traced: {exc}"
        self.took = time.perf_counter() - start
