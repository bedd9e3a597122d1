"""The gateway's per-request log lines, logged together a fifth of a second later.

``thinkq serve`` logs a line per request (``INFO: ok task=... budget=...``). Logging
one is a good deal of Python (a record, the caller's frame, the handlers, the
format) and a ``write``, and at a low rate every request runs it with the caches
cold: 0.05-0.09 ms of CPU per request at 50 requests/s (``docs/benchmarks.md``,
Gateway), the largest part of thinkq's own work on the request's path.

:class:`DeferredLog` holds a request's line (its format and arguments, and the time)
and logs the lines held together, through the same logger, from a timer of the
running event loop at most ``delay`` seconds later. Each record is the one the
direct call would have made (same logger, level, message and creation time), so
handlers, formats and filters see no difference but the moment they run. Lines are
logged at once where no event loop runs in the thread (tests, other threads), when
``capacity`` are held, and on :meth:`~DeferredLog.flush`, which the gateway calls when
it stops and ``thinkq serve`` before uvicorn ends the process with the signal that
stopped it (:class:`thinkq.serve.connections.GatewayServer`). A line logged directly
in between (a budget change, a warning) may come before the request lines held.
"""

from __future__ import annotations

import asyncio
import logging
import time

__all__ = ["DEFAULT_CAPACITY", "DEFAULT_DELAY", "DeferredLog"]

#: Seconds a line may be held before it is logged.
DEFAULT_DELAY = 0.2
#: Lines held at most: the next one logs them all at once.
DEFAULT_CAPACITY = 1000


class DeferredLog:
    """INFO lines of ``logger``, logged in batches (see the module docstring).

    Parameters
    ----------
    logger:
        Where the lines go.
    delay:
        Seconds a line may be held.
    capacity:
        Lines held at most.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        delay: float = DEFAULT_DELAY,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        if not delay > 0:
            raise ValueError(f"delay: must be > 0 seconds, got {delay!r}")
        if capacity < 1:
            raise ValueError(f"capacity: must be >= 1 line, got {capacity!r}")
        self.logger, self.delay, self.capacity = logger, delay, capacity
        self.held: list[tuple[float, str, tuple[object, ...]]] = []
        self.timer: asyncio.TimerHandle | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the timer's

    def info(self, msg: str, *args: object) -> None:
        """Log ``msg % args`` at INFO, now or within :attr:`delay` seconds."""
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
            self.loop, self.timer = loop, loop.call_later(self.delay, self.flush)

    def flush(self) -> None:
        """Log every line held, in order, with the time it was held at."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        held, self.held = self.held, []
        for created, msg, args in held:
            record = self.logger.makeRecord(
                self.logger.name, logging.INFO, __file__, 0, msg, args, None, func="info"
            )
            record.relativeCreated -= (record.created - created) * 1e3
            record.created, record.msecs = created, (created - int(created)) * 1e3 // 1
            self.logger.handle(record)
