"""One member of a fleet sharing a plan through Redis (a gateway or ``thinkq controller``).

Every ``tick`` seconds (a second, or the period if shorter), off the request path,
:meth:`Member.tick`:

1. reports what this member saw since its last report: its estimator's arrivals
   and its served requests, added to the per-second buckets
   (:mod:`thinkq.fleet.state`); after a new epoch (Redis restarted empty) it
   reports its whole window again;
2. once per ``period``, takes or keeps the lease. The holder reads the window's
   counts of every member, estimates the fleet's load (:func:`thinkq.fleet.counts.estimate`),
   re-solves with its controller and publishes the plan; the others read that plan
   and put it in force as it is. So every member applies the same budgets, solved once
   per period for the total load.

Any Redis failure or a call slower than the store's bound makes the member
*disconnected*: it logs it once and re-solves from its own estimator (which counted
every arrival all along) at each period until a tick reaches Redis again; then it
shares at once, and is back on the shared plan within a tick of its leader's
publication.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Gauge

from thinkq.errors import StateError
from thinkq.fleet.counts import completions, ended_per_second, estimate, matrix, per_second
from thinkq.fleet.host import Host
from thinkq.fleet.plans import fingerprint, from_doc, to_doc
from thinkq.fleet.state import Store, member_id, parse_epoch
from thinkq.serve.collector import IdleCollector
from thinkq.serve.controller import Controller, Plan
from thinkq.serve.estimator import Clock, Estimate, Estimator
from thinkq.serve.queue import Records

__all__ = ["LEASE_PERIODS", "Member"]

#: The lease lasts this many periods: a member that stops is replaced after as long.
LEASE_PERIODS = 3
#: Seconds after the end of a second before its bucket is read (every report is in).
SETTLE = 0.25
log = logging.getLogger("thinkq.fleet")


class Member:
    """Shares counts and the plan through ``store`` (see the module docstring).

    Parameters
    ----------
    store:
        The shared state.
    controller:
        Solves the plan (as leader) and holds the plan in force.
    period:
        Seconds between shares (the re-solve period).
    clock:
        The member's monotonic clock, seconds.
    estimator:
        This member's arrivals, reported and used alone while disconnected.
    records:
        This member's served requests, reported as completions.
    fallback:
        Whether to re-solve from ``estimator`` while disconnected.
    on_plan:
        Called with every plan put in force (logging, gauges).
    replicas:
        The replicas behind this member, published with the plan.
    """

    def __init__(
        self,
        store: Store,
        controller: Controller,
        *,
        period: float,
        clock: Clock,
        estimator: Estimator,
        records: Records | None = None,
        fallback: bool = True,
        on_plan: Callable[[Plan], object] = lambda plan: None,
        replicas: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        if not period > 0:
            raise ValueError(f"period: must be > 0 seconds, got {period!r}")
        self.store, self.controller, self.estimator = store, controller, estimator
        self.records, self.fallback, self.on_plan = records, fallback, on_plan
        self.period, self.clock = period, clock
        self.tick_every = min(1.0, period)
        self.id = member_id()
        self.names = tuple(controller.profile.names)
        self.fingerprint = fingerprint(controller.profile, controller.objectives)
        self.connected: bool | None = None  # None: not tried yet
        self.since = store.wall()
        self.error: str | None = None
        self.role = "local"
        self.failures = 0
        self.replicas = replicas
        self.plan_doc: dict[str, Any] | None = None
        self.refused: str | None = None  # why the last plan read does not apply here
        self._due = -math.inf
        self._epoch: str | None = None  # the epoch's document, as Redis holds it
        self._started = math.inf  # the epoch's start, wall seconds
        self._reported = 0  # the estimator's arrivals reported so far
        self._mark = -math.inf  # served requests that ended before this are reported
        #: The gateway's requests in progress: a tick waits for none (``None``: no requests).
        self.activity: IdleCollector | None = None

    @classmethod
    def joining(cls, store: Store, gateway: Host) -> Member:
        """``gateway``'s member (its period, clock, counts, plan and gauges), as its
        :attr:`~thinkq.serve.gateway.Gateway.fleet`: it then re-solves by sharing."""
        member = cls(
            store, gateway.controller, period=gateway.resolve_every or 5.0, clock=gateway.clock,
            estimator=gateway.estimator, records=gateway.records, on_plan=gateway.announce,
            replicas=gateway.replicas.rows,
        )  # fmt: skip
        member.register(gateway.metrics.registry)
        member.activity = gateway.books.activity
        gateway.fleet = member
        return member

    def register(self, registry: CollectorRegistry) -> None:
        """Gauges read when ``/metrics`` is scraped: ``thinkq_state_connected`` (1 while
        Redis answers), ``thinkq_state_leader`` (1 while this member solves for the
        fleet) and ``thinkq_state_failures`` (Redis failures since start)."""
        readers: tuple[tuple[str, str, Callable[[], float]], ...] = (
            (
                "connected",
                "1 while the shared state (Redis) answers.",
                lambda: self.connected is True,
            ),
            ("leader", "1 while this member solves for the fleet.", lambda: self.role == "leader"),
            ("failures", "Failed or slow calls to the shared state.", lambda: self.failures),
        )
        for name, what, read in readers:
            Gauge(f"thinkq_state_{name}", what, registry=registry).set_function(read)

    async def run(self) -> None:
        """Tick every :attr:`tick_every` seconds until cancelled; then close the store."""
        try:
            while True:
                await self._quiet()  # no request waits for the tick's work
                await self.tick()
                await asyncio.sleep(self.tick_every)
        finally:
            await self.store.aclose()

    # ------------------------------------------------------------------ the tick

    async def tick(self) -> None:
        """Report, and share when due; fall back on any Redis failure (never raises it)."""
        now = self.clock()
        due = now >= self._due
        try:
            await self._report(now)
            if self.connected is not True:
                due = True  # share at once on (re)connection
            if due:
                self._due = now + self.period
                await self._share()
        except StateError as exc:
            self._down(str(exc))
            if due:
                self._due = now + self.period
                if self.fallback:
                    self.role = "local"
                    self.on_plan(self.controller.resolve())
            return
        self._up()

    def _down(self, why: str) -> None:
        self.error, self.failures = why, self.failures + 1
        if self.connected is not False:
            self.connected, self.since = False, self.store.wall()
            log.warning(
                "shared state unreachable (%s): solving with this member's own estimates "
                "until it is back", why,
            )  # fmt: skip

    def _up(self) -> None:
        if self.connected is not True:
            again = "is back: on the shared plan again" if self.connected is False else "joined"
            log.info("shared state at %s %s (member %s)", self.store.shown, again, self.id)
            self.connected, self.since, self.error = True, self.store.wall(), None

    # ------------------------------------------------------------------ reports

    async def _report(self, now: float) -> None:
        """Add this member's new arrivals and completions to the buckets, in one round trip."""
        offset = self.store.wall() - now  # this clock's reading + offset = wall seconds
        first = max(now - self.estimator.window, self.estimator.started) + offset
        epoch = self.store.new_epoch(first)  # created only if there is none
        for _ in range(2):  # twice after a new epoch (or the first seen); if it changes
            total, new = self.estimator.recorded(self._reported)  # again, the next tick
            ended = [] if self.records is None else self.records.ended_since(self._mark)
            when = {"offset": offset, "started": self._started}
            arrivals = per_second(new, self.names, **when)
            sums = ended_per_second(ended, after=self._mark, until=now, **when)
            found = await self.store.report(epoch, self._epoch, arrivals, sums)
            if found is None:
                self._reported, self._mark = total, now
                return
            self._epoch, self._reported, self._mark = found, 0, -math.inf  # all again
            self._started = parse_epoch(found)[1]

    # ------------------------------------------------------------------ the plan

    async def _share(self) -> None:
        """Solve and publish as leader, or put the leader's plan in force."""
        if await self.store.lease(self.id, LEASE_PERIODS * self.period):
            self.role = "leader"
            load, done = await self.pooled()
            await self._quiet()  # the solve (a millisecond or two) once no request is in progress
            plan = self.controller.resolve(load)
            await self._quiet()
            self.plan_doc = to_doc(
                plan, self.names, fingerprint=self.fingerprint, by=self.id,
                solved_at=self.store.wall(), period=self.period, arrivals=load.arrivals,
                completions=done, replicas=None if self.replicas is None else self.replicas(),
            )  # fmt: skip
            await self.store.publish(self.plan_doc)
            self.on_plan(plan)
            return
        self.role = "follower"
        doc = await self.store.plan()
        if doc is None:  # no leader yet (Redis just restarted): look again next tick
            self._due = self.clock()
            return
        current = self.controller.plan
        if doc != self.plan_doc:  # a new plan: applicable here, or why not
            self.plan_doc, refused = doc, self.refused
            try:
                current = from_doc(
                    doc, self.names, fingerprint=self.fingerprint, server=current.server,
                    objectives=self.controller.objectives, current=current,
                )  # fmt: skip
                self.refused = None
            except ValueError as exc:
                self.refused = str(exc)
                if self.refused != refused:
                    log.warning("the shared plan does not apply here (%s): solving alone", exc)
        elif not self.refused:
            current = replace(current, switched=False)  # the same plan: gauges only
        if self.refused:
            self.role = "local"
            current = self.controller.resolve()
        self.on_plan(self.controller.adopt(current))

    async def _quiet(self) -> None:
        """Wait for no request in progress (a turn of the loop without a gateway)."""
        await (asyncio.sleep(0) if self.activity is None else self.activity.quiet())

    async def pooled(self) -> tuple[Estimate, dict[str, dict[str, Any]]]:
        """The fleet's load over the window, and its completions per task."""
        est, wall = self.estimator, self.store.wall()
        end = math.floor(wall - self.tick_every - SETTLE)  # seconds before end are complete
        seconds = range(end - math.ceil(est.window), end)
        started = self._started
        arrived, ended = await self.store.windows(seconds)
        counts, done = matrix(arrived, self.names), completions(ended, self.names)
        observed = float(np.clip(end - started, 0.0, len(seconds)))
        load = estimate(
            counts, observed=observed, window=float(len(seconds)), prior_rate=est.prior_rate,
            prior_shares=est.prior_shares, prior_time=est.prior_time, horizon=est.horizon,
        )  # fmt: skip
        return load, done

    # ------------------------------------------------------------------ state

    def status(self) -> dict[str, Any]:
        """The ``state`` object of ``/thinkq/state``."""
        doc = self.plan_doc or {}
        solved = doc.get("solved_at")
        return {
            "backend": "redis",
            "url": self.store.shown,
            "connected": bool(self.connected),
            "since": self.since,
            "error": self.error,
            "role": self.role,
            "member": self.id,
            "plan_by": doc.get("by"),
            "plan_age": None if solved is None else self.store.wall() - float(solved),
        }
