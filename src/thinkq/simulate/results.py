"""What a simulation reports, and the running sums it is computed from.

:class:`Tally` adds up the measured queries block by block: per type (counts and
sums of waits, services and correct answers), per batch (for the batch-means
confidence intervals) and in log-spaced histograms (for percentiles: 256 bins per
doubling overall, 0.27 % relative resolution; 64 per doubling per type, for up to
256 types). :meth:`Tally.simulation` turns the sums into a :class:`Simulation`,
beside the model's figures for the same budgets (Pollaczek-Khinchine, or the batched
law of :mod:`thinkq.batching.delay` on a server with several slots).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from thinkq import model
from thinkq._typing import FloatArray, IntArray
from thinkq.batching.delay import Delay
from thinkq.profile import Profile
from thinkq.simulate.figures import ServerStatistics, model_delay, server_statistics
from thinkq.simulate.queueing import Histogram

__all__ = ["BATCHES", "LEVEL", "ServerStatistics", "Simulation", "Tally", "TaskStatistics"]

#: Batches of the batch-means confidence intervals.
BATCHES = 20
#: Level of the confidence intervals.
LEVEL = 0.95
_FINE = 256  # bins per doubling, overall
_COARSE = 64  # bins per doubling, per type
_PER_TYPE_LIMIT = 256


@dataclass(frozen=True)
class TaskStatistics:
    """Simulated and analytic figures of one query type (times in seconds)."""

    name: str
    budget: float
    queries: int
    mean_waiting_time: float
    mean_system_time: float
    p50_system_time: float | None
    p95_system_time: float | None
    p99_system_time: float | None
    accuracy: float
    analytic_mean_system_time: float
    analytic_accuracy: float


@dataclass(frozen=True)
class Simulation:
    """The outcome of :func:`simulate` (times in seconds).

    ``objective`` is J (eq. 7) as realised: alpha times the realised accuracy minus
    the simulated mean system time. ``*_ci`` are two-sided confidence intervals
    (level ``ci_level``) from batch means; ``analytic_*`` are the model's figures for
    the same budgets and service distributions: Pollaczek-Khinchine (eqs. 3-7), or the
    batched law on a server with several slots, where ``utilization`` is the offered
    work over the slots' capacity C(B) as in :func:`thinkq.model.utilization`.
    ``server`` is set when the profile has a ``[server]`` table.
    """

    queries: int
    warmup: int
    seed: int | None
    mean_waiting_time: float
    mean_system_time: float
    p50_waiting_time: float
    p95_waiting_time: float
    p99_waiting_time: float
    p50_system_time: float
    p95_system_time: float
    p99_system_time: float
    utilization: float
    accuracy: float
    ci_level: float
    mean_waiting_time_ci: tuple[float, float]
    mean_system_time_ci: tuple[float, float]
    accuracy_ci: tuple[float, float]
    objective: float
    objective_ci: tuple[float, float]
    analytic_mean_waiting_time: float
    analytic_mean_system_time: float
    analytic_utilization: float
    analytic_accuracy: float
    analytic_objective: float
    tasks: tuple[TaskStatistics, ...]
    server: ServerStatistics | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (the schema of ``thinkq simulate --json``; ``server``
        only when there is one)."""
        data = asdict(self)
        if data["server"] is None:
            del data["server"]
        for key in ("mean_waiting_time_ci", "mean_system_time_ci", "accuracy_ci", "objective_ci"):
            data[key] = list(data[key])
        return data


class Tally:
    """Running sums over the measured queries (the warm-up is never added)."""

    def __init__(self, types: int) -> None:
        self.count = np.zeros(types, dtype=np.int64)
        self.sum_wait = np.zeros(types)
        self.sum_service = np.zeros(types)
        self.sum_correct = np.zeros(types)
        self.batch_queries = np.zeros(BATCHES, dtype=np.int64)
        self.batch_wait = np.zeros(BATCHES)
        self.batch_system = np.zeros(BATCHES)
        self.batch_correct = np.zeros(BATCHES)
        self.busy = self.span = 0.0  # solo work and time over the measured arrivals
        # batched: integrals of n in service, of n > 0 and of the step time while n > 0
        self.area = self.busy_time = self.step_time = self.decode_time = 0.0
        self.overall_wait, self.overall_system = Histogram(_FINE), Histogram(_FINE)
        self.type_system = Histogram(_COARSE, types) if types <= _PER_TYPE_LIMIT else None

    def add(
        self,
        batch: int,
        types: IntArray,
        gaps: FloatArray,
        wait: FloatArray,
        service: FloatArray,
        *,
        counts: IntArray,
        correct: IntArray,
        service_sums: FloatArray,
    ) -> None:
        """Add one block of queries of ``batch``: their types, interarrival gaps, waits
        and services (s), and per type the queries, correct answers and summed service."""
        self.arrived(batch, gaps, float(service.sum()), counts=counts, correct=correct)
        self.served(batch, types, wait, wait + service, service_sums=service_sums)

    def arrived(
        self, batch: int, gaps: FloatArray, work: float, *, counts: IntArray, correct: IntArray
    ) -> None:
        """Add the arrivals of one block of ``batch``: their gaps, solo ``work`` (s) and
        per type the queries and correct answers."""
        self.count += counts
        self.sum_correct += correct
        self.busy += work
        self.span += float(gaps.sum())
        self.batch_queries[batch] += gaps.size
        self.batch_correct[batch] += float(correct.sum())

    def served(
        self,
        batch: int,
        types: IntArray,
        wait: FloatArray,
        system: FloatArray,
        *,
        service_sums: FloatArray,
    ) -> None:
        """Add the waits and system times (s) of queries of ``batch`` that were served,
        and per type their summed time in service."""
        self.sum_wait += np.bincount(types, weights=wait, minlength=self.count.size)
        self.sum_service += service_sums
        self.batch_wait[batch] += float(wait.sum())
        self.batch_system[batch] += float(system.sum())
        self.overall_wait.add(wait)
        self.overall_system.add(system)
        if self.type_system is not None:
            self.type_system.add(system, types)

    def interval(self, batch_sums: FloatArray) -> tuple[float, float]:
        """The batch-means confidence interval (level :data:`LEVEL`) of a mean."""
        means = batch_sums / self.batch_queries
        half = stats.t.ppf(0.5 + LEVEL / 2, BATCHES - 1) * means.std(ddof=1) / math.sqrt(BATCHES)
        centre = float(batch_sums.sum() / self.batch_queries.sum())
        return (centre - float(half), centre + float(half))

    def tasks(
        self, profile: Profile, budgets: FloatArray, wait_pk: float, slowdown: float = 1.0
    ) -> tuple[TaskStatistics, ...]:
        """Per type: the simulated figures beside the analytic ones: the model's mean
        wait ``wait_pk`` plus the solo service time slowed by ``slowdown`` (1 for P-K)."""
        service_of = profile.c * budgets + profile.t0
        correct_of = model.accuracy(profile, budgets)
        count, histogram = self.count, self.type_system
        sum_system = self.sum_wait + self.sum_service
        return tuple(
            TaskStatistics(
                name=name,
                budget=float(budgets[k]),
                queries=int(count[k]),
                mean_waiting_time=float(self.sum_wait[k] / count[k]) if count[k] else math.nan,
                mean_system_time=float(sum_system[k] / count[k]) if count[k] else math.nan,
                p50_system_time=histogram.quantile(0.50, k) if histogram else None,
                p95_system_time=histogram.quantile(0.95, k) if histogram else None,
                p99_system_time=histogram.quantile(0.99, k) if histogram else None,
                accuracy=float(self.sum_correct[k] / count[k]) if count[k] else math.nan,
                analytic_mean_system_time=wait_pk + slowdown * float(service_of[k]),
                analytic_accuracy=float(correct_of[k]),
            )
            for k, name in enumerate(profile.names)
        )

    def simulation(
        self,
        profile: Profile,
        budgets: FloatArray,
        *,
        analytic: Profile,
        warmup: int,
        seed: int | None,
    ) -> Simulation:
        """The outcome; ``analytic`` is the profile with the simulated service variances."""
        queries = int(self.batch_queries.sum())
        sum_system = self.sum_wait + self.sum_service
        wait_pk = model.waiting_time(analytic, budgets)
        figures = model_delay(analytic, budgets)
        batched = analytic.batched
        utilization = self.busy / self.span
        slowdown = 1.0
        if batched is not None and figures is not None:  # the model's: work over capacity
            utilization = (
                batched.utilization(queries / self.span, self.busy / queries)
                if batched.prompt
                else utilization / batched.max_capacity
            )
            slowdown = figures.slowdown
        overall_wait, overall_system = self.overall_wait, self.overall_system
        return Simulation(
            queries=queries,
            warmup=warmup,
            seed=seed,
            mean_waiting_time=float(self.sum_wait.sum() / queries),
            mean_system_time=float(sum_system.sum() / queries),
            p50_waiting_time=overall_wait.quantile(0.50),
            p95_waiting_time=overall_wait.quantile(0.95),
            p99_waiting_time=overall_wait.quantile(0.99),
            p50_system_time=overall_system.quantile(0.50),
            p95_system_time=overall_system.quantile(0.95),
            p99_system_time=overall_system.quantile(0.99),
            utilization=utilization,
            accuracy=float(self.sum_correct.sum() / queries),
            ci_level=LEVEL,
            mean_waiting_time_ci=self.interval(self.batch_wait),
            mean_system_time_ci=self.interval(self.batch_system),
            accuracy_ci=self.interval(self.batch_correct),
            objective=float(
                profile.alpha * self.sum_correct.sum() / queries - sum_system.sum() / queries
            ),
            objective_ci=self.interval(profile.alpha * self.batch_correct - self.batch_system),
            analytic_mean_waiting_time=wait_pk,
            analytic_mean_system_time=model.system_time(analytic, budgets),
            analytic_utilization=model.utilization(analytic, budgets),
            analytic_accuracy=model.mean_accuracy(profile, budgets),
            analytic_objective=model.objective(analytic, budgets),
            tasks=self.tasks(profile, budgets, wait_pk, slowdown),
            server=None if figures is None else self.server_statistics(analytic, figures),
        )

    def server_statistics(self, profile: Profile, figures: Delay) -> ServerStatistics:
        """The server's simulated mean batch and step time beside the model's ``figures``."""
        assert profile.server is not None
        times = {"work": self.busy, "span": self.span, "area": self.area, "busy": self.busy_time,
                 "steps": self.step_time, "decode": self.decode_time}  # fmt: skip
        return server_statistics(profile.server, figures, **times)
