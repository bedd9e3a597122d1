"""The shared state in Redis: its keys, and a client that never waits long.

Keys (``P`` is the prefix, ``thinkq`` by default; ``S`` a Unix second, the bucket):

=============================  =======  ==============================================
key                            type     contents
=============================  =======  ==============================================
``P:arrivals:S``               hash     task name -> arrivals counted in second ``S``
``P:completions:S``            hash     ``<task>:n``, ``<task>:service`` (seconds),
                                        ``<task>:thinking`` (tokens): sums of the
                                        requests that ended in second ``S``
``P:epoch``                    string   JSON ``{"id": hex, "started": unix seconds}``:
                                        since when the counts are kept (set once)
``P:lease``                    string   the id of the member that solves, with a TTL
``P:plan``                     string   the plan in force, JSON (:mod:`thinkq.fleet.plans`)
=============================  =======  ==============================================

Bucket hashes expire :data:`BUCKET_TTL` seconds after their last write. A reporter
(a gateway, or an enforcer inside another gateway) adds with ``HINCRBY`` and
``HINCRBYFLOAT`` and sets the TTL with ``EXPIRE``, in one pipeline (:meth:`Store.add`),
or in one script that also checks the epoch (:meth:`Store.report`, a member's report).
The window's buckets are read by one script too (:mod:`thinkq.fleet.scripts`).

Every call is bounded: the sockets time out after ``timeout`` seconds, redis-py does
not retry, and each call as a whole is cut after twice that. A failed or slow call
raises :class:`~thinkq.errors.StateError`, which the caller turns into its fallback.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from thinkq.errors import StateError
from thinkq.fleet.scripts import LEASE, READ, REPORT, hashes, report_args

__all__ = ["BUCKET_TTL", "DEFAULT_TIMEOUT", "Store", "check_url", "member_id", "parse_epoch"]

#: Seconds a bucket hash lives after its last write.
BUCKET_TTL = 3600
#: Socket timeout of every Redis call, seconds.
DEFAULT_TIMEOUT = 0.25

T = TypeVar("T")


def member_id() -> str:
    """``host-pid-random``: a member's id, unique in its fleet (the lease's value)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def parse_epoch(raw: str) -> tuple[str, float]:
    """``(id, started)`` of an epoch's document."""
    found = json.loads(raw)
    return str(found["id"]), float(found["started"])


def check_url(url: str) -> str:
    """``url`` if it names a Redis database (``redis://HOST:PORT/DB``), else ValueError."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"state: {url!r} is not a URL ({exc})") from None
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"state: {url!r} must start with redis:// or rediss://")
    if not parts.hostname:
        raise ValueError(f"state: {url!r} names no host")
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise ValueError(f"state: the database in {url!r} must be a number, got {db!r}")
    if port == 0:
        raise ValueError(f"state: the port in {url!r} must be 1-65535")
    return url


class Store:
    """The shared state of one fleet in one Redis database (see the module docstring).

    Parameters
    ----------
    url:
        ``redis://HOST:PORT/DB`` (``rediss://`` for TLS; a password as
        ``redis://:PASSWORD@HOST``).
    prefix:
        The first part of every key.
    timeout:
        Seconds a socket may wait (connect, read, write).
    wall:
        Wall-clock time, Unix seconds (tests inject their own): the buckets are
        seconds of it, shared by every member.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "thinkq",
        timeout: float = DEFAULT_TIMEOUT,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.url = check_url(url)
        self.prefix = prefix
        self.timeout = timeout
        self.wall = wall
        self.client = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0), decode_responses=True,
        )  # fmt: skip
        self._lease = self.client.register_script(LEASE)
        self._report = self.client.register_script(REPORT)
        self._read = self.client.register_script(READ)

    @property
    def shown(self) -> str:
        """The URL without its password, to show."""
        head, at, tail = self.url.rpartition("@")
        return f"{head.partition('://')[0]}://***@{tail}" if at else self.url

    def key(self, *parts: object) -> str:
        """``prefix:part:part...``."""
        return ":".join([self.prefix, *(str(p) for p in parts)])

    async def _call(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run one bounded call; any failure is a :class:`StateError`.

        redis-py sometimes swallows a cancellation that lands inside a call (the task
        goes on, still marked as cancelling; redis/redis-py#2028, #2551): it is raised
        again here, so that the member's loop stops when it is cancelled."""
        try:
            async with asyncio.timeout(2 * self.timeout):
                return await work()
        except (RedisError, OSError, TimeoutError) as exc:
            why = str(exc) or type(exc).__name__
            raise StateError(f"redis at {self.shown}: {why}") from exc
        finally:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError

    async def ping(self) -> None:
        """Raise :class:`StateError` unless Redis answers."""
        await self._call(lambda: cast(Awaitable[Any], self.client.ping()))

    async def aclose(self) -> None:
        """Close the connections."""
        await self.client.aclose()

    # ------------------------------------------------------------------ counts

    def new_epoch(self, started: float) -> str:
        """A new epoch's document: counts are kept since ``started`` (Unix seconds)."""
        return json.dumps({"id": secrets.token_hex(8), "started": started})

    async def epoch(self, started: float) -> tuple[str, float]:
        """The counts' epoch ``(id, started)``, created with ``started`` if absent."""

        async def work() -> Any:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.set(self.key("epoch"), self.new_epoch(started), nx=True)
                pipe.get(self.key("epoch"))
                return await pipe.execute()

        _, raw = await self._call(work)
        return parse_epoch(raw)

    async def add(
        self,
        arrivals: Mapping[int, Mapping[str, int]],
        completions: Mapping[int, Mapping[str, float]] = {},
    ) -> None:
        """Add counts per second: ``{second: {task: n}}`` and ``{second: {field: sum}}``."""
        if not arrivals and not completions:
            return

        async def work() -> Any:
            async with self.client.pipeline(transaction=True) as pipe:
                for second, counts in arrivals.items():
                    key = self.key("arrivals", second)
                    for task, n in counts.items():
                        pipe.hincrby(key, task, n)
                    pipe.expire(key, BUCKET_TTL)
                for second, sums in completions.items():
                    key = self.key("completions", second)
                    for name, value in sums.items():
                        if name.endswith(":service"):
                            pipe.hincrbyfloat(key, name, value)
                        else:
                            pipe.hincrby(key, name, round(value))
                    pipe.expire(key, BUCKET_TTL)
                return await pipe.execute()

        await self._call(work)

    async def report(
        self,
        epoch: str,
        expected: str | None,
        arrivals: Mapping[int, Mapping[str, int]],
        completions: Mapping[int, Mapping[str, float]] = {},
    ) -> str | None:
        """:meth:`add` under an epoch, in one round trip: ``epoch`` (a :meth:`new_epoch`
        document) is created if absent, and the counts are added only if the epoch is
        ``expected`` (the raw document they were counted under). ``None`` when added;
        otherwise the epoch's document, and nothing was added."""
        keys, args = report_args(self.key, arrivals, completions)
        argv = [epoch, expected or "", str(BUCKET_TTL), *args]
        found = await self._call(
            lambda: cast(Awaitable[Any], self._report(keys=[self.key("epoch"), *keys], args=argv))
        )
        return None if found is None else str(found)

    async def buckets(self, kind: str, seconds: Sequence[int]) -> list[dict[str, str]]:
        """The hashes ``P:<kind>:S`` for each second ``S`` (empty where absent)."""
        return (await self.windows(seconds, kinds=(kind,)))[0]

    async def windows(
        self, seconds: Sequence[int], *, kinds: Sequence[str] = ("arrivals", "completions")
    ) -> list[list[dict[str, str]]]:
        """:meth:`buckets` of each of ``kinds``, in one round trip (one script)."""
        keys = [self.key(kind, second) for kind in kinds for second in seconds]
        found = hashes(
            await self._call(lambda: cast(Awaitable[Any], self._read(keys=keys, args=[])))
        )
        n = len(seconds)
        return [found[k * n : (k + 1) * n] for k in range(len(kinds))]

    # ------------------------------------------------------------------ plan

    async def lease(self, member: str, ttl: float) -> bool:
        """Take or keep the lease for ``ttl`` seconds; whether ``member`` holds it."""
        millis = max(1, math.ceil(1000 * ttl))
        held = await self._call(
            lambda: cast(
                Awaitable[Any], self._lease(keys=[self.key("lease")], args=[member, millis])
            )
        )
        return bool(held)

    async def holder(self) -> str | None:
        """The member holding the lease, or ``None``."""
        found = await self._call(lambda: cast(Awaitable[Any], self.client.get(self.key("lease"))))
        return None if found is None else str(found)

    async def publish(self, doc: Mapping[str, Any]) -> None:
        """Write the plan in force."""
        text = json.dumps(doc, allow_nan=False)
        await self._call(lambda: cast(Awaitable[Any], self.client.set(self.key("plan"), text)))

    async def plan(self) -> dict[str, Any] | None:
        """The plan in force, or ``None`` before the first (not JSON: a document that
        :func:`~thinkq.fleet.plans.from_doc` refuses)."""
        raw = await self._call(lambda: cast(Awaitable[Any], self.client.get(self.key("plan"))))
        if raw is None:
            return None
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        return doc if isinstance(doc, dict) else {"version": None}  # not applicable
