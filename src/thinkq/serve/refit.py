"""Online refit of each type's latency line t(l) = t0 + c l (eq. 1) from served requests.

The profile's latency line was measured offline; live traffic may differ (other
prompt lengths, other answer lengths, another load on the machine). With refitting
on, the gateway keeps the service times of the last ``window`` seconds per type and
the controller solves with the refitted line:

* with at least ``min_samples`` observations and at least two thinking lengths
  ``min_spread`` tokens apart, ``t0`` and ``c`` by least squares (kept only if
  ``c > 0``);
* otherwise, with at least ``min_samples`` observations, ``t0`` alone with the
  profile's ``c`` (the usual case: a type's budget does not change between
  re-solves, so the slope is not observable);
* the variance of the residuals replaces the profile's ``variance`` (eq. 3);
* a type with fewer observations keeps the profile's values.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from thinkq._typing import FloatArray
from thinkq.profile import Profile
from thinkq.serve.estimator import Clock

__all__ = ["LatencyRefit"]


class LatencyRefit:
    """Sliding-window refit of ``t0``, ``c`` and ``variance`` per task type.

    Parameters
    ----------
    profile:
        The profile whose values are the fallback.
    window:
        Seconds of observations kept.
    clock:
        The gateway's monotonic clock (seconds).
    min_samples:
        Observations of a type needed before its values are refitted.
    min_spread:
        Tokens between the shortest and longest thinking needed to refit ``c``.
    """

    def __init__(
        self,
        profile: Profile,
        *,
        window: float,
        clock: Clock,
        min_samples: int = 10,
        min_spread: int = 8,
    ) -> None:
        self.profile = profile
        self.window = window
        self.clock = clock
        self.min_samples = min_samples
        self.min_spread = min_spread
        self._seen: list[deque[tuple[float, int, float]]] = [deque() for _ in profile.names]

    def observe(self, task: int, tokens: int, seconds: float) -> None:
        """A request of type ``task`` thought ``tokens`` tokens and took ``seconds`` to serve."""
        self._seen[task].append((self.clock(), tokens, seconds))

    def fitted(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """``(t0, c, variance)`` per type: refitted where there is enough data."""
        p = self.profile
        t0, c, variance = p.t0.copy(), p.c.copy(), p.variance.copy()
        horizon = self.clock() - self.window
        for k, seen in enumerate(self._seen):
            while seen and seen[0][0] < horizon:
                seen.popleft()
            if len(seen) < self.min_samples:
                continue
            l = np.array([tokens for _, tokens, _ in seen], dtype=np.float64)
            s = np.array([seconds for _, _, seconds in seen])
            slope = c[k]
            if l.max() - l.min() >= self.min_spread:
                fitted = float(np.polyfit(l, s, 1)[0])
                slope = fitted if fitted > 0 else slope
            intercept = float(np.mean(s - slope * l))
            residuals = s - intercept - slope * l
            t0[k], c[k] = max(intercept, 0.0), slope
            variance[k] = float(np.var(residuals, ddof=1))
        return t0, c, variance
