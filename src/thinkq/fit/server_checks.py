"""The server fit's checks and intervals, per level (:mod:`thinkq.fit.server`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from thinkq._typing import FloatArray
from thinkq.batching.server import Server
from thinkq.fit.latency import fit_line
from thinkq.fit.law import PowerLaw, power_draws
from thinkq.fit.steps import StepData

__all__ = [
    "intervals",
    "level_rows",
    "line_held_out",
    "quadratic_fit",
    "step_line",
    "steps_held_out",
    "worst",
]


def step_line(x: FloatArray, y: FloatArray, w: FloatArray) -> tuple[float, float]:
    """tau0, tau1 of the weighted least-squares line (both >= 0)."""
    tau0, tau1 = fit_line(x, y, w)
    return float(tau0), float(tau1)


def line_held_out(
    data: StepData, w: FloatArray, x_mean: FloatArray, y_mean: FloatArray
) -> FloatArray:
    """Relative error of each level's mean step predicted by the line of the others."""
    errors = np.full(data.levels.size, np.nan)
    if data.levels.size < 3:
        return errors
    for g in range(data.levels.size):
        rest = data.level != g
        tau0, tau1 = step_line(data.batch[rest], data.step[rest], w[rest])
        predicted = tau0 + tau1 * x_mean[g]
        errors[g] = (predicted - y_mean[g]) / y_mean[g]
    return errors


def quadratic_fit(x: FloatArray, y: FloatArray, w: FloatArray) -> FloatArray:
    """tau0, tau1, tau2 of the weighted least-squares quadratic in the batch."""
    design = np.column_stack([np.ones_like(x), x, x * x]) * np.sqrt(w)[:, None]
    coefficients, *_ = np.linalg.lstsq(design, y * np.sqrt(w), rcond=None)
    result: FloatArray = coefficients
    return result


def worst(errors: FloatArray) -> float | None:
    """The largest absolute error, None where none is finite."""
    return float(np.nanmax(np.abs(errors))) if np.isfinite(errors).any() else None


def steps_held_out(x_mean: FloatArray, y_mean: FloatArray) -> FloatArray:
    """Relative error of each interior level's mean step interpolated (linearly in the
    batch, as the profile's ``steps`` are) from the levels beside it: what the measured
    steps predict of a level left out. NaN at the first and the last level, which
    interpolation does not reach."""
    errors = np.full(x_mean.size, np.nan)
    for g in range(1, x_mean.size - 1):
        a, b = g - 1, g + 1
        t = (x_mean[g] - x_mean[a]) / (x_mean[b] - x_mean[a])
        errors[g] = (y_mean[a] + t * (y_mean[b] - y_mean[a]) - y_mean[g]) / y_mean[g]
    return errors


def intervals(
    data: StepData,
    w: FloatArray,
    count: int,
    level: float,
    rng: np.random.Generator,
    power: PowerLaw | None,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals from ``count`` refits to requests resampled within each
    level: tau0 and tau1 of the line, and tau(1), tau(B) of the law in force (with
    beta and gamma where it is the bent law)."""
    picks = []
    for g in range(data.levels.size):
        members = np.flatnonzero(data.level == g)
        picks.append(members[rng.integers(0, members.size, size=(count, members.size))])
    index = np.concatenate(picks, axis=1)
    x, y, weights = data.batch[index], data.step[index], w[index]
    tau0, tau1 = (np.asarray(v, np.float64) for v in fit_line(x, y, weights))
    draws = {
        "tau0": tau0,
        "tau1": tau1,
        "step_1": tau0 + tau1,
        "step_slots": tau0 + tau1 * data.slots,
    }
    if power is not None:
        step_1, beta, gamma = power_draws(x, y, weights)
        at_slots = np.array(
            [
                PowerLaw(a, b, g)(np.array([float(data.slots)]))[0]
                for a, b, g in zip(step_1, beta, gamma, strict=True)
            ]
        )
        draws |= {"step_1": step_1, "step_slots": at_slots, "beta": beta, "gamma": gamma}
    tail = (1 - level) / 2
    return {
        key: (float(np.quantile(v, tail)), float(np.quantile(v, 1 - tail)))
        for key, v in draws.items()
    }


def level_rows(
    data: StepData, server: Server, x_mean: FloatArray, y_mean: FloatArray, held: FloatArray
) -> list[dict[str, Any]]:
    slot_mean = data.means(data.slot_batch)
    latency = data.means(data.latency)
    rows = []
    for g, n in enumerate(data.levels):
        y = data.step[data.level == g]
        predicted = server.step_time(float(x_mean[g]))
        rows.append(
            {
                "concurrency": int(n),
                "requests": int(y.size),
                "batch": float(x_mean[g]),
                "batch_slots": None if np.isnan(slot_mean[g]) else float(slot_mean[g]),
                "step": float(y_mean[g]),
                "step_sd": float(np.std(y, ddof=1)) if y.size > 1 else None,
                "fitted_step": predicted,
                "residual": (float(y_mean[g]) - predicted) / predicted,
                "held_out_error": None if np.isnan(held[g]) else float(held[g]),
                "latency": float(latency[g]),
                "latency_ratio": float(latency[g] / latency[0]),
                "fitted_ratio": predicted / server.step_time(float(x_mean[0])),
            }
        )
    return rows
