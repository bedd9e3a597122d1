"""Online estimates of the load the gateway sees: arrival rate and type shares.

The solver needs the operating point of section II: the arrival rate lambda and the
shares pi_k. The gateway estimates both over a sliding window of arrivals:

* ``rate`` is the number of arrivals in the last ``window`` seconds divided by the
  window, in queries per second; during the first window, the part not yet observed
  counts at the profile's own rate, so the estimate moves from the prior to the
  observation instead of jumping on the first arrivals;
* ``shares`` are the type counts in the window with one pseudo-query spread over the
  profile's shares, so that a type not seen lately keeps a small positive share and
  the estimate tends to the observed mix as queries accumulate.

The clock is injectable (seconds, monotonic) so that tests control time.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from thinkq._typing import FloatArray

__all__ = ["Clock", "Estimate", "Estimator"]

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
    """

    def __init__(
        self,
        *,
        prior_rate: float,
        prior_shares: FloatArray,
        window: float,
        clock: Clock = time.monotonic,
    ) -> None:
        if not window > 0:
            raise ValueError(f"window: must be > 0 seconds, got {window!r}")
        self.prior_rate = prior_rate
        self.prior_shares = np.asarray(prior_shares, dtype=np.float64)
        self.window = window
        self.clock = clock
        self.started = clock()
        self._arrivals: deque[tuple[float, int]] = deque()
        self._counts = np.zeros(self.prior_shares.size, dtype=np.int64)

    def arrival(self, task: int) -> None:
        """Count one arrival of type ``task`` (an index into the profile's tasks) now."""
        self._arrivals.append((self.clock(), task))
        self._counts[task] += 1

    def _expire(self, now: float) -> None:
        horizon = now - self.window
        while self._arrivals and self._arrivals[0][0] < horizon:
            _, task = self._arrivals.popleft()
            self._counts[task] -= 1

    def estimate(self) -> Estimate:
        """The rate and shares over the last ``window`` seconds."""
        now = self.clock()
        self._expire(now)
        arrivals = len(self._arrivals)
        unobserved = max(0.0, self.window - (now - self.started))
        rate = (arrivals + self.prior_rate * unobserved) / self.window
        shares = (self._counts + self.prior_shares) / (arrivals + 1.0)
        return Estimate(rate=float(rate), shares=shares, arrivals=arrivals)
