"""An enforcer inside another gateway: type, apply the plan's budget, report to Redis.

A request is typed as ``thinkq serve`` types it (:class:`~thinkq.serve.routing.Router`:
the header ``X-Thinkq-Task``, then ``metadata.task``, then the profile's ``match``
rules, then its ``default_task``) and gets the budget of its type in the upstream's
native field (cap mode, as :class:`~thinkq.measure.cap.Capper`: vLLM
``thinking_token_budget``, llama.cpp ``thinking_budget_tokens``, SGLang
``thinking_budget`` under ``custom_params``...).

The budgets are the plan in force in Redis (``P:plan``, written by ``thinkq
controller`` or a ``thinkq serve --state`` leader, decoded and checked by
:func:`thinkq.fleet.plans.from_doc`). Before the first plan is read, and whenever the
published one does not apply to this profile, they are the profile's own solve at its
prior rate (the budgets ``thinkq serve`` starts with). When Redis fails, the last plan
read stays in force and the enforcer says so in its log and :meth:`Enforcer.status`.

Arrivals and completions are counted in memory, per wall second, on the request's
path (a dictionary increment); a background task (:meth:`Enforcer.run`, every
``tick`` seconds) adds them to ``P:arrivals:S`` and ``P:completions:S`` with
:meth:`thinkq.fleet.state.Store.add` and reads the plan. Counts that Redis did not
take are kept for the next tick (up to :data:`KEEP` seconds of them).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

from thinkq.errors import StateError
from thinkq.fleet.plans import fingerprint, from_doc
from thinkq.fleet.state import Store
from thinkq.profile import Profile
from thinkq.serve.controller import Controller, Plan
from thinkq.serve.estimator import Estimator
from thinkq.serve.gateway import PRIOR_TIME
from thinkq.serve.routing import TASK_HEADER, Router, last_user_text
from thinkq.slo import Objective

__all__ = ["DEFAULT_FIELD", "KEEP", "Enforcer", "set_field"]

#: The budget field of cap mode by default (vLLM's; llama.cpp: ``thinking_budget_tokens``).
DEFAULT_FIELD = "thinking_token_budget"
#: Seconds of unreported counts kept while Redis is away (older ones are dropped).
KEEP = 600

log = logging.getLogger("thinkq.integrations")

Counts = defaultdict[int, defaultdict[str, float]]


def _counts() -> Counts:
    return defaultdict(lambda: defaultdict(float))


def set_field(body: MutableMapping[str, Any], field: str, budget: int) -> None:
    """Set ``field`` of ``body`` to ``budget``; a dotted field (``custom_params.
    thinking_budget``) names a path of objects, created where missing."""
    *parents, last = field.split(".")
    target = body
    for part in parents:
        inner = target.get(part)
        if not isinstance(inner, MutableMapping):
            inner = target[part] = {}
        target = inner
    target[last] = budget


class Enforcer:
    """Types requests, gives each its plan's budget, reports to Redis (module docstring).

    Parameters
    ----------
    profile:
        The profile the plan was solved for (its tasks, rules, and the fallback solve).
    state:
        ``redis://HOST:PORT/DB``, or ``None`` to apply the profile's own budgets alone.
    field:
        The upstream's budget field (dotted for a nested one).
    objectives:
        The latency objectives the controller solves with (``--slo``): they are part
        of the plan's fingerprint.
    tick:
        Seconds between reports and plan reads.
    wall:
        Wall-clock time, Unix seconds (the buckets' seconds).
    """

    def __init__(
        self,
        profile: Profile,
        *,
        state: str | None = None,
        field: str = DEFAULT_FIELD,
        objectives: Sequence[Objective] = (),
        tick: float = 1.0,
        prefix: str = "thinkq",
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not field or any(not part for part in field.split(".")):
            raise ValueError(
                f"field: must be a field name (dotted for a nested one), got {field!r}"
            )
        if not tick > 0:
            raise ValueError(f"tick: must be > 0 seconds, got {tick!r}")
        self.profile, self.field, self.tick, self.wall = profile, field, tick, wall
        self.names = tuple(profile.names)
        self.router = Router(profile)
        estimator = Estimator(
            prior_rate=profile.rate, prior_shares=profile.share, window=60.0, prior_time=PRIOR_TIME
        )
        own = Controller(profile, estimator, objectives=objectives).plan
        self.fallback: Plan = own
        self.plan: Plan = own
        self.objectives = tuple(objectives)
        self.fingerprint = fingerprint(profile, self.objectives)
        self.store = None if state is None else Store(state, prefix=prefix, wall=wall)
        self.source = "profile"  # where the budgets in force come from: profile or plan
        self.connected: bool | None = None
        self.error: str | None = None
        self.refused: str | None = None
        self.arrivals: Counts = _counts()
        self.completions: Counts = _counts()
        self._doc: dict[str, Any] | None = None
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ requests

    def route(self, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> int:
        """The task index of a request body (chat ``messages`` or completions ``prompt``).

        Raises
        ------
        RoutingError
            The named task does not exist, or nothing types the request.
        """
        header = None
        for key, value in (headers or {}).items():
            if key.lower() == TASK_HEADER:
                header = value
        messages = body.get("messages")
        if isinstance(messages, list):
            text = last_user_text(messages)
        else:
            prompt = body.get("prompt")
            text = prompt if isinstance(prompt, str) else ""
        return self.router.route(header=header, metadata=body.get("metadata"), text=text)

    def budget(self, task: int) -> int:
        """The budget in force for task ``task`` (tokens)."""
        return int(self.plan.budgets[task])

    def apply(self, body: MutableMapping[str, Any], task: int) -> int:
        """Set the budget of ``task`` in ``body``'s field and count the arrival."""
        budget = self.budget(task)
        set_field(body, self.field, budget)
        self.arrived(task)
        return budget

    def arrived(self, task: int) -> None:
        """Count one arrival of ``task`` now."""
        self.arrivals[math.floor(self.wall())][self.names[task]] += 1

    def completed(self, task: int, *, service: float, thinking: int) -> None:
        """Count one served request of ``task``: ``service`` seconds, ``thinking`` tokens."""
        sums = self.completions[math.floor(self.wall())]
        name = self.names[task]
        sums[f"{name}:n"] += 1
        sums[f"{name}:service"] += max(0.0, float(service))
        sums[f"{name}:thinking"] += max(0, int(thinking))

    # ------------------------------------------------------------------ Redis

    def start(self) -> None:
        """Start :meth:`run` in the running event loop, once (no-op without a state)."""
        if self.store is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        """Report and read the plan every :attr:`tick` seconds until cancelled."""
        try:
            while True:
                try:
                    await self.refresh()
                except Exception:  # a bug, or a key someone else wrote wrong: next tick
                    log.exception("the enforcer's refresh failed; trying again next tick")
                await asyncio.sleep(self.tick)
        finally:
            if self.store is not None:
                await self.store.aclose()

    async def refresh(self) -> None:
        """One tick: report the counts, read the plan. Never raises a Redis failure."""
        if self.store is None:
            return
        arrivals, completions = self.arrivals, self.completions
        self.arrivals, self.completions = _counts(), _counts()
        try:
            # a fresh Redis starts its epoch now: this member cannot report its past
            _, started = await self.store.epoch(self.wall())
            counted = {s: {k: round(v) for k, v in c.items()} for s, c in _since(arrivals, started)}
            await self.store.add(counted, dict(_since(completions, started)))
            doc = await self.store.plan()
        except StateError as exc:
            self._keep(arrivals, completions)
            if self.connected is not False:
                log.warning(
                    "shared state unreachable (%s): keeping the %s budgets", exc, self.source
                )
            self.connected, self.error = False, str(exc)
            return
        except BaseException:  # not Redis's failure (run() logs it): the counts stay
            self._keep(arrivals, completions)
            raise
        if self.connected is not True:
            log.info("shared state at %s: connected", self.store.shown)
        self.connected, self.error = True, None
        if doc is not None and doc != self._doc:
            self._doc = doc
            self._adopt(doc)

    def _adopt(self, doc: Mapping[str, Any]) -> None:
        try:
            plan = from_doc(
                doc, self.names, fingerprint=self.fingerprint, server=self.fallback.server,
                objectives=self.objectives, current=self.plan,
            )  # fmt: skip
        except ValueError as exc:
            if str(exc) != self.refused:
                log.warning("the shared plan does not apply here (%s): the profile's budgets", exc)
            self.refused, self.plan, self.source = str(exc), self.fallback, "profile"
            return
        self.refused, self.plan, self.source = None, plan, "plan"
        budgets = ", ".join(f"{n}={b}" for n, b in zip(self.names, plan.budgets, strict=True))
        log.info("plan in force: budgets %s (by %s)", budgets, doc.get("by"))

    def _keep(self, arrivals: Counts, completions: Counts) -> None:
        """Put unreported counts back (the newest :data:`KEEP` seconds of them)."""
        oldest = math.floor(self.wall()) - KEEP
        for kept, new in ((arrivals, self.arrivals), (completions, self.completions)):
            for second, sums in kept.items():
                if second >= oldest:
                    for name, value in sums.items():
                        new[second][name] += value

    async def aclose(self) -> None:
        """Stop the background task (its store is closed as it ends)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        elif self.store is not None:
            await self.store.aclose()

    def status(self) -> dict[str, Any]:
        """What is in force and why: budgets, their source, the state's health."""
        doc = self._doc or {}
        return {
            "budgets": dict(zip(self.names, map(int, self.plan.budgets), strict=True)),
            "source": self.source,
            "field": self.field,
            "state": None if self.store is None else self.store.shown,
            "connected": bool(self.connected),
            "error": self.error,
            "refused": self.refused,
            "plan_by": doc.get("by"),
        }


def _since(counts: Counts, started: float) -> list[tuple[int, dict[str, float]]]:
    """The counts of seconds at or after ``started`` (the controller ignores earlier)."""
    return [(s, dict(c)) for s, c in counts.items() if s >= math.floor(started)]
