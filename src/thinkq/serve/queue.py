"""The gateway's queue: the FIFO queue of the model, in front of ``concurrency`` slots.

Requests wait in arrival order and go upstream ``concurrency`` at a time (1 is the
paper's M/G/1 server). A waiting request that is cancelled (its client disconnected)
leaves the queue at once; a finished request hands its slot straight to the next
waiting one, so the queue never stalls, whatever the outcome of a request. With
several replicas the slots are all of theirs (one central queue: M/G/c for c one-slot
replicas, ``docs/fleet.md``), and :meth:`Queue.resize` follows the replicas that are up.

:attr:`Queue.acquired` and :attr:`Queue.released` count the slots taken and given
back since start (``busy`` is their difference), so a test can see that every
request gives its slot back exactly once.

The queue also integrates the number in service over time (:meth:`Queue.area`), so
that a request knows the mean batch it was served in: the number of requests the
upstream decoded beside it, on average over its service. Given the server's law it
also integrates the speed tau(1) / tau(n) of each request in service
(:meth:`Queue.work`, the batched model's virtual clock): a request's solo service is
its change over the service, exact where the batch changed while it was served,
where its time over the slowdown at its mean batch is low (tau(1) / tau(n) is convex
in n). With a prompt stage (:attr:`Queue.stall` seconds, the server's ``prompt`` in
force) each slot taken stalls the clock for that long after the prompts already
pending, as llama.cpp's batch waits for a prompt: a request's clock then counts its
decode alone, and its solo time is that plus its own prompt.

Every request leaves a :class:`~thinkq.serve.records.Record` (arrival, wait,
service time, type, budget, thinking tokens, outcome and mean batch), kept by
:class:`~thinkq.serve.records.Records` for the window's measured figures (both
importable from here too).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from thinkq.batching.server import Server
from thinkq.errors import QueueFullError
from thinkq.serve.estimator import Clock
from thinkq.serve.records import Record, Records

__all__ = ["Queue", "Record", "Records"]


class Queue:
    """FIFO admission to ``concurrency`` slots, with at most ``max_queue`` waiting.

    Parameters
    ----------
    concurrency:
        Requests served at the same time (>= 1).
    max_queue:
        Requests allowed to wait; one more is refused with :class:`QueueFullError`.
    clock:
        Monotonic time in seconds, for :meth:`area`.
    """

    def __init__(self, *, concurrency: int, max_queue: int, clock: Clock = time.monotonic) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency: must be >= 1, got {concurrency}")
        if max_queue < 0:
            raise ValueError(f"max_queue: must be >= 0, got {max_queue}")
        self.concurrency = concurrency
        self.max_queue = max_queue
        self.busy = 0
        #: Slots taken since start (a free slot, or one handed over by :meth:`release`).
        self.acquired = 0
        #: Calls of :meth:`release` since start.
        self.released = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._clock = clock
        self._area = 0.0
        self._since = clock()
        self._speeds: tuple[float, ...] = ()
        self._work = math.nan
        #: Seconds each slot taken stalls the clock (a prompt stage's prompt, in force).
        self.stall = 0.0
        self._stalled_until = -math.inf

    def keep_work(self, server: Server | None) -> None:
        """Integrate :meth:`work` by ``server``'s law from now on (``None``, or a server
        with fewer slots than this queue serves at once: no law, :meth:`work` NaN)."""
        if server is None or server.slots < self.concurrency:
            self._speeds, self._work = (), math.nan
            return
        self.area()
        self._speeds = (0.0, *(server.speed(n) for n in range(1, self.concurrency + 1)))
        self._work, self.stall = 0.0, server.prompt

    def area(self) -> float:
        """The integral of ``busy`` over time since start (request-seconds in service)."""
        now = self._clock()
        elapsed = now - self._since
        self._area += self.busy * elapsed
        if self._speeds:  # the clock stands still while a prompt stalls the batch
            if self._stalled_until > self._since:
                elapsed = max(now - self._stalled_until, 0.0)
            self._work += self._speeds[min(self.busy, len(self._speeds) - 1)] * elapsed
        self._since = now
        return self._area

    def _took(self) -> None:
        """A slot was taken: with a prompt stage its prompt stalls the clock for
        :attr:`stall` seconds after the prompts already pending (one at a time)."""
        self.acquired += 1
        if self.stall > 0.0 and self._speeds:
            self.area()  # the clock up to now, before this slot's prompt stalls it
            self._stalled_until = max(self._since, self._stalled_until) + self.stall

    def work(self) -> float:
        """The server's virtual clock: the integral of tau(1) / tau(busy) over time since
        start, the solo-seconds of work each request in service has done (the batched
        model's semantics); NaN without ``speeds``."""
        return self.marks()[1]

    def marks(self) -> tuple[float, float]:
        """:meth:`area` and :meth:`work` now, brought up to date once."""
        return self.area(), self._work

    def _add_busy(self, change: int) -> None:
        self.area()
        self.busy += change

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot."""
        return len(self._waiting)

    def full(self) -> bool:
        """Whether a new request would be refused."""
        return self.busy >= self.concurrency and len(self._waiting) >= self.max_queue

    def enter(self) -> asyncio.Future[None] | None:
        """Take a free slot (``None``) or join the queue (a future, done at one's turn).

        Synchronous, so that checking :meth:`full` and entering are one step.

        Raises
        ------
        QueueFullError
            ``max_queue`` requests are already waiting.
        """
        if self.busy < self.concurrency and not self._waiting:
            self._add_busy(1)
            self._took()
            return None
        if len(self._waiting) >= self.max_queue:
            raise QueueFullError(
                f"overloaded: {len(self._waiting)} requests are already waiting", retry_after=1
            )
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        return turn

    def leave(self, turn: asyncio.Future[None]) -> None:
        """Give up a place in the queue; a slot handed over meanwhile is passed on."""
        if turn.done() and not turn.cancelled():
            self.release()
            return
        turn.cancel()
        if turn in self._waiting:
            self._waiting.remove(turn)

    async def acquire(self) -> None:
        """Wait for a slot in FIFO order; a cancelled waiter leaves the queue.

        Raises
        ------
        QueueFullError
            ``max_queue`` requests are already waiting.
        """
        turn = self.enter()
        if turn is None:
            return
        try:
            await turn
        except asyncio.CancelledError:
            self.leave(turn)
            raise

    def release(self) -> None:
        """Hand the slot to the first waiting request, or free it (and keep it free while
        more are busy than :meth:`resize` allows)."""
        self.released += 1
        while self._waiting and self.busy <= self.concurrency:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                self._took()
                return
        self._add_busy(-1)

    def resize(self, concurrency: int) -> None:
        """Serve ``concurrency`` requests at once from now on (a replica left or came
        back): more slots hand themselves to waiting requests at once; fewer are taken
        back as the requests in them finish."""
        if concurrency < 1:
            raise ValueError(f"concurrency: must be >= 1, got {concurrency}")
        self.concurrency = concurrency
        while self.busy < concurrency and self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                self._add_busy(1)
                self._took()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """``async with queue.slot():`` hold a slot for the body of the block."""
        await self.acquire()
        try:
            yield
        finally:
            self.release()
