"""What ``GET /thinkq/state`` returns: the plan in force and what the gateway measures."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thinkq.serve.gateway import Gateway

__all__ = ["state"]


def state(gateway: Gateway) -> dict[str, Any]:
    """What ``GET /thinkq/state`` returns (non-finite numbers as ``None``).

    ``rate_estimate`` and ``shares_estimate`` are the estimates the budgets in
    force were solved for (at the last re-solve).
    """
    plan, names = gateway.controller.plan, gateway.profile.names
    measured = gateway.records.mean_system_time()
    predicted = plan.predicted_mean_system_time
    return {
        "model": gateway.server.model,
        "mode": gateway.mode,
        "budgets": dict(zip(names, plan.budgets, strict=True)),
        "rate_estimate": plan.rate,
        "shares_estimate": dict(zip(names, plan.shares, strict=True)),
        "utilization": plan.utilization,
        "predicted_mean_system_time": predicted if math.isfinite(predicted) else None,
        "measured_mean_system_time": measured,
        "overloaded": plan.overloaded,
        "latency": {
            name: {"t0": t0, "c": c} for name, t0, c in zip(names, plan.t0, plan.c, strict=True)
        },
        "refit": gateway.refit is not None,
        "waiting": gateway.queue.waiting,
        "in_service": gateway.queue.busy,
        "concurrency": gateway.queue.concurrency,
        "max_queue": gateway.queue.max_queue,
        "window": gateway.estimator.window,
        "resolve_every": gateway.resolve_every,
        "solves": gateway.controller.solves,
    }
