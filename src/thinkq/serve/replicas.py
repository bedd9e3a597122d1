"""The gateway's upstream replicas: which one serves a request, which are up, probes.

One central FIFO queue (:class:`~thinkq.serve.queue.Queue`) sits in front of every
replica's slots; a request that gets a slot goes to the replica with the fewest
requests in flight (:meth:`Replicas.pick`: join the shortest queue at dispatch; ties to
the one that has served fewest). For c one-slot replicas that is the M/G/c queue the
model describes (``docs/fleet.md``).

Failover, only with more than one replica (one upstream behaves as it always did):

* a replica that refuses a connection, breaks one (it died under a request) or
  answers a generation with a 5xx is taken out of rotation (:meth:`Replicas.failed`),
  unless it is the last one up: with every replica failing, requests fail with 502 as
  they would with one upstream;
* a request whose upstream call failed that way *before any byte of its reply reached
  the client* (a plain reply, or a stream before its first piece) is served again
  from the start on another replica; one whose answer the replica had begun (a 5xx)
  is not: the 5xx is its reply;
* every ``probe_every`` seconds each replica out of rotation is asked for
  ``GET /v1/models`` and comes back when it answers (a 5xx or a refused connection
  keeps it out). Replicas in rotation are not probed: their requests find out, and
  lose nothing by it, while a probe would not be harmless: llama-cpp-python's server
  interrupts a streaming generation when any other request arrives, ``/v1/models``
  included (its ``interrupt_requests``, on by default);
* whenever the number up changes the queue is resized to their slots and
  ``changed(up)`` is called: the gateway re-solves the plan for the replicas up.

Each replica counts its requests in flight, served and failed; :meth:`Replicas.rows`
is what ``/thinkq/state`` shows and :meth:`Replicas.register` adds the gauges to
``/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Gauge

from thinkq.errors import ServerError, ServerUnreachableError
from thinkq.measure.cap import Capper
from thinkq.measure.forcing import Forcer
from thinkq.measure.server import Server
from thinkq.measure.templates import Template
from thinkq.serve.queue import Queue

__all__ = ["DEFAULT_PROBE_EVERY", "Replica", "Replicas", "connection_failed"]

#: Seconds between health probes of the replicas (``GET /v1/models``).
DEFAULT_PROBE_EVERY = 2.0

log = logging.getLogger("thinkq.serve")


def connection_failed(exc: ServerError) -> bool:
    """Whether ``exc`` is a connection refused or broken (no reply, and not a timeout):
    the replica is gone, and whatever it had not sent will never come."""
    if isinstance(exc, ServerUnreachableError):
        return True
    cause = exc.__cause__
    return (
        exc.status is None
        and isinstance(cause, httpx.TransportError)
        and not isinstance(cause, httpx.TimeoutException)
    )


@dataclass(eq=False, slots=True)
class Replica:
    """One upstream server with its own budget forcer and capper, and its counts."""

    server: Server
    forcer: Forcer
    capper: Capper
    up: bool = True
    in_flight: int = 0
    served: int = 0
    failed: int = 0

    @property
    def url(self) -> str:
        return self.server.base_url

    def row(self) -> dict[str, Any]:
        """The replica in ``/thinkq/state``."""
        return {
            "url": self.url, "up": self.up, "in_flight": self.in_flight,
            "served": self.served, "failed": self.failed,
        }  # fmt: skip


class Replicas:
    """The replicas behind the gateway's queue (see the module docstring).

    Parameters
    ----------
    replicas:
        One or more, in the order given (``--upstream``).
    queue:
        The central queue in front of their slots (resized as replicas come and go).
    probe_every:
        Seconds between health probes (only with more than one replica).
    changed:
        Called with the number of replicas up whenever it changes.
    """

    def __init__(
        self,
        replicas: Sequence[Replica],
        *,
        queue: Queue | None = None,
        probe_every: float = DEFAULT_PROBE_EVERY,
        changed: Callable[[int], None] | None = None,
    ) -> None:
        if not replicas:
            raise ValueError("replicas: expected at least one")
        if not probe_every > 0:
            raise ValueError(f"probe_every: must be > 0 seconds, got {probe_every!r}")
        self.all = tuple(replicas)
        self.several = len(self.all) > 1
        self.probe_every = probe_every
        self.changed = changed
        self.queue = queue
        #: Slots of each replica: the queue's at the start over the replicas.
        self.slots = 1 if queue is None else max(queue.concurrency // len(self.all), 1)
        self._probing: asyncio.Task[None] | None = None

    @classmethod
    def over(
        cls,
        servers: Sequence[Server],
        *,
        template: Template | None,
        suppress_ids: Sequence[int] | None,
        budget_field: str,
        queue: Queue | None = None,
        probe_every: float = DEFAULT_PROBE_EVERY,
        changed: Callable[[int], None] | None = None,
    ) -> Replicas:
        """Replicas of ``servers``, each with its own :class:`Forcer` and :class:`Capper`."""
        replicas = [
            Replica(s, Forcer(s, template=template, suppress_ids=suppress_ids),
                    Capper(s, field=budget_field))
            for s in servers
        ]  # fmt: skip
        return cls(replicas, queue=queue, probe_every=probe_every, changed=changed)

    def __len__(self) -> int:
        return len(self.all)

    @property
    def up(self) -> int:
        """How many replicas are in rotation."""
        return sum(r.up for r in self.all)

    def pick(self) -> Replica:
        """The replica in rotation with the fewest requests in flight (ties: fewest served)."""
        if not self.several:
            return self.all[0]
        return min((r for r in self.all if r.up), key=lambda r: (r.in_flight, r.served))

    def failed(self, replica: Replica, exc: ServerError) -> bool:
        """Note that ``replica`` failed a request with ``exc``; whether to serve the
        request again on another replica (its connection failed and one is up)."""
        replica.failed += 1
        if not self.several:
            return False
        gone = connection_failed(exc)
        if gone or (exc.status is not None and exc.status >= 500):
            self._take_out(replica, str(exc))
        return gone and any(r.up and r is not replica for r in self.all)

    def _take_out(self, replica: Replica, why: str) -> None:
        if not replica.up or self.up <= 1:
            return  # already out, or the last one up: it stays (502s as with one upstream)
        replica.up = False
        log.warning("replica %s out of rotation: %s", replica.url, why)
        self._changed()

    def _bring_back(self, replica: Replica) -> None:
        if replica.up:
            return
        replica.up = True
        log.info("replica %s back in rotation", replica.url)
        self._changed()

    def _changed(self) -> None:
        if self.queue is not None:
            self.queue.resize(self.slots * self.up)
        if self.changed is not None:
            self.changed(self.up)

    # ------------------------------------------------------------------ probes

    async def probe(self, replica: Replica) -> None:
        """Ask ``replica`` for its models once; bring it back, or take it out if it
        refuses the connection or answers 5xx (a slow answer is not a failure)."""
        try:
            await asyncio.wait_for(replica.server.models(), timeout=self.probe_every)
        except TimeoutError:
            return  # slow is not down
        except ServerError as exc:
            if connection_failed(exc) or (exc.status is not None and exc.status >= 500):
                self._take_out(replica, f"probe: {exc}")
            return
        self._bring_back(replica)

    async def probe_all(self) -> None:
        """Probe every replica out of rotation at once."""
        await asyncio.gather(*(self.probe(r) for r in self.all if not r.up))

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(self.probe_every)
            await self.probe_all()

    def start(self) -> None:
        """Start probing (with more than one replica); every replica's forcer suppresses
        the ids the first one's found (one model behind them all)."""
        for replica in self.all:
            replica.forcer.suppress_ids = self.all[0].forcer.suppress_ids
        if self.several and self._probing is None:
            self._probing = asyncio.create_task(self._probe_forever())

    async def stop(self) -> None:
        """Stop probing and close every replica's connections."""
        if self._probing is not None:
            self._probing.cancel()
            await asyncio.gather(self._probing, return_exceptions=True)
            self._probing = None
        await asyncio.gather(*(r.server.aclose() for r in self.all))

    # ------------------------------------------------------------------ reporting

    def rows(self) -> list[dict[str, Any]]:
        """Every replica as ``/thinkq/state`` shows it."""
        return [r.row() for r in self.all]

    def register(self, registry: CollectorRegistry) -> None:
        """Gauges per replica, read when ``/metrics`` is scraped: ``thinkq_replica_up``,
        ``thinkq_replica_in_flight``, ``thinkq_replica_served``, ``thinkq_replica_failed``
        (label ``replica``: its URL)."""
        for name, what, read in (
            ("up", "1 while the replica is in rotation.", lambda r: float(r.up)),
            ("in_flight", "Requests in flight on the replica.", lambda r: float(r.in_flight)),
            ("served", "Requests the replica served.", lambda r: float(r.served)),
            ("failed", "Requests that failed on the replica.", lambda r: float(r.failed)),
        ):
            gauge = Gauge(f"thinkq_replica_{name}", what, ["replica"], registry=registry)
            for replica in self.all:
                gauge.labels(replica.url).set_function(_reader(read, replica))


def _reader(read: Callable[[Replica], float], replica: Replica) -> Callable[[], float]:
    return lambda: read(replica)
