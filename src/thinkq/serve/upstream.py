"""The gateway's connections to the upstream: httpx's API over aiohttp's pool.

Every request through the gateway makes one upstream request (two in ``force`` mode
with a budget above zero), so the HTTP client's own cost per request is the larger
part of what the gateway adds. httpx's default transport (httpcore on anyio) spends
about 0.7 ms of CPU per request on the 2-vCPU machine of ``docs/benchmarks.md``; its
interface over aiohttp's connection pool (``httpx-aiohttp``, the transport the
OpenAI SDK offers for the same reason) spends about 0.45 ms, and the errors stay
httpx's, which :class:`~thinkq.measure.server.Server` turns into one-line
:class:`~thinkq.errors.ServerError`\\ s. ``benchmarks/serve_overhead.py`` measures
the gateway both ways.

httpx logs every request it sends at INFO (``HTTP Request: POST ... "HTTP/1.1 200
OK"``), which under ``thinkq serve``'s INFO logging was a second line per request
beside the gateway's own (which says more: type, budget, wait, service) and cost
about 0.03 ms of CPU. Unless the ``httpx`` logger has a level of its own, the
transport's creation sets it to WARNING: httpx's warnings and errors still show.
"""

from __future__ import annotations

import logging

import httpx
from httpx_aiohttp import AiohttpTransport

__all__ = ["upstream_transport"]


def upstream_transport(connections: int = 100) -> httpx.AsyncBaseTransport:
    """An aiohttp-backed httpx transport with up to ``connections`` open connections.

    Create it inside the event loop that will use it (aiohttp binds its pool there).
    httpx's per-request INFO line is turned off unless its logger was configured
    (see the module docstring).
    """
    requests = logging.getLogger("httpx")
    if requests.level == logging.NOTSET:
        requests.setLevel(logging.WARNING)
    return AiohttpTransport(limits=httpx.Limits(max_connections=connections))
