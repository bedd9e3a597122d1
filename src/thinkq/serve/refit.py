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
others (mean batch above 1.5), the step-time law is refitted too, jointly with the
solo lines: a served time is modelled as (t0_k + c_k l) (1 + beta (n - 1)) with
beta = tau1 / tau(1) in [0, 1], and beta is the value of a grid over [0, 1] whose
solo lines (fitted to the times divided by the slowdown) leave the least squared
error; tau(1) = tau0 + tau1 is kept (only the ratio shapes the queue). Fitting beta
against the profile's solo lines instead would blame the batch for any slowness of
the machine: served beside a busy gateway on two cores, SmolLM2's solo times were
three times the profile's, and beta went to 1. A law given as measured ``steps`` is
kept as it is (only the latency lines are refitted), and a request's solo time is
then the server's virtual clock over its service where the gateway has it
(:meth:`~thinkq.serve.queue.Queue.work`: exact where the batch changed during the
service; its time over the slowdown at its mean batch is low, since tau(1) / tau(n)
is convex in n). With a prompt stage (the table's ``prompt`` = p > 0, kept as it is)
the clock stands still while prompts stall the batch, so a solo time is the clock
over the decode plus p, the request's own prompt at full speed (and without the clock,
its time over the slowdown credits p at full speed rather than at the batch's).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import replace

import numpy as np

from thinkq._typing import FloatArray, IntArray
from thinkq.batching.server import Server
from thinkq.profile import Profile
from thinkq.serve.estimator import Clock

__all__ = ["LatencyRefit", "held_prompt"]

#: One observation: (time, thinking tokens, seconds, mean batch, solo seconds by the clock).
Seen = tuple[float, int, float, float, float]


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
        self._seen: list[deque[Seen]] = [deque() for _ in profile.names]

    def observe(
        self, task: int, tokens: int, seconds: float, batch: float = 1.0, work: float = math.nan
    ) -> None:
        """A request of type ``task`` thought ``tokens`` tokens and took ``seconds`` to
        serve, in a mean batch of ``batch`` requests, ``work`` solo seconds by the
        server's law (NaN: unknown)."""
        self._seen[task].append((self.clock(), tokens, seconds, batch, work))

    def _recent(self) -> list[deque[Seen]]:
        horizon = self.clock() - self.window
        for seen in self._seen:
            while seen and seen[0][0] < horizon:
                seen.popleft()
        return self._seen

    def _columns(self) -> tuple[IntArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        """The window's observations as columns: type, thinking tokens, seconds, batch,
        solo seconds by the server's clock."""
        rows = [(k, *obs[1:]) for k, seen in enumerate(self._recent()) for obs in seen]
        if not rows:
            return np.empty(0, np.intp), np.empty(0), np.empty(0), np.empty(0), np.empty(0)
        columns = zip(*rows, strict=True)
        k, tokens, seconds, batch, work = (np.array(column, np.float64) for column in columns)
        return k.astype(np.intp), tokens, seconds, batch, work

    def server(self) -> Server | None:
        """The profile's server with its step-time law refitted where there is data."""
        server = self.profile.batched
        if server is None or server.steps:  # a measured step table is kept as it is
            return self.profile.server
        k, tokens, seconds, batch, _ = self._columns()
        if np.count_nonzero(batch > 1.5) < self.min_samples:
            return server
        beta = float(min(_BETAS, key=lambda b: self._misfit(k, tokens, seconds, batch, float(b))))
        solo = server.step_time(1)
        return replace(server, tau0=solo * (1.0 - beta), tau1=solo * beta)

    def _misfit(
        self, k: IntArray, l: FloatArray, s: FloatArray, n: FloatArray, beta: float
    ) -> float:
        """Squared error of the served times under the slowdown 1 + beta (n - 1), with
        each type's solo line fitted to the times divided by it (all types at once)."""
        g = 1.0 + beta * (n - 1.0)
        intercept, slope = _lines(k, l, s / g, self.profile.c, self.min_spread)
        return float(np.sum((s - (intercept[k] + slope[k] * l) * g) ** 2))

    def fitted(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """``(t0, c, variance)`` per type: refitted where there is enough data."""
        p = self.profile
        k, l, s, n, work = self._columns()
        counts = np.bincount(k, minlength=p.size)
        ready = counts >= self.min_samples
        if not np.any(ready):
            return p.t0.copy(), p.c.copy(), p.variance.copy()
        server = self.server() if p.batched is not None else None
        if server is not None:  # solo times: undo the batch's slowdown
            speed = server.step_time(1) / server.step_times(n)
            own = server.prompt  # its own prompt ran at full speed (0 without a stage)
            s = s * speed + own * (1.0 - speed)
            if server is p.server:  # the profile's law, kept: its clock where there is one
                s = np.where(np.isfinite(work), work + own, s)
        intercept, slope = _lines(k, l, s, p.c, self.min_spread)
        residuals = s - intercept[k] - slope[k] * l
        spread = np.bincount(k, weights=residuals**2, minlength=p.size) / np.maximum(counts - 1, 1)
        t0: FloatArray = np.where(ready, np.maximum(intercept, 0.0), p.t0)
        c: FloatArray = np.where(ready, slope, p.c)
        variance: FloatArray = np.where(ready, spread, p.variance)
        return t0, c, variance


def held_prompt(server: Server | None, shares: FloatArray, t0: FloatArray) -> Server | None:
    """``server`` with its prompt held below 0.9 E[S(0)] at ``shares`` and refitted lines
    ``t0`` (a prompt is part of every solo time; refitted lines may fall below it)."""
    if server is None or not server.prompt:
        return server
    below = 0.9 * float(np.dot(shares, t0) / np.sum(shares))
    return replace(server, prompt=min(server.prompt, max(below, 0.0)))


#: The ratios tau1 / tau(1) the online refit chooses among (0: perfect batching, 1:
#: no batching gain).
_BETAS = np.linspace(0.0, 1.0, 51)


def _lines(
    k: IntArray, l: FloatArray, z: FloatArray, prior: FloatArray, min_spread: int
) -> tuple[FloatArray, FloatArray]:
    """Each type's line z = t0 + c l by least squares (the ``prior`` slope where its
    thinking lengths span fewer than ``min_spread`` tokens, or the fit is not > 0)."""
    size = prior.size
    count = np.maximum(np.bincount(k, minlength=size), 1)
    mean_l = np.bincount(k, weights=l, minlength=size) / count
    mean_z = np.bincount(k, weights=z, minlength=size) / count
    dl = l - mean_l[k]
    var = np.bincount(k, weights=dl * dl, minlength=size)
    cov = np.bincount(k, weights=dl * (z - mean_z[k]), minlength=size)
    low = np.full(size, np.inf)
    high = np.full(size, -np.inf)
    np.minimum.at(low, k, l)
    np.maximum.at(high, k, l)
    with np.errstate(divide="ignore", invalid="ignore"):
        fitted = cov / var
    slope = np.where((high - low >= min_spread) & (fitted > 0), fitted, prior)
    return mean_z - slope * mean_l, slope
