"""The cyclic garbage collector, run between requests rather than in the middle of one.

Python's cyclic collector runs when the objects allocated since its last pass exceed
a threshold (700), wherever that happens: in the middle of a request. A gateway
request leaves about 22 objects in reference cycles (httpx's upstream call), so at
200 requests/s a young-generation pass came every 23 requests or so and stopped the
event loop for 0.4-0.5 ms; every request in flight waited, about one in ten, which
is the 99th percentile's tail (``docs/benchmarks.md``, Gateway). The bare
pass-through proxy pays the same.

:class:`IdleCollector` counts the requests in progress (:meth:`enter`, :meth:`leave`)
and, once started in the running loop (:meth:`start`), turns the automatic collector
off and runs the same passes itself when no request is in progress: when the last
one leaves and the young generation is past its threshold, the pass the collector
would have made (the oldest generation past its threshold, as CPython chooses)
runs from the loop right after. Only a request that arrives during the pass waits,
a few in a thousand at 200 requests/s, where every request in flight used to.

Where requests are always in progress (long upstream calls), the passes cannot wait
for an idle loop: a timer every ``period`` seconds runs the pass anyway once the
young generation holds ``ceiling`` times its threshold (or when the loop is idle and
it is past the threshold), so the garbage held stays bounded and the collector
makes fewer, longer passes. :meth:`stop` turns the automatic collector back on.

The gateway's other periodic work waits for an idle loop the same way
(:meth:`IdleCollector.quiet`), as its request log does (:mod:`thinkq.serve.logs`).
The thresholds are CPython's own (:func:`gc.get_threshold`), so a program that
tunes them tunes these passes too.

The books of finished requests wait for the idle loop too: the records and the
metrics hold what a request adds (:mod:`thinkq.serve.records`), and the timer runs
the callables in :attr:`IdleCollector.settles`, which keep it, when it finds no
request in progress: the books of a tenth of a second at once, the caches warm
(what a request's own bookkeeping, run cold between two of its steps, did not have).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

__all__ = ["DEFAULT_CEILING", "DEFAULT_PATIENCE", "DEFAULT_PERIOD", "IdleCollector"]

#: The young generation's count, in thresholds, at which a pass runs in any case.
DEFAULT_CEILING = 8
#: Seconds between two looks of the timer.
DEFAULT_PERIOD = 0.1
#: Seconds periodic work waits at most for an idle loop (:meth:`IdleCollector.quiet`).
DEFAULT_PATIENCE = 0.25
#: Seconds between two looks while it waits.
_POLL = 0.001


class IdleCollector:
    """The requests in progress, and the collector's passes between them (see the
    module docstring). Counting alone until :meth:`start`."""

    def __init__(self, *, ceiling: float = DEFAULT_CEILING, period: float = DEFAULT_PERIOD):
        if not ceiling >= 1:
            raise ValueError(f"ceiling: must be >= 1 threshold, got {ceiling!r}")
        if not period > 0:
            raise ValueError(f"period: must be > 0 seconds, got {period!r}")
        self.ceiling, self.period = ceiling, period
        self.in_progress = 0
        self.passes = [0, 0, 0]  # passes run here, by generation
        self.loop: asyncio.AbstractEventLoop | None = None  # set while started
        self.timer: asyncio.TimerHandle | None = None
        #: What runs when no request is in progress (the books' ``settle``), once started.
        self.settles: list[Callable[[], None]] = []
        self._due = False  # a pass is scheduled on the loop

    def idle(self) -> bool:
        """Whether no request is in progress."""
        return not self.in_progress

    async def quiet(self, patience: float = DEFAULT_PATIENCE) -> None:
        """Return once no request is in progress, or ``patience`` seconds later: periodic
        work of a millisecond or more (a re-solve, a report to Redis) waits for it, so
        that no request waits for that work."""
        end = time.monotonic() + patience
        while self.in_progress and time.monotonic() < end:
            await asyncio.sleep(_POLL)

    def enter(self) -> None:
        """A request begins."""
        self.in_progress += 1

    def leave(self) -> None:
        """A request ends: the last one out schedules the pass that is due."""
        self.in_progress -= 1
        if self.in_progress or self.loop is None or self._due:
            return
        if gc.get_count()[0] > gc.get_threshold()[0]:
            self._due = True
            self.loop.call_soon(self._collect_if_idle)

    def start(self) -> None:
        """Take the collector's passes over, in the running loop."""
        if self.loop is not None or gc.get_threshold()[0] == 0:  # started, or turned off
            return
        self.loop = asyncio.get_running_loop()
        gc.disable()
        self.timer = self.loop.call_later(self.period, self._watch)

    def stop(self) -> None:
        """Give the passes back to the automatic collector."""
        if self.loop is None:
            return
        if self.timer is not None:
            self.timer.cancel()
        self.loop, self.timer, self._due = None, None, False
        gc.enable()

    def _collect_if_idle(self) -> None:
        self._due = False
        if not self.in_progress:
            self.collect()

    def _watch(self) -> None:
        if self.loop is None:
            return
        if not self.in_progress:
            for settle in self.settles:
                settle()
        young, threshold = gc.get_count()[0], gc.get_threshold()[0]
        if young > threshold * self.ceiling or (young > threshold and not self.in_progress):
            self.collect()
        self.timer = self.loop.call_later(self.period, self._watch)

    def collect(self) -> int:
        """Run the pass the automatic collector would run now: the oldest generation
        whose count is past its threshold (the young one at least). Returns the
        generation collected."""
        counts, thresholds = gc.get_count(), gc.get_threshold()
        generation = next((g for g in (2, 1) if counts[g] > thresholds[g]), 0)
        gc.collect(generation)
        self.passes[generation] += 1
        return generation
