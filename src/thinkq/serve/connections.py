"""The limits on client connections that uvicorn leaves out: head size and read time.

uvicorn with httptools' parser reads a request's head for as long as the client
sends it, so headers of any size are buffered, and its one timer (keep-alive) starts
only after a response: a connection that sends half a request, or nothing, holds its
socket forever, and a few hundred of them exhaust the server's descriptors.
:func:`guarded_protocol` is uvicorn's httptools protocol with two limits more:

* a request head (request line and headers) over ``max_header`` bytes gets
  ``431 Request Header Fields Too Large`` and the connection is closed, counted as
  the bytes arrive, so no more than a read's worth beyond the limit is ever buffered;
* a request must arrive whole within ``read_timeout`` seconds of its first byte (of
  the connection's opening, for the first request): otherwise it gets
  ``408 Request Timeout`` and the connection is closed (where the app was already
  reading its body, the app sees the client leave).

Idle connections between requests are uvicorn's own ``timeout_keep_alive``. The
checks cost a length and a comparison per read, and one timer per request.
:func:`server_config` is the uvicorn configuration of ``thinkq serve`` with them.

:class:`GatewayServer` is uvicorn's server that lets the gateway log the request lines
it holds (:mod:`thinkq.serve.logs`) before it ends the process.

``thinkq serve`` settles the heap once its gateway has started, just before it serves
(:func:`settle_heap`): one full collection, then :func:`gc.freeze`, so that the
start's several hundred thousand objects (numpy, scipy, the solver, pydantic's
schemas) are never scanned again. Otherwise the collector's occasional full pass over
them stopped the event loop for about 150 ms under load (every request in flight
waited: the 99th percentile), and each request paid about 0.05 ms of CPU more
(``docs/benchmarks.md``, Gateway).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = [
    "DEFAULT_KEEP_ALIVE",
    "DEFAULT_MAX_HEADER",
    "DEFAULT_READ_TIMEOUT",
    "GatewayServer",
    "guarded_protocol",
    "server_config",
    "settle_heap",
]

#: Largest request head (request line and headers), bytes: nginx's 4 x 8 KiB.
DEFAULT_MAX_HEADER = 32 * 1024
#: Seconds a request may take to arrive whole (nginx's header and body timeouts: 60).
DEFAULT_READ_TIMEOUT = 30.0
#: Seconds an idle connection is kept open between requests (uvicorn's default).
DEFAULT_KEEP_ALIVE = 5

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class _Guarded(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head size limit and a read timeout."""

    max_header = DEFAULT_MAX_HEADER
    read_timeout = DEFAULT_READ_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_bytes = 0
        self.reading_head = True  # until the head of the request being read is whole
        self.read_timer: asyncio.TimerHandle | None = None
        self.refused = False  # answered 431 or 408: whatever else comes is ignored
        # bytes received on the connection, before the read under way, and before the
        # read in which the last request ended (the next head starts at or after it)
        self.received = self.read_start = self.head_start = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        if self.read_timer is None and self.reading_head:
            self._arm()  # the first bytes of the next request on a kept-alive connection
        if self.reading_head:
            self.head_bytes += len(data)
        self.read_start, self.received = self.received, self.received + len(data)
        super().data_received(data)
        if self.reading_head and self.head_bytes > self.max_header:  # still coming
            self._refuse(431, f"request head over {self.max_header} bytes")

    def on_headers_complete(self) -> None:
        self.reading_head, self.head_bytes = False, 0
        # the bytes since the read in which the last request ended bound this head's size
        # from above: only a bound over the limit needs the exact count (one O(1) test)
        if self.received - self.head_start > self.max_header:
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            if size > self.max_header:  # a head that came whole in one read
                self._refuse(431, f"request head over {self.max_header} bytes")
                return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self.refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self.reading_head, self.head_start = True, self.read_start
        self._disarm()
        if not self.refused:
            super().on_message_complete()

    def _arm(self) -> None:
        self.read_timer = self.loop.call_later(self.read_timeout, self._expired)

    def _disarm(self) -> None:
        if self.read_timer is not None:
            self.read_timer.cancel()
            self.read_timer = None

    def _expired(self) -> None:
        self.read_timer = None
        if self.transport.is_closing():
            return
        cycle: Any = self.cycle  # None before the first request
        if cycle is None or cycle.response_complete or not cycle.response_started:
            # no response under way: say why (an app reading the body sees the client
            # leave, and its own response goes nowhere)
            self._refuse(408, f"request not received whole in {self.read_timeout:g} s")
        else:  # a response is on its way: the half request behind it is dropped
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` with ``message`` and close the connection."""
        self.refused = True
        if self.transport.is_closing():
            return
        body = message.encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, _REASONS[status], len(body), body)
        )
        self._disarm()
        self.transport.close()


def guarded_protocol(*, max_header: int, read_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with these limits (see the module docstring).

    Raises
    ------
    ValueError
        ``max_header`` below 1 byte or ``read_timeout`` not above 0 seconds.
    """
    if max_header < 1:
        raise ValueError(f"max_header: must be >= 1 byte, got {max_header}")
    if not read_timeout > 0:
        raise ValueError(f"read_timeout: must be > 0 seconds, got {read_timeout}")
    limits = {"max_header": max_header, "read_timeout": read_timeout}
    return type("GuardedHttpToolsProtocol", (_Guarded,), limits)


def server_config(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    max_header: int = DEFAULT_MAX_HEADER,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    keep_alive: int = DEFAULT_KEEP_ALIVE,
    log_level: str = "info",
) -> uvicorn.Config:
    """The uvicorn configuration of ``thinkq serve``: httptools, the limits, no lifespan.

    ``thinkq serve`` then settles the heap (:func:`settle_heap`) just before it serves.
    """
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(max_header=max_header, read_timeout=read_timeout),
        timeout_keep_alive=keep_alive,
        lifespan="off",
        access_log=False,
        log_level=log_level,
    )


class GatewayServer(uvicorn.Server):
    """uvicorn's server, calling ``before_exit()`` once it has shut down (the gateway
    logs the lines it holds, :mod:`thinkq.serve.logs`): uvicorn then raises the signal
    that stopped it again, and on SIGTERM that ends the process at once, before any
    ``finally`` or exit handler runs."""

    def __init__(
        self, config: uvicorn.Config, *, before_exit: Callable[[], object] = lambda: None
    ) -> None:
        super().__init__(config)
        self.before_exit = before_exit

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            try:
                yield
            finally:
                self.before_exit()


def settle_heap() -> None:
    """Collect the garbage of the start, then exempt every object alive now from the
    cyclic collector (:func:`gc.freeze`): its full passes then scan only what the
    server creates while it serves (see the module docstring)."""
    gc.collect()
    gc.freeze()
