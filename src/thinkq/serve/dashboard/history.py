"""What the live page charts: a bounded ring of samples and a bounded log of re-solves.

The gateway calls :meth:`History.resolved` with every plan it puts in force (its own
re-solves every ``--resolve-every`` seconds, and a fleet's shared plans), off the
request path. Each call logs the re-solve when it changed something (budgets,
overload) and takes a :class:`Sample` of the figures when at least :attr:`History.every`
seconds have passed since the last one. The ring keeps :attr:`History.horizon`
seconds of samples (an hour: 720 at one per 5 s), the log its last
:data:`LOG_LENGTH` re-solves, so the memory is bounded whatever the uptime.

Times are the gateway's monotonic clock; the JSON gives each entry's age in seconds
(:meth:`History.to_dict`), which the page turns into clock times with its own clock.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from thinkq._json import finite_number
from thinkq.profile import Profile
from thinkq.serve.controller import Plan
from thinkq.serve.estimator import Clock
from thinkq.serve.queue import Queue, Records
from thinkq.serve.slo import measured

__all__ = ["LOG_LENGTH", "MOVES_SHOWN", "History", "Resolve", "Sample"]

#: Re-solves that changed something, kept in the log.
LOG_LENGTH = 50
#: The largest budget moves listed per re-solve (the count covers all of them).
MOVES_SHOWN = 8


@dataclass(frozen=True, slots=True)
class Sample:
    """The gateway's figures at one time (seconds; ``None`` where not finite or unknown).

    ``slo`` holds each objective's (predicted, measured) value, in the plan's order.
    """

    at: float
    rate: float
    utilization: float
    predicted: float | None
    measured: float | None
    waiting: int
    in_service: int
    overloaded: bool
    slo: tuple[tuple[float | None, float | None], ...] = ()


@dataclass(frozen=True, slots=True)
class Resolve:
    """One re-solve that changed the budgets or the overload state.

    ``moves`` are the largest budget changes (task, before, after), at most
    :data:`MOVES_SHOWN` of the ``moved`` types whose budgets changed.
    """

    at: float
    rate: float
    utilization: float
    overloaded: bool
    moved: int
    moves: tuple[tuple[str, int, int], ...]


class Watched(Protocol):
    """The parts of the gateway a sample reads."""

    profile: Profile
    records: Records
    queue: Queue


class History:
    """The samples of the last ``horizon`` seconds and the log of re-solves.

    Parameters
    ----------
    clock:
        The gateway's monotonic clock, seconds.
    every:
        Least seconds between two samples.
    horizon:
        Seconds of samples kept.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        every: float = 5.0,
        horizon: float = 3600.0,
    ) -> None:
        self.clock, self.every, self.horizon = clock, every, horizon
        self.samples: deque[Sample] = deque(maxlen=max(1, math.ceil(horizon / every)) + 1)
        self.log: deque[Resolve] = deque(maxlen=LOG_LENGTH)
        self.resolves = 0
        self.last: Resolve | None = None  # the last re-solve, whatever it changed
        self._plan: Plan | None = None

    def resolved(self, plan: Plan, gateway: Watched) -> None:
        """Note ``plan``, just put in force, and sample ``gateway`` if one is due.

        The first plan noted (the gateway's at start) is logged as the start.
        """
        now = self.clock()
        before, self._plan = self._plan, plan
        entry = _entry(now, plan, before, gateway.profile.names)
        self.resolves += 1
        self.last = entry
        if before is None or entry.moved or plan.overloaded != before.overloaded:
            self.log.append(entry)
        if not self.samples or now - self.samples[-1].at >= 0.9 * self.every:  # timer jitter
            self.sample(plan, gateway)

    def sample(self, plan: Plan, gateway: Watched) -> Sample:
        """Take a sample of ``gateway`` under ``plan`` now (and forget the expired ones)."""
        now, records = self.clock(), gateway.records
        slo: tuple[tuple[float | None, float | None], ...] = ()
        if plan.slo is not None:
            seen = measured(plan.slo.objectives, records.recent())
            pairs = zip(plan.slo.predicted, seen, strict=True)
            slo = tuple((finite_number(p), m) for p, m in pairs)
        sample = Sample(
            at=now, rate=plan.rate, utilization=plan.utilization,
            predicted=finite_number(plan.predicted_mean_system_time),
            measured=records.mean_system_time(), waiting=gateway.queue.waiting,
            in_service=gateway.queue.busy, overloaded=plan.overloaded, slo=slo,
        )  # fmt: skip
        self.samples.append(sample)
        while self.samples and now - self.samples[0].at > self.horizon:
            self.samples.popleft()
        return sample

    def to_dict(self) -> dict[str, Any]:
        """The samples (columns, oldest first) and the log (newest first), with ages."""
        now = self.clock()
        columns = {
            "age": [now - s.at for s in self.samples],
            "rate": [s.rate for s in self.samples],
            "utilization": [s.utilization for s in self.samples],
            "predicted": [s.predicted for s in self.samples],
            "measured": [s.measured for s in self.samples],
            "waiting": [s.waiting for s in self.samples],
            "in_service": [s.in_service for s in self.samples],
            "overloaded": [s.overloaded for s in self.samples],
            "slo": [[list(pair) for pair in s.slo] for s in self.samples],
        }
        return {
            "every": self.every,
            "horizon": self.horizon,
            "samples": columns,
            "resolves": self.resolves,
            "last": None if self.last is None else _resolve_dict(self.last, now),
            "log": [_resolve_dict(r, now) for r in reversed(self.log)],
        }


def _entry(now: float, plan: Plan, before: Plan | None, names: Sequence[str]) -> Resolve:
    """The re-solve of ``plan`` after ``before``: which budgets moved, the largest first."""
    moves: tuple[tuple[str, int, int], ...] = ()
    moved = 0
    if before is not None:
        new, old = np.asarray(plan.budgets), np.asarray(before.budgets)
        changed = np.flatnonzero(new != old)
        moved = int(changed.size)
        order = changed[np.argsort(-np.abs(new[changed] - old[changed]), kind="stable")]
        moves = tuple((names[i], int(old[i]), int(new[i])) for i in order[:MOVES_SHOWN])
    return Resolve(now, plan.rate, plan.utilization, plan.overloaded, moved, moves)


def _resolve_dict(entry: Resolve, now: float) -> dict[str, Any]:
    return {
        "age": now - entry.at,
        "rate": entry.rate,
        "utilization": entry.utilization,
        "overloaded": entry.overloaded,
        "moved": entry.moved,
        "moves": [{"task": t, "before": b, "after": a} for t, b, a in entry.moves],
    }
