"""The batched server's event loop with a prompt stage (compiled with numba).

The server's ``prompt`` = p > 0 (:class:`~thinkq.batching.server.Server`, llama.cpp's
semantics): a query that takes a slot first has p seconds of prompt computed alone, at
full speed, one prompt at a time in the order the slots were taken, while every decoding
sequence waits; then it decodes the rest of its solo time, max(work - p, 0), with the
others as in :mod:`thinkq.batching.kernel` (each of the n decoding advances at
tau(1) / tau(n)). The decode phase keeps that module's virtual clock and heap; the
prompts are a FIFO of pending completions, and the clock stands still while one is
pending. Since slots are taken in arrival order and prompts complete in that order, the
m pending prompts are the m queries started last: the loop keeps m and the time left of
the first (``state[5]``), and adds the time spent decoding (``state[6]``: time with one
or more decoding and no prompt pending, over which the step-time integral runs).

:func:`advance_prompt` takes the arrays and state of ``kernel._advance`` (a longer state:
seven floats and four integers, the fourth the number of pending prompts), so a block
ends and the next picks up with prompts pending. This is ``benchmarks/batch_prefill.py``'s
``serve`` with every prompt p, event for event: like its heap, the decoders' heap breaks a
tie in finishing value by query index (the block handoff keeps the decoders' order).
"""

from __future__ import annotations

import numba
import numpy as np

from thinkq._typing import FloatArray, IntArray

__all__ = ["advance_prompt", "checked_prompt"]


def checked_prompt(prompt: float) -> float:
    """``prompt`` as seconds, or a one-line error naming it."""
    p = float(prompt)
    if not (np.isfinite(p) and p >= 0):
        raise ValueError(f"prompt: must be finite and >= 0 (seconds), got {prompt!r}")
    return p


@numba.njit(cache=True, nogil=True)
def _before(key: float, who: int, other: float, whom: int) -> bool:
    """(key, who) comes first: the earlier finish, the earlier query on a tie (a tie is
    common here: decodes of 0 joined while the clock stood still)."""
    return key < other or (key == other and who < whom)


@numba.njit(cache=True, nogil=True)
def _push(keys: FloatArray, ids: IntArray, n: int, key: float, who: int) -> None:
    """Add (key, who) to the binary heap of the first n entries (room for n + 1)."""
    k = n
    while k > 0:
        parent = (k - 1) >> 1
        if _before(keys[parent], ids[parent], key, who):
            break
        keys[k] = keys[parent]
        ids[k] = ids[parent]
        k = parent
    keys[k] = key
    ids[k] = who


@numba.njit(cache=True, nogil=True)
def _pop(keys: FloatArray, ids: IntArray, n: int) -> None:
    """Remove the root of the binary heap of the first n entries (n >= 1)."""
    n -= 1
    key, who = keys[n], ids[n]
    k = 0
    while True:
        child = 2 * k + 1
        if child >= n:
            break
        if child + 1 < n and _before(keys[child + 1], ids[child + 1], keys[child], ids[child]):
            child += 1
        if _before(key, who, keys[child], ids[child]):
            break
        keys[k] = keys[child]
        ids[k] = ids[child]
        k = child
    if n > 0:
        keys[k] = key
        ids[k] = who


# long: one event loop (arrivals, prompt completions, departures); numba compiles it as
# one unit, and the state it reads and writes back stays in one place
@numba.njit(cache=True, nogil=True)
def advance_prompt(
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
    prompt: float,
    final: bool,
) -> None:
    """``kernel._advance`` with every query's first ``prompt`` seconds a prompt (above)."""
    total = arrivals.shape[0]
    now, clock, area, busy, steps = state[0], state[1], state[2], state[3], state[4]
    left, decoding = state[5], state[6]
    n, started, i, m = counts[0], counts[1], counts[2], counts[3]
    solo = table[1] if table.shape[0] > 1 else tau0 + tau1
    while i < total or (final and n + m > 0):
        tau = table[n] if n < table.shape[0] else tau0 + tau1 * n
        speed = solo / tau if n > 0 and m == 0 else 0.0
        if m > 0:  # the first pending prompt, the decoders waiting
            done = now + left
        elif n > 0:  # rounding can carry the clock a hair past the heap minimum
            done = now + max(keys[0] - clock, 0.0) / speed
        else:
            done = np.inf
        arrive = arrivals[i] if i < total else np.inf
        event = min(arrive, done)
        step = event - now
        area += (n + m) * step
        if n + m > 0:
            busy += step
        if m > 0:
            left -= step
        elif n > 0:
            clock += step * speed
            steps += tau * step
            decoding += step
        now = event
        if arrive <= done:
            if n + m < slots:  # a slot is free: its prompt joins the FIFO
                left = prompt if m == 0 else left
                m += 1
                start[i] = now
                started = i + 1
            i += 1
            continue
        if m > 0:  # the first prompt is done: its query decodes
            first = started - m
            _push(keys, ids, n, clock + max(work[first] - prompt, 0.0), first)
            n += 1
            m -= 1
            left = prompt
            continue
        clock = keys[0]  # a query leaves
        out[ids[0]] = now
        _pop(keys, ids, n)
        n -= 1
        if started < i:  # the head of the FIFO queue takes the freed slot (no prompt pending)
            left, m = prompt, 1
            start[started] = now
            started += 1
    state[0], state[1], state[2], state[3], state[4] = now, clock, area, busy, steps
    state[5], state[6] = left, decoding
    counts[0], counts[1], counts[2], counts[3] = n, started, i, m
