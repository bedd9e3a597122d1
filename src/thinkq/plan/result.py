"""The result of capacity planning (:func:`thinkq.plan.plan_capacity`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thinkq._typing import IntArray
from thinkq.plan.replica import Replica
from thinkq.slo.objectives import Objective

__all__ = ["ROUTING", "CapacityPlan", "ReplicaRow"]

#: The routing model, in words.
ROUTING = (
    "random split: each request goes to one of c identical replicas uniformly at "
    "random, so each replica is the profile's server at rate / c (a Poisson stream split "
    "at random is c independent Poisson streams); join-the-shortest-queue needs at "
    "most as many replicas, so the count is conservative for a JSQ router"
)


@dataclass(frozen=True)
class ReplicaRow:
    """One replica count: what each replica does at rate / replicas.

    Attributes
    ----------
    replicas:
        c, the number of identical replicas.
    replica:
        One replica at rate / c: the most accurate budgets meeting the objectives.
    utilization:
        rho at those budgets (the offered work over C(B) on a batched server); at
        least 1 where even zero budgets are unstable.
    mean, p95, p99:
        The system time of one replica at those budgets, seconds (``inf``: unstable).
    lean_budgets:
        The least-latency budgets on the alpha path whose accuracy reaches the floor
        (zero budgets without ``min_accuracy``); ``None`` if none reach it here.
    lean_accuracy, lean_achieved:
        Their accuracy and each objective's value there (seconds): the headroom at
        the floor; where they miss a target, no budgets on the path carry the load.
    """

    replicas: int
    replica: Replica
    utilization: float
    mean: float
    p95: float
    p99: float
    lean_budgets: IntArray | None
    lean_accuracy: float | None
    lean_achieved: tuple[float, ...] | None

    @property
    def feasible(self) -> bool:
        return self.replica.feasible

    def to_dict(self, names: tuple[str, ...]) -> dict[str, Any]:
        r = self.replica
        lean = self.lean_budgets
        return {
            "replicas": self.replicas,
            "rate_per_replica": r.rate,
            "feasible": r.feasible,
            "reason": r.reason,
            "budgets": dict(zip(names, r.budgets.tolist(), strict=True)),
            "accuracy": r.accuracy,
            "achieved": list(r.achieved),
            "shadow_price": r.shadow_price,
            "utilization": self.utilization,
            "mean_system_time": self.mean,
            "p95_system_time": self.p95,
            "p99_system_time": self.p99,
            "lean": None
            if lean is None
            else {
                "budgets": dict(zip(names, lean.tolist(), strict=True)),
                "accuracy": self.lean_accuracy,
                "achieved": list(self.lean_achieved or ()),
            },
        }


@dataclass(frozen=True)
class CapacityPlan:
    """How many identical replicas carry ``rate`` within the objectives.

    Attributes
    ----------
    rate:
        The total arrival rate to carry, queries per second.
    objectives:
        The latency objectives (all must hold on every replica).
    min_accuracy:
        The accuracy floor (a fraction), or ``None``.
    replicas:
        The smallest feasible replica count.
    rows:
        Replica counts around the answer (``replicas - 2`` to ``replicas + 2``, those
        >= 1), in order.
    max_rate:
        The largest rate one replica carries within the objectives (and the floor),
        queries per second: feasible itself, and within ``rate_rtol`` of a rate that
        is not (``inf`` when no rate is too much: zero budgets that take no time).
    capacity:
        One replica at :attr:`max_rate`.
    routing:
        The routing model, in words (:data:`ROUTING`).
    names:
        The task types.
    evaluations:
        Distinct per-replica rates at which the SLO-constrained solve ran.
    percentile_method:
        How percentiles were computed (``None`` without percentile objectives).
    """

    rate: float
    objectives: tuple[Objective, ...]
    min_accuracy: float | None
    replicas: int
    rows: tuple[ReplicaRow, ...]
    max_rate: float
    capacity: Replica
    routing: str
    names: tuple[str, ...]
    evaluations: int
    percentile_method: str | None

    @property
    def answer(self) -> ReplicaRow:
        """The row of the planned replica count."""
        return next(row for row in self.rows if row.replicas == self.replicas)

    @property
    def exact(self) -> bool:
        """Whether every objective is an overall mean (the SLO search is exact)."""
        return all(o.exact for o in self.objectives)

    def to_dict(self) -> dict[str, Any]:
        """The object of ``thinkq plan --json``."""
        return {
            "rate": self.rate,
            "objectives": [
                {"objective": str(o), "statistic": o.statistic, "task": o.task, "target": o.target}
                for o in self.objectives
            ],
            "min_accuracy": self.min_accuracy,
            "replicas": self.replicas,
            "max_rate_per_replica": self.max_rate,
            "capacity": {
                "rate": self.capacity.rate,
                "budgets": dict(zip(self.names, self.capacity.budgets.tolist(), strict=True)),
                "accuracy": self.capacity.accuracy,
                "achieved": list(self.capacity.achieved),
                "shadow_price": self.capacity.shadow_price,
            },
            "routing": self.routing,
            "exact": self.exact,
            "percentile_method": self.percentile_method,
            "evaluations": self.evaluations,
            "rows": [row.to_dict(self.names) for row in self.rows],
        }
