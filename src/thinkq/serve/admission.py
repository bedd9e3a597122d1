"""Admission: whether the server can take a request now, and what the estimator counts.

The rule looks at the server as it is, not only at the estimated rate. A request of
any type is admitted unless

* the queue is full (``max_queue`` waiting: :class:`~thinkq.errors.QueueFullError`), or
* the work ahead of it would keep it waiting longer than the bound
  (:class:`~thinkq.errors.OverloadedError`): ``max_wait`` seconds (at least one mean
  service time), or, under a stable plan, :data:`WAIT_FACTOR` times the plan's
  predicted mean wait (P-K, eq. 5, or the batched model's) if that is longer.

The predicted wait is the work ahead over the slots: a new request starts after
``waiting + busy - concurrency + 1`` departures (none when a slot is free), each
taking E[S] / ``concurrency`` on average, E[S] at the budgets in force
(:attr:`~thinkq.serve.controller.Plan.mean_service`); on a batched server (a
``[server]`` table) E[S] / C(B), B busy slots doing C(B) solo-seconds of work a
second. So a server with a free slot admits the next request at once whatever the
estimate says; under an *overloaded*
plan (even zero budgets unstable at the estimated offered load, eq. 4) it keeps
about ``max_wait`` seconds of work queued, busy but not swamped; a stable queue at
the plan's load almost never waits ten times its mean, so what the bound refuses is
a backlog the plan does not predict (the left-overs of a burst, which wait for the
budgets in force when they start); and admission resumes as soon as the backlog
falls under the bound.

Under latency objectives (``--slo``) a plan whose zero budgets miss an objective at
the estimated load admits only its fraction of the offered requests (a credit of that
fraction per arrival, one admission per whole credit); the
others get :class:`~thinkq.errors.OverloadedError` naming the objective
(:mod:`thinkq.serve.slo`).

A backlog over the bound is overload whatever the estimate says, so a request that
starts while the predicted wait behind it exceeds the bound gets zero budgets
(:meth:`Admission.budget`), as under an overloaded plan: the left-overs of a burst
drain at the server's fastest instead of at the budgets the re-solve brought back
for the normal load. All of it is O(1) per request.

What the estimator counts: the *offered* load, each request once at its first try.
A refused request's fingerprint (its type and the hash of its last user message or
prompt) is kept for ``memory`` seconds (at most ``capacity`` of them, oldest
dropped); a request with a kept fingerprint is a retry and is not counted again,
admitted or not. Refused first tries do count: they are load the clients offered.
Two clients sending the same text of the same type within ``memory`` seconds of a
refusal count once; that error only lowers the estimate during an overload.
"""

from __future__ import annotations

import math

from thinkq.errors import OverloadedError, QueueFullError
from thinkq.serve.controller import Controller
from thinkq.serve.estimator import Clock, Estimator
from thinkq.serve.queue import Queue
from thinkq.serve.slo import SloState

__all__ = ["WAIT_FACTOR", "Admission", "Retries"]

#: Under a stable plan, waits up to this many times the predicted mean are admitted.
WAIT_FACTOR = 10.0


class Retries:
    """Fingerprints of recently refused requests, oldest first.

    Parameters
    ----------
    memory:
        Seconds a refusal is remembered.
    clock:
        The gateway's monotonic clock, seconds.
    capacity:
        Most fingerprints kept (the oldest go first).
    """

    def __init__(self, *, memory: float, clock: Clock, capacity: int = 1 << 16) -> None:
        self.memory = memory
        self.clock = clock
        self.capacity = capacity
        self._refused: dict[int, float] = {}  # insertion order is refusal order

    def __len__(self) -> int:
        return len(self._refused)

    def retry(self, key: int) -> bool:
        """Whether ``key`` was refused within ``memory`` seconds (it is forgotten now)."""
        when = self._refused.pop(key, None)
        return when is not None and when >= self.clock() - self.memory

    def refused(self, key: int) -> None:
        """Remember that ``key`` was refused now."""
        now = self.clock()
        refused = self._refused
        refused[key] = now
        horizon = now - self.memory
        while refused:
            oldest = next(iter(refused))
            if refused[oldest] >= horizon and len(refused) <= self.capacity:
                break
            del refused[oldest]


class Admission:
    """Admits or refuses arrivals (see the module docstring) and counts them.

    Parameters
    ----------
    controller:
        Publishes the plan in force (its budgets' E[S], whether it is overloaded).
    estimator:
        Counts the offered arrivals.
    queue:
        The gateway's queue (waiting, busy, concurrency, whether full).
    max_wait:
        The longest predicted wait always admitted, seconds (at least one mean
        service time is; a stable plan admits up to :data:`WAIT_FACTOR` times its
        predicted mean wait if that is longer).
    clock:
        The gateway's monotonic clock, seconds.
    """

    def __init__(
        self,
        controller: Controller,
        estimator: Estimator,
        queue: Queue,
        *,
        max_wait: float,
        clock: Clock,
    ) -> None:
        if not max_wait >= 0:
            raise ValueError(f"max_wait: must be >= 0 seconds, got {max_wait!r}")
        self.controller = controller
        self.estimator = estimator
        self.queue = queue
        self.max_wait = max_wait
        self.retries = Retries(memory=estimator.window, clock=clock)
        #: Arrivals recognised as retries of refused requests (not counted as load).
        self.retried = 0
        #: Admissions owed under an objective that cannot be met (see the module).
        self.credit = 1.0

    def predicted_wait(self) -> float:
        """Seconds a request arriving now would wait for a slot (see the module)."""
        q, plan = self.queue, self.controller.plan
        ahead = q.waiting + q.busy - q.concurrency + 1
        # departures come every E[S] / C(B) seconds with every slot busy (batched
        # server), every E[S] / concurrency on the paper's model
        per = plan.capacity if plan.server is not None and not plan.server.single else None
        return max(ahead, 0) * plan.mean_service / (per or q.concurrency)

    def budget(self, task: int) -> int:
        """The budget of a request of type ``task`` that starts now: the plan's, or 0
        while the queue holds more work than the bound."""
        if self.predicted_wait() > self.bound():
            return 0
        return self.controller.plan.budgets[task]

    def admit(self, task: int, text: str) -> None:
        """Count an arrival of type ``task`` (last user message ``text``) and admit it.

        Raises
        ------
        OverloadedError
            The predicted wait exceeds the bound, or the queue is full
            (:class:`~thinkq.errors.QueueFullError`).
        """
        if self.retries and self.retries.retry(hash((task, text))):
            self.retried += 1
        else:
            self.estimator.arrival(task)
        refusal = self._refusal()
        if refusal is not None:
            self.retries.refused(hash((task, text)))
            raise refusal

    def _refusal(self) -> OverloadedError | None:
        plan, queue = self.controller.plan, self.queue
        slo = plan.slo
        if slo is not None and slo.admitted < 1.0:
            self.credit += slo.admitted
            if self.credit < 1.0 - 1e-9:
                return _beyond_objectives(slo, plan.rate)
            self.credit = min(self.credit - 1.0, 1.0)
        wait = self.predicted_wait()
        if queue.full():
            return QueueFullError(
                f"overloaded: {queue.waiting} requests are already waiting",
                retry_after=max(1, math.ceil(wait)),
            )
        bound = self.bound()
        if wait <= bound:
            return None
        why = (
            f"the estimated load ({plan.utilization:.3g} at zero budgets) exceeds the "
            "server's capacity"
            if plan.overloaded
            else "the queue holds more work than the plan predicts"
        )
        return OverloadedError(
            f"overloaded: {why}; a request now would wait {wait:.3g} s (bound {bound:.3g} s)",
            retry_after=max(1, math.ceil(wait - bound)),
        )

    def bound(self) -> float:
        """The longest predicted wait admitted now, seconds (see the module docstring)."""
        plan = self.controller.plan
        bound = max(self.max_wait, plan.mean_service)
        if not plan.overloaded:
            bound = max(bound, WAIT_FACTOR * plan.predicted_mean_waiting_time)
        return bound


def _beyond_objectives(slo: SloState, rate: float) -> OverloadedError:
    """The refusal of a request beyond the rate at which the objectives can be met."""
    names = ", ".join(str(o) for o in slo.objectives)
    top = slo.max_rate or 0.0
    return OverloadedError(
        f"overloaded: {names} cannot be met at the estimated load ({rate:.3g}/s) even "
        f"with zero budgets; admitting {slo.admitted:.0%} of requests (up to {top:.3g}/s)",
        retry_after=max(1, math.ceil(1.0 / top)) if top > 0 else 60,
    )
