"""The gateway's per-request log lines, logged later, when no request is in progress.

``thinkq serve`` logs a line per request (``INFO: ok task=... budget=...``). Logging
one is a good deal of Python (a record, the caller's frame, the handlers, the
format) and a ``write``, and at a low rate every request runs it with the caches
cold: 0.05-0.09 ms of CPU per request at 50 requests/s (``docs/benchmarks.md``,
Gateway), the largest part of thinkq's own work on the request's path.

:class:`DeferredLog` holds a request's line (its format and arguments, and the time)
and logs the lines held later, through the same logger, from timers of the running
event loop: ``delay`` seconds after the first line held, as soon as no request is in
progress (``idle``; or once the oldest line has waited ``patience`` seconds more),
in slices of at most ``slice_time`` seconds of work, ``gap`` seconds apart, until
none is held. Each record is the one the direct call would have made (same logger,
level, message and creation time), so handlers, formats and filters see no
difference but the moment they run, and the lines come in the order they were held.

Why wait for an idle loop: the loop runs one callback at a time, so a request in
progress while the lines are logged waits for them. Logged whenever the delay was
up, the lines of a fifth of a second at 200 requests/s (about 40) took 0.5 ms (up
to 2.8) and the requests in flight then waited (measured on the 2-vCPU machine of
``docs/benchmarks.md``). Logged when no request is in progress, only a
request that arrives meanwhile waits, and the lines are still logged together (the
caches warm: what holding them saves).

Lines are logged at once where no event loop runs in the thread (tests, other
threads), when ``capacity`` are held, and on :meth:`~DeferredLog.flush`, which the
gateway calls when it stops and ``thinkq serve`` before uvicorn ends the process
with the signal that stopped it (:class:`thinkq.serve.connections.GatewayServer`). A
line logged directly in between (a budget change, a warning) may come before the
request lines held.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

__all__ = ["DEFAULT_CAPACITY", "DEFAULT_DELAY", "DEFAULT_GAP", "DEFAULT_SLICE", "DeferredLog"]

#: Seconds the first line held waits before lines are logged.
DEFAULT_DELAY = 0.2
#: Lines held at most: the next one logs them all at once.
DEFAULT_CAPACITY = 1000
#: Seconds of logging in one callback of the event loop, at most (past the first line).
DEFAULT_SLICE = 5e-4
#: Seconds between two slices while lines are still held.
DEFAULT_GAP = 0.005
#: Seconds lines may wait past the delay for the loop to be idle.
DEFAULT_PATIENCE = 1.0
#: Seconds between two looks at whether the loop is idle.
RETRY = 0.001


class DeferredLog:
    """INFO lines of ``logger``, logged later in short slices (see the module docstring).

    Parameters
    ----------
    logger:
        Where the lines go.
    delay:
        Seconds the first line held waits.
    capacity:
        Lines held at most.
    slice_time:
        Seconds of logging in one callback, at most (each logs at least one line).
    gap:
        Seconds between two callbacks while lines are held.
    idle:
        Whether no request is in progress: lines are logged then, or once the oldest
        has waited ``delay + patience`` seconds. ``None``: always.
    patience:
        Seconds lines may wait past the delay for ``idle``.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        delay: float = DEFAULT_DELAY,
        capacity: int = DEFAULT_CAPACITY,
        slice_time: float = DEFAULT_SLICE,
        gap: float = DEFAULT_GAP,
        idle: Callable[[], bool] | None = None,
        patience: float = DEFAULT_PATIENCE,
    ) -> None:
        if not delay > 0:
            raise ValueError(f"delay: must be > 0 seconds, got {delay!r}")
        if capacity < 1:
            raise ValueError(f"capacity: must be >= 1 line, got {capacity!r}")
        if not slice_time >= 0:
            raise ValueError(f"slice_time: must be >= 0 seconds, got {slice_time!r}")
        if not gap >= 0:
            raise ValueError(f"gap: must be >= 0 seconds, got {gap!r}")
        self.logger, self.delay, self.capacity = logger, delay, capacity
        self.slice_time, self.gap = slice_time, gap
        self.idle, self.patience = idle, patience
        self.held: list[tuple[float, str, tuple[object, ...]]] = []
        self.timer: asyncio.TimerHandle | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the timer's

    def info(self, msg: str, *args: object) -> None:
        """Log ``msg % args`` at INFO, now or later (see the module docstring)."""
        if not self.logger.isEnabledFor(logging.INFO):
            return
        self.held.append((time.time(), msg, args))
        if len(self.held) >= self.capacity:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop here: no timer to wait for
            self.flush()
            return
        if self.timer is not None and loop is not self.loop:  # a timer of another loop
            self.flush()
        elif self.timer is None:
            self.loop, self.timer = loop, loop.call_later(self.delay, self._slice)

    def flush(self) -> None:
        """Log every line held, in order, with the time it was held at."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        held, self.held = self.held, []
        for line in held:
            self._log(*line)

    def _slice(self) -> None:
        """The timer: log the oldest lines held for at most :attr:`slice_time` seconds, and
        come back :attr:`gap` seconds later for the rest."""
        self.timer = None
        held = self.held
        if self._busy() and self.loop is not None:
            self.timer = self.loop.call_later(RETRY, self._slice)
            return
        end, n = time.perf_counter() + self.slice_time, 0
        while n < len(held):
            self._log(*held[n])
            n += 1
            if time.perf_counter() >= end:
                break
        del held[:n]  # (a handler that logs through this log adds after them)
        if held and self.timer is None and self.loop is not None:
            self.timer = self.loop.call_later(self.gap, self._slice)

    def _busy(self) -> bool:
        """Whether to wait for an idle loop (lines held less than ``delay + patience``)."""
        if self.idle is None or not self.held or self.idle():
            return False
        return time.time() - self.held[0][0] < self.delay + self.patience

    def _log(self, created: float, msg: str, args: tuple[object, ...]) -> None:
        """Handle the record of ``msg % args`` as if it had been logged at ``created``."""
        record = self.logger.makeRecord(
            self.logger.name, logging.INFO, __file__, 0, msg, args, None, func="info"
        )
        record.relativeCreated -= (record.created - created) * 1e3
        record.created, record.msecs = created, (created - int(created)) * 1e3 // 1
        self.logger.handle(record)
