"""The batched server simulated event by event (compiled with numba).

Queries arrive at ``arrivals`` (sorted, seconds) with solo service times ``work``.
While n are in service, each advances at speed tau(1) / tau(n) (its solo speed
divided by the batch's slowdown), so all of them progress alike: a *virtual clock*
V that runs at that speed tells every query's progress at once. A query that enters
service at virtual time V finishes when the clock reaches V + s; a binary heap keeps
the in-service queries by that finishing value. The next event is the earlier of the
next arrival and the heap's minimum reached at the current speed; at most B queries
are in service and the rest wait in FIFO order, which here is simply arrival order
(queued queries are always the latest arrivals not yet started). O(log B) per event.

:func:`departures` runs a whole stream at once. :class:`BatchedQueue` runs it block
by block (the simulator's bounded memory): each block stops at its last arrival, and
the queries still in the system move to the front of the next block's arrays with the
server's state (heap, clocks), times shifted so that the block starts at 0. It also
integrates the number in service over time, for the mean batch and step time.

With a prompt stage (``prompt`` = p > 0: :mod:`thinkq.batching.kernel_prompt`) a query
that takes a slot first has p seconds of prompt computed alone, one prompt at a time,
while the decoding sequences wait, then decodes max(work - p, 0) as above (a solo time
below p takes p). A query is in service from the moment it takes its slot, prompt
included (``wait``, ``area``, ``busy``); the step-time integral ``steps`` runs over the
*decode* time only (one or more decoding, no prompt pending), reported as ``decode``:
``steps / decode`` is the mean decode step. With p = 0 the loop is the one above, bit
for bit, and ``decode`` is ``busy``.

At B = 1 this is the FIFO M/G/1 queue, and departures agree with Lindley's recursion.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from thinkq._typing import FloatArray, IntArray
from thinkq.batching.kernel_prompt import advance_prompt, checked_prompt

__all__ = ["BatchedQueue", "Served", "departures"]

# the kernel's state between calls: floats (now, virtual clock, integral of the number
# in service over time, time with at least one in service, integral of the step time
# while decoding, time left of the first pending prompt, time decoding) and integers
# (decoding, queries started, next arrival, pending prompts); without a prompt stage
# the loop reads the first five and three
_NOW, _CLOCK, _AREA, _BUSY, _STEPS, _LEFT, _DECODE = range(7)
_IN_SERVICE, _STARTED, _NEXT, _PROMPTS = range(4)


# long: one event loop with its heap operations inlined; numba compiles it as one unit
@numba.njit(cache=True, nogil=True)
def _advance(
    arrivals: FloatArray,
    work: FloatArray,
    start: FloatArray,
    out: FloatArray,
    keys: FloatArray,
    ids: IntArray,
    state: FloatArray,
    counts: IntArray,
    slots: int,
    tau0: float,
    tau1: float,
    table: FloatArray,
    final: bool,
) -> None:
    total = arrivals.shape[0]
    now, clock, area, busy, steps = state[0], state[1], state[2], state[3], state[4]
    n, started, i = counts[0], counts[1], counts[2]
    # tau(n): the measured table where it has n, the line tau0 + tau1 n beyond it
    solo = table[1] if table.shape[0] > 1 else tau0 + tau1
    while i < total or (final and n > 0):
        tau = table[n] if n < table.shape[0] else tau0 + tau1 * n
        speed = solo / tau if n > 0 else 0.0
        # rounding can carry the clock a hair past the heap minimum: time must not go back
        finish = now + max(keys[0] - clock, 0.0) / speed if n > 0 else np.inf
        arrive = arrivals[i] if i < total else np.inf
        if arrive <= finish:
            step = arrive - now
            clock += step * speed
            area += n * step
            if n > 0:
                busy += step
                steps += tau * step
            now = arrive
            if n < slots:  # straight into service: sift up
                k = n
                n += 1
                key = clock + work[i]
                while k > 0:
                    parent = (k - 1) >> 1
                    if keys[parent] <= key:
                        break
                    keys[k] = keys[parent]
                    ids[k] = ids[parent]
                    k = parent
                keys[k] = key
                ids[k] = i
                start[i] = now
                started = i + 1
            i += 1
            continue
        area += n * (finish - now)
        busy += finish - now
        steps += tau * (finish - now)
        clock = keys[0]
        now = finish
        out[ids[0]] = now
        n -= 1
        if started < i:  # the head of the FIFO queue takes the freed slot
            key = clock + work[started]
            who = started
            start[started] = now
            started += 1
            n += 1
        else:
            key = keys[n]
            who = ids[n]
        k = 0  # sift down from the root
        while True:
            child = 2 * k + 1
            if child >= n:
                break
            if child + 1 < n and keys[child + 1] < keys[child]:
                child += 1
            if keys[child] >= key:
                break
            keys[k] = keys[child]
            ids[k] = ids[child]
            k = child
        if n > 0:
            keys[k] = key
            ids[k] = who
    state[0] = now
    state[1] = clock
    state[2] = area
    state[3] = busy
    state[4] = steps
    counts[0] = n
    counts[1] = started
    counts[2] = i


def _check(arrivals: FloatArray, work: FloatArray) -> tuple[FloatArray, FloatArray]:
    if arrivals.shape != work.shape:
        raise ValueError("work: must have the shape of arrivals")
    a = np.ascontiguousarray(arrivals, dtype=np.float64)
    s = np.ascontiguousarray(work, dtype=np.float64)
    return a, s


#: The server's law as the loops take it: slots, tau0, tau1, the step table, the prompt.
_Law = tuple[int, float, float, FloatArray, float]


def _loop(
    arrays: tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, IntArray],
    state: FloatArray,
    counts: IntArray,
    law: _Law,
    final: bool,
) -> None:
    """Run the event loop (with the prompt stage only when there is one) on (arrivals,
    work, start, out, keys, ids)."""
    slots, tau0, tau1, table, prompt = law
    if prompt > 0:
        advance_prompt(*arrays, state, counts, slots, tau0, tau1, table, prompt, final)
    else:
        _advance(*arrays, state, counts, slots, tau0, tau1, table, final)


def departures(
    arrivals: FloatArray,
    work: FloatArray,
    *,
    slots: int,
    tau0: float,
    tau1: float,
    table: FloatArray | None = None,
    prompt: float = 0.0,
) -> FloatArray:
    """Departure times (s) of queries arriving at ``arrivals`` with solo times ``work``.

    ``table`` (optional) is tau(n) for n = 0 .. K (:meth:`~thinkq.batching.Server.step_table`);
    beyond it, and without it, the step time is tau0 + tau1 n. ``prompt`` (s) is every
    query's prompt stage (:attr:`~thinkq.batching.Server.prompt`; the module docstring).
    """
    a, s = _check(arrivals, work)
    law = (int(slots), float(tau0), float(tau1), _table(table), checked_prompt(prompt))
    size = min(law[0], a.size) + 1
    out, start = np.empty(a.size), np.empty(a.size)
    keys, ids = np.empty(size), np.empty(size, np.int64)
    state, counts = np.zeros(7), np.zeros(4, np.int64)
    _loop((a, s, start, out, keys, ids), state, counts, law, True)
    return out


def _table(table: FloatArray | None) -> FloatArray:
    return np.ascontiguousarray(np.empty(0) if table is None else table, dtype=np.float64)


class Served(NamedTuple):
    """The queries that left the server in one call, in no particular order.

    ``tags`` are the caller's labels; ``wait`` is the time from arrival to service
    start and ``system`` from arrival to departure (s). ``area`` is the integral of
    the number in service over the call's time, ``busy`` the time with at least one
    in service (s), ``decode`` the time with one or more decoding and no prompt pending
    (``busy`` without a prompt stage) and ``steps`` the integral of the step time tau(n)
    over that decode time (s^2), all up to the block's last arrival (a final drain adds
    nothing).
    """

    tags: IntArray
    wait: FloatArray
    system: FloatArray
    area: float
    busy: float
    steps: float = 0.0
    decode: float = 0.0


class BatchedQueue:
    """The batched server fed block by block (see the module docstring); ``table`` and
    ``prompt`` as in :func:`departures`."""

    def __init__(
        self,
        slots: int,
        tau0: float,
        tau1: float,
        table: FloatArray | None = None,
        prompt: float = 0.0,
    ) -> None:
        self.slots, self.tau0, self.tau1 = int(slots), float(tau0), float(tau1)
        self.table, self.prompt = _table(table), checked_prompt(prompt)
        self.keys, self.ids = np.empty(1), np.empty(1, np.int64)
        self.state, self.counts = np.zeros(7), np.zeros(4, np.int64)
        # the queries still in the system: decoding (heap order), in their prompt, queued
        self.arrivals, self.work, self.start = np.empty(0), np.empty(0), np.empty(0)
        self.tags: IntArray = np.empty(0, np.int64)

    def arrive(self, gaps: FloatArray, work: FloatArray, tags: IntArray) -> Served:
        """Serve a block of arrivals (``gaps`` after the previous arrival, solo ``work``)
        up to its last arrival; the queries that left by then."""
        arrivals = np.cumsum(gaps)
        return self._run(arrivals, work, tags, final=False)

    def drain(self) -> Served:
        """Serve every query still in the system, with no more arrivals."""
        return self._run(np.empty(0), np.empty(0), np.empty(0, np.int64), final=True)

    def _run(self, arrivals: FloatArray, work: FloatArray, tags: IntArray, final: bool) -> Served:
        a, s = _check(np.concatenate((self.arrivals, arrivals)), np.concatenate((self.work, work)))
        tag = np.concatenate((self.tags, tags))
        size = min(self.slots, a.size) + 1
        if self.keys.size < size:  # room for the heap to grow into
            self.keys = np.concatenate((self.keys, np.empty(size - self.keys.size)))
            self.ids = np.concatenate((self.ids, np.empty(size - self.ids.size, np.int64)))
        start = np.concatenate((self.start, np.empty(arrivals.size)))
        out = np.full(a.size, np.nan)
        before = self.state[[_AREA, _BUSY, _STEPS, _DECODE]]
        law = (self.slots, self.tau0, self.tau1, self.table, self.prompt)
        _loop((a, s, start, out, self.keys, self.ids), self.state, self.counts, law, final)
        area, busy, steps, decode = self.state[[_AREA, _BUSY, _STEPS, _DECODE]] - before
        decode = decode if self.prompt > 0 else busy
        if final:
            area = busy = steps = decode = 0.0
        done = ~np.isnan(out)
        served = Served(tag[done], (start - a)[done], (out - a)[done], float(area),
                        float(busy), float(steps), float(decode))  # fmt: skip
        self._keep(a, s, start, tag)
        return served

    def _keep(
        self, arrivals: FloatArray, work: FloatArray, start: FloatArray, tags: IntArray
    ) -> None:
        """Move the queries still present to the front, times shifted to the last arrival:
        the decoding (heap order; in arrival order with a prompt stage, whose heap breaks
        ties by index), the pending prompts (the last m started), the queued."""
        n, started = int(self.counts[_IN_SERVICE]), int(self.counts[_STARTED])
        m = int(self.counts[_PROMPTS])
        decoding, heap = self.ids[:n], np.arange(n)
        if self.prompt > 0:
            decoding = np.sort(decoding)
            heap = np.searchsorted(decoding, self.ids[:n])
        keep = np.concatenate((decoding, np.arange(started - m, arrivals.size)))
        origin, clock = self.state[_NOW], self.state[_CLOCK]
        self.arrivals = arrivals[keep] - origin
        self.start = start[keep] - origin  # set for those in service, not yet for the queued
        self.work, self.tags = work[keep], tags[keep]
        self.keys[:n] -= clock
        self.ids[:n] = heap
        self.state[_NOW] = self.state[_CLOCK] = 0.0
        self.counts[_STARTED] = n + m
        self.counts[_NEXT] = keep.size
