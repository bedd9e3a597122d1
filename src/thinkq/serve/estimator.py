"""Online estimates of the load the gateway sees: arrival rate and type shares.

The solver needs the operating point of section II: the arrival rate lambda and the
shares pi_k. The gateway estimates both over a sliding window of arrivals:

* ``rate`` is the number of arrivals in the last ``window`` seconds divided by the
  window, in queries per second; during the first window the profile's own rate
  counts as ``prior_time`` seconds of observation (or the part of the window not yet
  observed, if shorter), so the estimate moves from the prior to the observation
  instead of jumping on the first arrivals, and the prior fades after ``prior_time``
  seconds even when the window is much longer (a Gamma prior on the Poisson rate);
* ``shares`` are the type counts in the window with one pseudo-query spread over the
  profile's shares, so that a type not seen lately keeps a small positive share and
  the estimate tends to the observed mix as queries accumulate.

A window long enough to average out the noise of Poisson arrivals is too slow to see
the load change: after a burst it would go on counting the burst for a whole window.
So, with a ``horizon`` (the gateway's re-solve period), each estimate also tests
whether the arrivals of the last ``horizon`` seconds fit the window's rate: when
their count is so far from it that a Poisson count at that rate would fall there
with probability below :data:`CHANGE_LEVEL` (either tail), the load has changed, and
the rate is measured from ``horizon`` seconds ago only (the arrivals since that cut
over the time since it), until the window has passed the cut. A burst is therefore
forgotten at the first estimate whose horizon no longer holds it (at most two
re-solve periods after it ends), and steady load keeps the whole window. The
shares keep the whole window: the mix moves slowly, and a few arrivals after a cut
would make it noisy.

The clock is injectable (seconds, monotonic) so that tests control time.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from itertools import islice
from typing import NamedTuple

import numpy as np
from scipy.special import pdtr, pdtrc

from thinkq._typing import FloatArray

__all__ = ["CHANGE_LEVEL", "Clock", "Estimate", "Estimator"]

#: Tail probability (each tail) below which the last horizon's count means a change.
CHANGE_LEVEL = 1e-4

#: A source of monotonic time, in seconds.
Clock = Callable[[], float]


class Estimate(NamedTuple):
    """The load over the window: ``rate`` (1/s), ``shares`` (sum 1), ``arrivals`` counted."""

    rate: float
    shares: FloatArray
    arrivals: int


class Estimator:
    """Sliding-window estimates of the arrival rate and the type shares.

    Parameters
    ----------
    prior_rate:
        The rate assumed for the part of the first window not yet observed (the
        profile's), queries per second.
    prior_shares:
        The shares the pseudo-query is spread over (the profile's), summing to 1.
    window:
        Length of the sliding window, seconds.
    clock:
        Monotonic time in seconds (default :func:`time.monotonic`).
    horizon:
        Seconds of recent arrivals tested against the window's rate at each
        :meth:`estimate` (the re-solve period); ``None``: no test, the window alone.
    prior_time:
        Seconds of observation the prior rate is worth (at most ``window``; ``None``:
        the whole window).
    """

    def __init__(
        self,
        *,
        prior_rate: float,
        prior_shares: FloatArray,
        window: float,
        clock: Clock = time.monotonic,
        horizon: float | None = None,
        prior_time: float | None = None,
    ) -> None:
        if not window > 0:
            raise ValueError(f"window: must be > 0 seconds, got {window!r}")
        if prior_time is not None and not prior_time >= 0:
            raise ValueError(f"prior_time: must be >= 0 seconds, got {prior_time!r}")
        self.prior_time = window if prior_time is None else min(prior_time, window)
        if horizon is not None and not 0 < horizon < window:
            raise ValueError(f"horizon: must be > 0 and < window seconds, got {horizon!r}")
        self.prior_rate = prior_rate
        self.prior_shares = np.asarray(prior_shares, dtype=np.float64)
        self.window = window
        self.clock = clock
        self.horizon = horizon
        self.started = clock()
        #: When the load last changed (the rate counts arrivals since), or ``None``.
        self.since: float | None = None
        #: Changes detected since start.
        self.changes = 0
        # the window's arrivals: their times and types, two deques of numbers (pairs
        # would be a container the cyclic collector tracks, for a minute, per request)
        self._times: deque[float] = deque()
        self._tasks: deque[int] = deque()
        self._counts = [0] * self.prior_shares.size  # a list: += 1 on it is O(1) and cheap
        self._before = 0  # arrivals in the window older than ``since``
        #: Arrivals counted since start.
        self.counted = 0

    def arrival(self, task: int) -> None:
        """Count one arrival of type ``task`` (an index into the profile's tasks) now."""
        self._times.append(self.clock())
        self._tasks.append(task)
        self._counts[task] += 1
        self.counted += 1

    def recorded(self, after: int) -> tuple[int, list[tuple[float, int]]]:
        """``(n, arrivals)``: the arrivals counted since start, and those after the first
        ``after`` of them still in the window as ``(time, task)``, oldest first."""
        self._expire(self.clock())
        new = min(self.counted - after, len(self._times))
        times, tasks = islice(reversed(self._times), new), islice(reversed(self._tasks), new)
        return self.counted, list(zip(times, tasks, strict=True))[::-1]

    def _expire(self, now: float) -> None:
        start = now - self.window
        times, tasks = self._times, self._tasks
        while times and times[0] < start:
            when, task = times.popleft(), tasks.popleft()
            self._counts[task] -= 1
            if self.since is not None and when < self.since:
                self._before -= 1
        if self.since is not None and self.since <= start:
            self.since, self._before = None, 0  # the cut left the window

    def _rate(self, now: float) -> float:
        """Arrivals per second over the window, or since the last change."""
        if self.since is not None:
            return (len(self._times) - self._before) / (now - self.since)
        observed = min(now - self.started, self.window)
        pseudo = min(self.prior_time, self.window - observed)
        if observed + pseudo <= 0:
            return self.prior_rate
        return (len(self._times) + self.prior_rate * pseudo) / (observed + pseudo)

    def _changed(self, now: float, rate: float) -> bool:
        """Whether the last ``horizon`` seconds' count is implausible at ``rate``."""
        assert self.horizon is not None
        if now - (self.started if self.since is None else self.since) < 2 * self.horizon:
            return False  # too little history before the horizon to compare with
        cut = now - self.horizon
        recent = 0
        for when in reversed(self._times):
            if when < cut:
                break
            recent += 1
        expected = rate * self.horizon
        low = float(pdtr(recent, expected))
        high = float(pdtrc(recent - 1, expected)) if recent > 0 else 1.0
        return min(low, high) < CHANGE_LEVEL

    def estimate(self) -> Estimate:
        """The rate and shares now (see the module docstring)."""
        now = self.clock()
        self._expire(now)
        rate = self._rate(now)
        if self.horizon is not None and self._changed(now, rate):
            self.since, self.changes = now - self.horizon, self.changes + 1
            self._before = sum(1 for when in self._times if when < self.since)
            rate = self._rate(now)
        arrivals = len(self._times)
        shares = (np.array(self._counts, dtype=np.float64) + self.prior_shares) / (arrivals + 1.0)
        return Estimate(rate=float(rate), shares=shares, arrivals=arrivals)
