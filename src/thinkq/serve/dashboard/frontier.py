"""The accuracy-latency frontier at the current load, computed off the event loop.

:func:`thinkq.slo.frontier` at the operating point of the plan in force (the
estimated rate and shares, the latency lines solved with) traces accuracy against
mean and p95 system time over alpha: :data:`POINTS` points, about a second at 10,000
task types. :class:`FrontierCache` computes it in a worker thread
(:func:`asyncio.to_thread`) only when the page asks for it, once per plan and at most
once per :data:`MIN_INTERVAL` seconds, and answers with the last one it has
meanwhile: the request path and the event loop never wait for it. The points carry
no budgets (10,000 numbers each); the operating point is the plan's own budgets.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from thinkq import model
from thinkq.errors import ThinkqError
from thinkq.profile import Profile
from thinkq.serve.controller import Plan
from thinkq.serve.estimator import Clock, Estimate
from thinkq.serve.slo import GATEWAY_QUERIES
from thinkq.slo import frontier
from thinkq.slo.times import tails

__all__ = ["MIN_INTERVAL", "POINTS", "FrontierCache", "traced"]

#: Points of the trace.
POINTS = 12
#: Least seconds between two computations.
MIN_INTERVAL = 10.0


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


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
                "mean_system_time": _finite(p.mean_system_time),
                "percentile_system_time": _finite(p.percentile_time),
                "utilization": p.utilization,
            }
            for p in trace.points
        ],
        "operating_point": {
            "accuracy": model.mean_accuracy(point, np.asarray(plan.budgets)),
            "mean_system_time": _finite(plan.predicted_mean_system_time),
            "utilization": plan.utilization,
        },
    }


class FrontierCache:
    """The last frontier traced, and at most one computation under way.

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
        self.started = -math.inf
        self.task: asyncio.Task[None] | None = None

    def get(self, plan: Plan) -> dict[str, Any] | None:
        """The frontier for the plan in force if known, else the last one (``None``
        before the first); starts computing it when it is due (see the module)."""
        running = self.task is not None and not self.task.done()
        due = plan is not self.plan and self.clock() - self.started >= MIN_INTERVAL
        if not running and due:
            self.plan, self.started = plan, self.clock()
            self.task = asyncio.get_running_loop().create_task(self._compute(plan))
        if self.value is None:
            return None
        return self.value | {"current": self.plan is plan and not running}

    async def _compute(self, plan: Plan) -> None:
        if plan.overloaded:
            self.value, self.error = None, "overloaded: even zero budgets are unstable"
            return
        estimate = Estimate(plan.rate, np.asarray(plan.shares), 0)
        try:
            point = self.at(estimate)
            self.value = await asyncio.to_thread(traced, point, plan)
            self.error = None
        except (ThinkqError, ValueError, ArithmeticError) as exc:  # e.g. unstable meanwhile
            self.value, self.error = None, f"the frontier could not be traced: {exc}"
