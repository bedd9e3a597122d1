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

At B = 1 this is the FIFO M/G/1 queue, and departures agree with Lindley's recursion.
"""

from __future__ import annotations

import numba
import numpy as np

from thinkq._typing import FloatArray

__all__ = ["departures"]


# long: one event loop with its heap operations inlined; numba compiles it as one unit
@numba.njit(cache=True, nogil=True)
def _run(
    arrivals: FloatArray, work: FloatArray, slots: int, tau0: float, tau1: float
) -> FloatArray:
    total = arrivals.shape[0]
    out = np.empty(total)
    size = min(slots, total) + 1
    keys = np.empty(size)  # heap of virtual finishing values
    ids = np.empty(size, np.int64)
    n = 0  # in service
    now = 0.0
    clock = 0.0  # the virtual clock
    i = 0  # next arrival
    started = 0  # queries 0 .. started-1 have entered service
    solo = tau0 + tau1
    while i < total or n > 0:
        speed = solo / (tau0 + tau1 * n) if n > 0 else 0.0
        finish = now + (keys[0] - clock) / speed if n > 0 else np.inf
        arrive = arrivals[i] if i < total else np.inf
        if arrive <= finish:
            clock += (arrive - now) * speed
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
                started = i + 1
            i += 1
            continue
        clock = keys[0]
        now = finish
        out[ids[0]] = now
        n -= 1
        if started < i:  # the head of the FIFO queue takes the freed slot
            key = clock + work[started]
            who = started
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
    return out


def departures(
    arrivals: FloatArray, work: FloatArray, *, slots: int, tau0: float, tau1: float
) -> FloatArray:
    """Departure times (s) of queries arriving at ``arrivals`` with solo times ``work``."""
    if arrivals.shape != work.shape:
        raise ValueError("work: must have the shape of arrivals")
    a = np.ascontiguousarray(arrivals, dtype=np.float64)
    s = np.ascontiguousarray(work, dtype=np.float64)
    result: FloatArray = _run(a, s, int(slots), float(tau0), float(tau1))
    return result
