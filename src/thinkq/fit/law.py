"""The step-time law where the line bends: tau(n) = tau(1) + beta (n^gamma - 1) / gamma.

A measured server need not slow down linearly with its batch: llama.cpp with two
threads on two cores takes twice as long a step for two sequences as for one, then
much less than linear beyond (SmolLM2: 7.7, 16.0, 25.6 and 37.0 ms at 1, 2, 4 and 8).
The Box-Cox family in n follows such a bend with one more parameter than the line:

* gamma = 1 is the line tau0 + tau1 n (beta = tau1, tau(1) = tau0 + tau1);
* 0 < gamma < 1 grows ever more slowly; gamma -> 0 is tau(1) + beta log n;
* gamma < 0 levels off at tau(1) + beta / |gamma| (the batch stops costing);
* gamma > 1 grows faster than linear.

beta >= 0 (a step never gets faster with more sequences), so tau(n) never decreases.
For each gamma the other two are a weighted least-squares line in z = (n^gamma - 1) /
gamma; gamma is the best of a grid over [-:data:`GAMMA_MAX`, :data:`GAMMA_MAX`],
refined by a bounded scalar search around it. The held-out check refits the law
without each level in turn (three levels or more must remain: the law has three
parameters), so it needs four levels (``thinkq profile --server-levels 1,2,3,4``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from thinkq._typing import FloatArray, IntArray

__all__ = ["GAMMA_MAX", "PowerLaw", "fit_power", "power_draws", "power_held_out", "power_z"]

#: The shapes searched: gamma in [-GAMMA_MAX, GAMMA_MAX].
GAMMA_MAX = 3.0
_GRID = np.linspace(-GAMMA_MAX, GAMMA_MAX, 61)
#: The most points written as ``steps`` one by one; beyond, a geometric grid to B.
_DENSE = 64


def power_z(n: FloatArray | float, gamma: FloatArray | float) -> FloatArray:
    """(n^gamma - 1) / gamma, log n at gamma = 0 (0 at n = 1); either may be an array."""
    log_n = np.log(n)
    g = np.asarray(gamma, np.float64)
    small = np.abs(g) < 1e-9
    with np.errstate(divide="ignore", invalid="ignore"):
        result: FloatArray = np.where(small, log_n, np.expm1(g * log_n) / np.where(small, 1.0, g))
    return result


@dataclass(frozen=True, slots=True)
class PowerLaw:
    """tau(n) = ``step_1`` + ``beta`` (n^``gamma`` - 1) / ``gamma`` seconds per step."""

    step_1: float
    beta: float
    gamma: float

    def __call__(self, n: FloatArray) -> FloatArray:
        result: FloatArray = self.step_1 + self.beta * power_z(
            np.asarray(n, np.float64), self.gamma
        )
        return result

    def steps(self, slots: int) -> tuple[tuple[int, float], ...]:
        """The law at n = 1 .. B (beyond 64, a geometric grid of 32 more points to B),
        as the ``[server]`` table's ``steps``."""
        dense = np.arange(1, min(slots, _DENSE) + 1)
        extra = np.geomspace(_DENSE, slots, 33)[1:] if slots > _DENSE else np.empty(0)
        n = np.unique(np.concatenate([dense, np.round(extra)]).astype(np.int64))
        return tuple((int(k), float(t)) for k, t in zip(n, self(n.astype(np.float64)), strict=True))

    def misses(self, n: FloatArray, step: FloatArray) -> FloatArray:
        """(measured - law) / law of each level's mean ``step`` at its mean batch ``n``."""
        at = self(n)
        result: FloatArray = (step - at) / at
        return result

    def text(self) -> str:
        """The law in words, for tables and comments."""
        return (
            f"tau(n) = {self.step_1 * 1e3:.4g} ms + {self.beta * 1e3:.4g} ms "
            f"(n^{self.gamma:.3g} - 1) / {self.gamma:.3g}"
        )


def _line_fits(z: FloatArray, y: FloatArray, w: FloatArray) -> tuple[FloatArray, ...]:
    """Weighted least squares y = a + beta z with beta >= 0 along the last axis:
    (a, beta, weighted squared error), one per row."""
    sw = w.sum(axis=-1)
    mz = (w * z).sum(axis=-1) / sw
    my = (w * y).sum(axis=-1) / sw
    dz = z - mz[..., None]
    var = (w * dz * dz).sum(axis=-1)
    cov = (w * dz * (y - my[..., None])).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.where(var > 0, np.maximum(cov / var, 0.0), 0.0)
    a = my - beta * mz
    sse = (w * (y - a[..., None] - beta[..., None] * z) ** 2).sum(axis=-1)
    return a, beta, sse


def fit_power(x: FloatArray, y: FloatArray, w: FloatArray) -> PowerLaw:
    """The law fitted to batches ``x`` (>= 1), steps ``y`` and weights ``w``."""

    def error(gamma: float) -> float:
        return float(_line_fits(power_z(x, gamma), y, w)[2])

    errors = [error(float(g)) for g in _GRID]
    i = int(np.argmin(errors))
    low, high = _GRID[max(i - 1, 0)], _GRID[min(i + 1, _GRID.size - 1)]
    found = optimize.minimize_scalar(error, bounds=(low, high), method="bounded")
    gamma = float(found.x) if float(found.fun) <= errors[i] else float(_GRID[i])
    a, beta, _ = _line_fits(power_z(x, gamma), y, w)
    return PowerLaw(float(a), float(beta), gamma)


def power_held_out(
    batch: FloatArray, step: FloatArray, w: FloatArray, level: IntArray, x_mean: FloatArray,
    y_mean: FloatArray,
) -> FloatArray:  # fmt: skip
    """Relative error of each level's mean step predicted by the law fitted to the
    other levels (NaN where fewer than three would remain)."""
    count = x_mean.size
    errors = np.full(count, np.nan)
    if count < 4:
        return errors
    for g in range(count):
        rest = level != g
        law = fit_power(batch[rest], step[rest], w[rest])
        errors[g] = (float(law(x_mean[g : g + 1])[0]) - y_mean[g]) / y_mean[g]
    return errors


def power_draws(x: FloatArray, y: FloatArray, w: FloatArray) -> tuple[FloatArray, ...]:
    """The law refitted to each row of resampled ``x``, ``y``, ``w`` (one draw a row),
    gamma on the grid: arrays (step_1, beta, gamma), one value per draw."""
    best = np.full(x.shape[0], np.inf)
    out = [np.zeros(x.shape[0]) for _ in range(3)]
    for gamma in _GRID:
        a, beta, sse = _line_fits(power_z(x, float(gamma)), y, w)
        better = sse < best
        best = np.where(better, sse, best)
        for column, value in zip(out, (a, beta, np.full_like(a, gamma)), strict=True):
            column[better] = value[better]
    return tuple(out)
