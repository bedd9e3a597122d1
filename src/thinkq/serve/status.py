"""``GET /thinkq/state``: what the gateway is doing, as one JSON object."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any, Protocol

from thinkq._json import finite_number
from thinkq.measure.server import Server
from thinkq.profile import Profile
from thinkq.serve.admission import Admission
from thinkq.serve.controller import Controller, Plan
from thinkq.serve.estimator import Estimator
from thinkq.serve.queue import Queue, Records
from thinkq.serve.refit import LatencyRefit
from thinkq.serve.replicas import Replicas
from thinkq.serve.slo import measured

__all__ = ["Gateway", "Shared", "announce", "figures", "state"]


class Shared(Protocol):
    """The shared state of several gateways (:class:`thinkq.fleet.Member`)."""

    def status(self) -> dict[str, Any]: ...

    async def run(self) -> None: ...


class Gateway(Protocol):
    """The parts of :class:`thinkq.serve.gateway.Gateway` the state shows."""

    profile: Profile
    server: Server

    @property
    def mode(self) -> str: ...

    controller: Controller
    records: Records
    refit: LatencyRefit | None
    queue: Queue
    estimator: Estimator
    resolve_every: float
    admission: Admission
    replicas: Replicas
    fleet: Shared | None


def _server(plan: Plan, measured_batch: float | None, replicas: int) -> dict[str, Any] | None:
    """The server model in force: its table, capacity, and predicted against measured batch.

    ``None`` for a profile without a ``[server]`` table (the paper's M/G/1 model) and
    one replica; ``replicas`` > 1 up make it the fleet's M/G/c (``docs/fleet.md``).
    """
    server = plan.server
    if server is None:
        return None
    name = "M/G/1 (Pollaczek-Khinchine)" if server.single else "batched"
    return {
        "model": f"M/G/{replicas} ({replicas} replicas)" if replicas > 1 else name,
        "slots": server.slots,
        "tau0": server.tau0,
        "tau1": server.tau1,
        "steps": [list(point) for point in server.steps] or None,
        "capacity": server.max_capacity,
        "prompt": server.prompt,
        "predicted_mean_batch": finite_number(plan.mean_batch),
        "measured_mean_batch": measured_batch,
        "predicted_step_time": finite_number(plan.step_time),
        "predicted_mean_waiting_time": finite_number(plan.predicted_mean_waiting_time),
    }


def _slo(plan: Plan, records: Records) -> dict[str, Any] | None:
    """The objectives in force: targets, predicted and measured values, admission."""
    slo = plan.slo
    if slo is None:
        return None
    seen = measured(slo.objectives, records.recent())
    return {
        "objectives": [
            {
                "objective": str(o),
                "statistic": o.statistic,
                "task": o.task,
                "target": o.target,
                "predicted": finite_number(p),
                "measured": m,
            }
            for o, p, m in zip(slo.objectives, slo.predicted, seen, strict=True)
        ],
        "shadow_price": slo.shadow_price,
        "meetable": slo.meetable,
        "admitted_fraction": slo.admitted,
        "max_rate": slo.max_rate,
    }


def state(gateway: Gateway) -> dict[str, Any]:
    """What ``GET /thinkq/state`` returns (non-finite numbers as ``None``).

    ``rate_estimate`` and ``shares_estimate`` are the estimates the budgets in
    force were solved for (at the last re-solve). ``replicas`` lists the upstreams
    (url, whether in rotation, requests in flight, served and failed).
    """
    plan, names = gateway.controller.plan, gateway.profile.names
    per_type = {
        "budgets": dict(zip(names, plan.budgets, strict=True)),
        "shares_estimate": dict(zip(names, plan.shares, strict=True)),
        "latency": {
            name: {"t0": t0, "c": c} for name, t0, c in zip(names, plan.t0, plan.c, strict=True)
        },
    }
    return {"model": gateway.server.model, "mode": gateway.mode} | per_type | figures(gateway)


def figures(gateway: Gateway) -> dict[str, Any]:
    """The part of :func:`state` that does not grow with the task types (the dashboard's)."""
    plan = gateway.controller.plan
    predicted = plan.predicted_mean_system_time
    return {
        "rate_estimate": plan.rate,
        "utilization": plan.utilization,
        "predicted_mean_system_time": predicted if math.isfinite(predicted) else None,
        "measured_mean_system_time": gateway.records.mean_system_time(),
        "overloaded": plan.overloaded,
        "refit": gateway.refit is not None,
        "waiting": gateway.queue.waiting,
        "in_service": gateway.queue.busy,
        "concurrency": gateway.queue.concurrency,
        "max_queue": gateway.queue.max_queue,
        "window": gateway.estimator.window,
        "resolve_every": gateway.resolve_every,
        "solves": gateway.controller.solves,
        "predicted_wait": gateway.admission.predicted_wait(),
        "retries": gateway.admission.retried,
        "load_changes": gateway.estimator.changes,
        "server": _server(plan, gateway.records.mean_batch(), gateway.controller.replicas),
        "slo": _slo(plan, gateway.records),
        "replicas": gateway.replicas.rows(),
        **({} if gateway.fleet is None else {"state": gateway.fleet.status()}),
    }


def announce(plan: Plan, names: Sequence[str], log: logging.Logger) -> None:
    """Log what a new plan changed: its budgets, or objectives it cannot meet."""
    if plan.switched:
        budgets = ", ".join(f"{n}={b}" for n, b in zip(names, plan.budgets, strict=True))
        log.info("budgets switched at rate %.4g/s: %s", plan.rate, budgets)
    if plan.slo is not None and not plan.slo.meetable:
        log.warning(
            "%s cannot be met at %.4g/s even with zero budgets: admitting %.0f%% of "
            "requests (up to %.4g/s)",
            ", ".join(str(o) for o in plan.slo.objectives), plan.rate,
            100 * plan.slo.admitted, plan.slo.max_rate or 0.0,
        )  # fmt: skip
