"""How many queries a server was serving while one of them decoded: the batch it saw.

Two witnesses, read over the same window of time (a query's thinking request):

* :class:`InFlight`, the client's own count of the queries it has in service. It
  keeps the integral of the count over time, so that the time-averaged count over any
  past window costs one bisection;
* :class:`SlotWatch`, the server's own view where it has one: llama.cpp's ``GET
  /slots`` lists every slot with ``is_processing``. It is polled every
  :data:`POLL_S` seconds while the phase runs; a window's batch is the mean of the
  samples inside it. A server without ``/slots`` (vLLM, SGLang) gives none, and the
  client's count stands alone.

All times are :func:`time.perf_counter` seconds.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from typing import Any

import httpx

__all__ = ["POLL_S", "InFlight", "SlotWatch"]

#: Seconds between two polls of ``/slots``: a few decode steps, so that polling
#: (which llama.cpp answers between two steps) costs the server little.
POLL_S = 0.1


class InFlight:
    """The number of queries in service, and its integral over time."""

    def __init__(self) -> None:
        self.count = 0
        self._times: list[float] = [time.perf_counter()]
        self._areas: list[float] = [0.0]
        self._counts: list[int] = [0]

    def _change(self, step: int) -> None:
        now = time.perf_counter()
        area = self._areas[-1] + self._counts[-1] * (now - self._times[-1])
        self.count += step
        self._times.append(now)
        self._areas.append(area)
        self._counts.append(self.count)

    def enter(self) -> None:
        """One more query in service (now)."""
        self._change(+1)

    def leave(self) -> None:
        """One query fewer in service (now)."""
        self._change(-1)

    def area(self, at: float) -> float:
        """The integral of the count from the start to ``at`` (query-seconds)."""
        k = max(bisect.bisect_right(self._times, at) - 1, 0)
        return self._areas[k] + self._counts[k] * max(at - self._times[k], 0.0)

    def mean(self, start: float, end: float) -> float | None:
        """The time-averaged count over [start, end]; ``None`` for an empty window."""
        if end <= start:
            return None
        return (self.area(end) - self.area(start)) / (end - start)


def _busy(reply: Any) -> int | None:
    """The number of slots processing in a ``/slots`` reply, or ``None`` if it is not one."""
    if not isinstance(reply, list) or not reply:
        return None
    if not all(isinstance(s, dict) and "is_processing" in s for s in reply):
        return None
    return sum(1 for s in reply if s["is_processing"] is True)


class SlotWatch:
    """Samples of the server's busy slots (``GET {root}/slots``) while the phase runs.

    Use as ``async with SlotWatch(http, root):``. A first reply that is not a slot
    list (no such endpoint, or a server that hides it) stops the polling for good; a
    later failed poll is skipped.
    """

    def __init__(self, http: httpx.AsyncClient, root: str, *, every: float = POLL_S) -> None:
        self.http = http
        self.url = root.rstrip("/") + "/slots"
        self.every = every
        self.times: list[float] = []
        self.busy: list[int] = []
        self.available = True
        self._task: asyncio.Task[None] | None = None

    async def _poll(self) -> None:
        while True:
            asked = time.perf_counter()
            try:
                response = await self.http.get(self.url, timeout=5.0)
                busy = _busy(response.json()) if response.status_code == 200 else None
            except (httpx.HTTPError, ValueError):
                busy = None
            if busy is None and not self.busy:  # no slot list at all: a server without one
                self.available = False
                return
            if busy is None:  # a slow or failed poll while the server is busy: skipped
                await asyncio.sleep(self.every)
                continue
            self.times.append((asked + time.perf_counter()) / 2)
            self.busy.append(busy)
            await asyncio.sleep(self.every)

    async def __aenter__(self) -> SlotWatch:
        self._task = asyncio.create_task(self._poll())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def mean(self, start: float, end: float) -> tuple[float | None, int]:
        """The mean busy slots sampled in [start, end], and how many samples that is."""
        lo = bisect.bisect_left(self.times, start)
        hi = bisect.bisect_right(self.times, end)
        if hi <= lo:
            return None, 0
        window = self.busy[lo:hi]
        return sum(window) / len(window), len(window)
