"""What a fleet member needs of the gateway it shares for (:mod:`thinkq.fleet.shared`)."""

from __future__ import annotations

from typing import Protocol

from thinkq.serve.controller import Controller, Plan
from thinkq.serve.estimator import Clock, Estimator
from thinkq.serve.metrics import Metrics
from thinkq.serve.queue import Records
from thinkq.serve.replicas import Replicas
from thinkq.serve.request import Books
from thinkq.serve.status import Shared

__all__ = ["Host"]


class Host(Protocol):
    """The parts of a :class:`thinkq.serve.gateway.Gateway` a member works with."""

    controller: Controller
    estimator: Estimator
    records: Records
    books: Books
    resolve_every: float
    clock: Clock
    metrics: Metrics
    replicas: Replicas
    fleet: Shared | None

    def announce(self, plan: Plan) -> Plan: ...
