"""Capacity planning (issue 16): how many identical replicas carry a rate within an SLO.

* :mod:`~thinkq.plan.capacity`: :func:`plan_capacity`, the model (a random split:
  each replica is the profile's server at rate / c) and the searches;
* :mod:`~thinkq.plan.replica`: one replica at one rate (the SLO-constrained solve,
  and the least-latency budgets that reach an accuracy floor);
* :mod:`~thinkq.plan.result`: :class:`CapacityPlan` and :class:`ReplicaRow`;
* :mod:`~thinkq.plan.figure`: the plan drawn (imported on demand: it needs matplotlib).
"""

from thinkq.plan.capacity import MAX_REPLICAS, RATE_RTOL, plan_capacity
from thinkq.plan.replica import Replica
from thinkq.plan.result import ROUTING, CapacityPlan, ReplicaRow

__all__ = [
    "MAX_REPLICAS",
    "RATE_RTOL",
    "ROUTING",
    "CapacityPlan",
    "Replica",
    "ReplicaRow",
    "plan_capacity",
]
