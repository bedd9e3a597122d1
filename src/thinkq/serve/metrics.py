"""Prometheus metrics of the gateway, in a registry of its own (no global state).

=========================================  =========  =================================
metric                                     type       labels
=========================================  =========  =================================
``thinkq_requests_total``                  counter    ``task``, ``outcome``
``thinkq_wait_seconds``                    histogram  ``task``
``thinkq_service_seconds``                 histogram  ``task``
``thinkq_thinking_tokens_total``           counter    ``task``
``thinkq_budget_tokens``                   gauge      ``task``
``thinkq_rate_estimate``                   gauge      (queries per second)
``thinkq_utilization``                     gauge      (lambda E[S])
``thinkq_predicted_mean_system_seconds``   gauge      (P-K, eq. 6)
``thinkq_measured_mean_system_seconds``    gauge      (over the window)
``thinkq_queue_waiting``                   gauge      (requests waiting)
``thinkq_overloaded``                      gauge      (1 when even zero budgets are unstable)
``thinkq_predicted_mean_batch``            gauge      (mean number in service)
``thinkq_measured_mean_batch``             gauge      (over the window)
``thinkq_slo_target_seconds``              gauge      ``objective`` (with ``--slo``)
``thinkq_slo_predicted_seconds``           gauge      ``objective``
``thinkq_slo_measured_seconds``            gauge      ``objective`` (over the window)
``thinkq_slo_admitted_fraction``           gauge      (1 unless an objective is unmeetable)
=========================================  =========  =================================

Outcomes: ``ok``, ``rejected`` (503), ``upstream_error`` (502), ``bad_request`` (400
or 413), ``disconnected`` (the client left before its reply), ``unauthorized`` (401).
Every request to the two generation endpoints is counted once, under the task
``""`` while its type is unknown. A request that reached the queue is counted from
its record (:meth:`Metrics.record`), held off the request's path as the records
are (:mod:`thinkq.serve.records`) and counted before the next exposition.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from thinkq.serve.controller import Plan
from thinkq.serve.records import Held, Record
from thinkq.serve.slo import SloState

__all__ = ["OUTCOMES", "Metrics"]

OUTCOMES = ("ok", "rejected", "upstream_error", "bad_request", "disconnected", "unauthorized")

#: Histogram buckets (seconds): from a cached reply to a long reasoning run.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300)


class Metrics:
    """The gateway's metrics, with the task names known up front.

    Parameters
    ----------
    tasks:
        The profile's task names (every labelled series starts at zero).
    """

    def __init__(self, tasks: Sequence[str], objectives: Sequence[str] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "thinkq_requests", "Requests by task and outcome.", ["task", "outcome"], registry=r
        )
        self.wait = Histogram(
            "thinkq_wait_seconds", "Time in the queue.", ["task"], buckets=_BUCKETS, registry=r
        )
        self.service = Histogram(
            "thinkq_service_seconds",
            "Time in a slot (upstream).",
            ["task"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.thinking = Counter(
            "thinkq_thinking_tokens", "Thinking tokens generated.", ["task"], registry=r
        )
        self.budget = Gauge("thinkq_budget_tokens", "Budget in force.", ["task"], registry=r)
        self.rate = Gauge("thinkq_rate_estimate", "Estimated arrival rate (1/s).", registry=r)
        self.utilization = Gauge(
            "thinkq_utilization", "lambda E[S] (/ C(B)) at the budgets.", registry=r
        )
        self.predicted = Gauge(
            "thinkq_predicted_mean_system_seconds",
            "Predicted mean system time (P-K, eq. 6, or batched).",
            registry=r,
        )
        self.measured = Gauge(
            "thinkq_measured_mean_system_seconds", "Measured mean system time.", registry=r
        )
        self.waiting = Gauge("thinkq_queue_waiting", "Requests waiting for a slot.", registry=r)
        self.overloaded = Gauge(
            "thinkq_overloaded", "1 when even zero budgets are unstable.", registry=r
        )
        self.predicted_batch = Gauge(
            "thinkq_predicted_mean_batch", "Predicted mean number in service.", registry=r
        )
        self.measured_batch = Gauge(
            "thinkq_measured_mean_batch", "Measured mean number in service.", registry=r
        )
        self._objectives(objectives)
        self.tasks = tuple(tasks)
        # the labelled series of each task, looked up once here, not per request
        self._counts: dict[tuple[str, str], Counter] = {}
        self._served: dict[str, tuple[Counter, Histogram, Histogram, Counter]] = {}
        for task in self.tasks:
            for outcome in OUTCOMES:
                self._counts[task, outcome] = self.requests.labels(task, outcome)
            self._series(task)
        self._held = Held(self._count)  # recorded, not yet counted

    def _objectives(self, objectives: Sequence[str]) -> None:
        """The gauges of the latency objectives (none without ``--slo``)."""
        r, label = self.registry, ["objective"]
        self.objectives = tuple(objectives)
        if not self.objectives:
            return
        self.slo_target = Gauge(
            "thinkq_slo_target_seconds", "Latency objective's bound.", label, registry=r
        )
        self.slo_predicted = Gauge(
            "thinkq_slo_predicted_seconds", "Objective predicted at the budgets.", label, registry=r
        )
        self.slo_measured = Gauge(
            "thinkq_slo_measured_seconds", "Objective measured over the window.", label, registry=r
        )
        self.slo_admitted = Gauge(
            "thinkq_slo_admitted_fraction", "Fraction of requests admitted.", registry=r
        )

    def slo(self, slo: SloState | None, seen: Sequence[float | None]) -> None:
        """Set the objectives' gauges: targets, predicted (``slo``) and measured (``seen``)."""
        if not self.objectives or slo is None:
            return
        for name, o, p, m in zip(self.objectives, slo.objectives, slo.predicted, seen, strict=True):
            self.slo_target.labels(name).set(o.target)
            self.slo_predicted.labels(name).set(p)
            self.slo_measured.labels(name).set(float("nan") if m is None else m)
        self.slo_admitted.set(slo.admitted)

    def _series(self, task: str) -> tuple[Counter, Histogram, Histogram, Counter]:
        """The series a served request of ``task`` updates (created on first use)."""
        series = self._served.get(task)
        if series is None:
            series = self._served[task] = (
                self.requests.labels(task, "ok"), self.wait.labels(task),
                self.service.labels(task), self.thinking.labels(task),
            )  # fmt: skip
        return series

    def outcome(self, task: str, outcome: str) -> None:
        """Count one request of ``task`` that ended with ``outcome``."""
        counter = self._counts.get((task, outcome))
        if counter is None:  # a task outside the profile ("": not typed yet)
            counter = self._counts[task, outcome] = self.requests.labels(task, outcome)
        counter.inc()

    def record(self, record: Record) -> None:
        """Count a request that reached the queue, and observe its times if served: at
        :meth:`settle` (the gateway's idle loop), at the next :meth:`exposition`, or
        once :data:`~thinkq.serve.records.HOLD` are held."""
        self._held.add(record)

    def settle(self) -> None:
        """Count the records held."""
        self._held.settle()

    def _count(self, record: Record) -> None:
        if record.outcome != "ok":
            self.outcome(record.task, record.outcome)
            return
        requests, wait, service, thinking = self._series(record.task)
        requests.inc()
        wait.observe(record.wait)
        service.observe(record.service)
        thinking.inc(record.thinking_tokens)

    def plan(
        self, plan: Plan, *, measured: float | None, waiting: int, batch: float | None = None
    ) -> None:
        """Set the gauges from the plan in force (``batch``: the measured mean batch)."""
        for task, budget in zip(self.tasks, plan.budgets, strict=True):
            self.budget.labels(task).set(budget)
        self.rate.set(plan.rate)
        self.utilization.set(plan.utilization)
        self.predicted.set(plan.predicted_mean_system_time)
        self.measured.set(float("nan") if measured is None else measured)
        self.waiting.set(waiting)
        self.overloaded.set(1.0 if plan.overloaded else 0.0)
        self.predicted_batch.set(plan.mean_batch)
        self.measured_batch.set(float("nan") if batch is None else batch)

    def exposition(self) -> bytes:
        """The metrics in Prometheus's text format."""
        self.settle()
        return generate_latest(self.registry)
