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

On a batched server (the profile's ``[server]`` table, more than one slot) a request
served in a mean batch of n takes tau(n) / tau(1) times its solo time (the semantics
of ``docs/batching.md``), so the lines above are fitted to the *solo* times: each
observed time divided by that factor. With ``min_samples`` requests served beside
others (mean batch above 1.5), the step-time law is refitted too, by least squares
through the solo point: r - 1 = beta (n - 1), with r the observed time over the
profile's solo line t0 + c l and beta = tau1 / tau(1), keeping tau(1) = tau0 + tau1
(only the ratio shapes the queue); beta is kept in [0, 1] (tau0, tau1 >= 0).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from thinkq._typing import FloatArray
from thinkq.batching.server import Server
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
        self._seen: list[deque[tuple[float, int, float, float]]] = [deque() for _ in profile.names]

    def observe(self, task: int, tokens: int, seconds: float, batch: float = 1.0) -> None:
        """A request of type ``task`` thought ``tokens`` tokens and took ``seconds`` to
        serve, in a mean batch of ``batch`` requests."""
        self._seen[task].append((self.clock(), tokens, seconds, batch))

    def _recent(self) -> list[deque[tuple[float, int, float, float]]]:
        horizon = self.clock() - self.window
        for seen in self._seen:
            while seen and seen[0][0] < horizon:
                seen.popleft()
        return self._seen

    def server(self) -> Server | None:
        """The profile's server with its step-time law refitted where there is data."""
        server = self.profile.batched
        if server is None:
            return self.profile.server
        p = self.profile
        rows = [
            (seconds / (p.t0[k] + p.c[k] * tokens), batch)
            for k, seen in enumerate(self._recent())
            for _, tokens, seconds, batch in seen
            if batch > 1.5 and p.t0[k] + p.c[k] * tokens > 0
        ]
        if len(rows) < self.min_samples:
            return server
        r, n = np.array(rows).T
        beta = float(np.clip(np.dot(r - 1.0, n - 1.0) / np.dot(n - 1.0, n - 1.0), 0.0, 1.0))
        solo = server.step_time(1)
        return Server(server.slots, solo * (1.0 - beta), solo * beta)

    def fitted(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """``(t0, c, variance)`` per type: refitted where there is enough data."""
        p = self.profile
        t0, c, variance = p.t0.copy(), p.c.copy(), p.variance.copy()
        server = self.server() if p.batched is not None else None
        for k, seen in enumerate(self._recent()):
            if len(seen) < self.min_samples:
                continue
            l = np.array([tokens for _, tokens, _, _ in seen], dtype=np.float64)
            s = np.array([seconds for _, _, seconds, _ in seen])
            if server is not None:  # solo times: undo the batch's slowdown
                s = s * np.array([server.speed(batch) for _, _, _, batch in seen])
            slope = c[k]
            if l.max() - l.min() >= self.min_spread:
                fitted = float(np.polyfit(l, s, 1)[0])
                slope = fitted if fitted > 0 else slope
            intercept = float(np.mean(s - slope * l))
            residuals = s - intercept - slope * l
            t0[k], c[k] = max(intercept, 0.0), slope
            variance[k] = float(np.var(residuals, ddof=1))
        return t0, c, variance
