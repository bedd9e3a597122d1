"""The fleet's load from the shared per-second counts: pure functions.

:func:`estimate` is :class:`~thinkq.serve.estimator.Estimator`'s rule applied to the
arrivals every member reported, one row per second:

* the rate is the arrivals of the window over its length, with the profile's rate
  worth ``prior_time`` seconds of observation while less than a window has been
  observed (since the counts' epoch);
* when the last ``horizon`` seconds hold a count that a Poisson count at that rate
  would reach with probability below
  :data:`~thinkq.serve.estimator.CHANGE_LEVEL` (either tail), the load has changed
  and the rate is that horizon's alone;
* the shares are the window's type counts with one pseudo-query spread over the
  profile's shares.

It has no state: any member holding the same counts computes the same estimate, so
the lease can move from one member to another without a jump.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import pdtr, pdtrc

from thinkq._typing import FloatArray
from thinkq.serve.estimator import CHANGE_LEVEL, Estimate
from thinkq.serve.queue import Record

__all__ = ["completions", "ended_per_second", "estimate", "matrix", "per_second"]


def _number(text: str) -> float:
    """A reported count or sum; 0 for anything else (a reporter's bug is not a crash)."""
    try:
        value = float(text)
    except ValueError:
        return 0.0
    return value if math.isfinite(value) and value >= 0 else 0.0


def matrix(hashes: Sequence[Mapping[str, str]], names: Sequence[str]) -> FloatArray:
    """Rows of arrival counts per task (columns in ``names``' order); other tasks, and
    values that are not counts, ignored."""
    rows = np.zeros((len(hashes), len(names)))
    index = {name: k for k, name in enumerate(names)}
    for row, found in zip(rows, hashes, strict=True):
        for task, count in found.items():
            k = index.get(task)
            if k is not None:
                row[k] += _number(count)
    return rows


def estimate(
    counts: FloatArray,
    *,
    observed: float,
    window: float,
    prior_rate: float,
    prior_shares: FloatArray,
    prior_time: float,
    horizon: float | None,
) -> Estimate:
    """The rate and shares from ``counts``, one row per second, the newest last.

    ``observed`` is the seconds the rows cover (at most ``window``; the rows before
    the counts' epoch are zero and not counted as observation).
    """
    totals = counts.sum(axis=1)
    arrivals = float(totals.sum())
    pseudo = min(prior_time, window - observed)
    if observed + pseudo <= 0:
        rate = prior_rate
    else:
        rate = (arrivals + prior_rate * pseudo) / (observed + pseudo)
    if horizon is not None and observed >= 2 * horizon:
        seconds = max(1, round(horizon))
        recent = int(totals[-seconds:].sum())
        expected = rate * seconds
        low = float(pdtr(recent, expected))
        high = float(pdtrc(recent - 1, expected)) if recent > 0 else 1.0
        if min(low, high) < CHANGE_LEVEL:
            rate = recent / seconds
    shares = (counts.sum(axis=0) + prior_shares) / (arrivals + 1.0)
    return Estimate(rate=float(rate), shares=shares, arrivals=round(arrivals))


def completions(
    hashes: Sequence[Mapping[str, str]], names: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per task: requests ended (``n``), their mean service time and thinking tokens."""
    sums = {name: [0.0, 0.0, 0.0] for name in names}
    for found in hashes:
        for field, value in found.items():
            task, _, what = field.rpartition(":")
            if task in sums and what in ("n", "service", "thinking"):
                sums[task][("n", "service", "thinking").index(what)] += _number(value)
    return {
        name: {
            "n": round(n),
            "mean_service": service / n if n else None,
            "mean_thinking": thinking / n if n else None,
        }
        for name, (n, service, thinking) in sums.items()
        if n
    }


def per_second(
    arrivals: Sequence[tuple[float, int]], names: Sequence[str], *, offset: float, started: float
) -> dict[int, dict[str, int]]:
    """``(time, task)`` arrivals as ``{second: {task name: n}}``, in wall seconds
    (``time + offset``), those before ``started`` left out."""
    found: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for when, task in arrivals:
        if when + offset >= started:
            found[math.floor(when + offset)][names[task]] += 1
    return found


def ended_per_second(
    records: Sequence[Record], *, after: float, until: float, offset: float, started: float
) -> dict[int, dict[str, float]]:
    """The served requests that ended in ``(after, until]`` as completion sums per wall
    second: ``{second: {"<task>:n": .., "<task>:service": .., "<task>:thinking": ..}}``."""
    found: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in records:
        end = r.arrival + r.wait + r.service
        if after < end <= until and end + offset >= started:
            sums = found[math.floor(end + offset)]
            sums[f"{r.task}:n"] += 1
            sums[f"{r.task}:service"] += r.service
            sums[f"{r.task}:thinking"] += r.thinking_tokens
    return found
