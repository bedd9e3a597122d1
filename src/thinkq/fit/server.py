"""The server table: the step-time law tau(n) = tau0 + tau1 n fitted to the server phase.

Each request of ``thinkq profile --slots B`` gives a point (x, y): x the batch it saw
(the time-averaged number of queries in service while it decoded), y its seconds per
decode step (:mod:`.steps`). The law is fitted to the requests by weighted least
squares with tau0 >= 0 and tau1 >= 0 (the latency fit's :func:`~.latency.fit_line`),
each request weighted by the inverse of its level's variance (steps spread more in
bigger batches). Then:

* **intervals**: the requests are resampled within each level and refitted
  (percentile intervals of tau0, tau1, tau(1) and tau(B));
* **goodness of fit**: R^2 over requests; per level the measured mean step against
  tau(mean batch), and chi^2 of the level means on levels - 2 degrees of freedom;
* **linearity**: the quadratic tau0 + tau1 n + tau2 n^2 is fitted beside the line;
  when its extra term is significant (F-test, p < 10^-3) and moves a level's
  prediction by more than :data:`BEND`, the law is not linear on these data, and the
  table's law is the measured step at each level (``steps``, interpolated);
* **held-out check**: with three levels or more, each level is left out in turn, the
  line fitted to the others predicts its mean step, and the relative error is kept;
* **whole queries**: the batched model stretches a query's whole solo time (prompt,
  thinking, answer) by tau(n) / tau(1). Every level asks the same queries, so each
  level's mean latency over the first level's (``latency_ratio``) is set beside the
  law's tau(batch) / tau(batch at the first level) (``fitted_ratio``).

The table written is ``slots = B`` (``--slots``), ``tau0``, ``tau1`` (and ``steps``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from thinkq._typing import FloatArray
from thinkq.batching.server import Server
from thinkq.fit.latency import fit_line
from thinkq.fit.steps import StepData

__all__ = ["BEND", "HELD_OUT_GOAL", "SOLO_RATIO", "ServerFit", "fit_server", "with_solo"]

#: A quadratic term that moves a level's predicted step by more than this (relative)
#: makes the law "not linear" (when it is significant too).
BEND = 0.03
#: The held-out error the fit warns beyond (relative).
HELD_OUT_GOAL = 0.10
#: c / tau(1) outside this range: the two phases disagree on the solo decode speed.
SOLO_RATIO = (0.8, 1.5)


def _weights(data: StepData) -> FloatArray:
    """1 / (the variance of steps in each request's level), floored."""
    var = np.zeros(data.levels.size)
    for g in range(data.levels.size):
        y = data.step[data.level == g]
        floor = (1e-3 * float(np.mean(y))) ** 2 + 1e-18
        var[g] = max(float(np.var(y, ddof=1)) if y.size > 1 else 0.0, floor)
    pooled = float(np.median(var))
    var = np.where(var > 0, var, pooled)
    result: FloatArray = 1.0 / var[data.level]
    return result


def _line(x: FloatArray, y: FloatArray, w: FloatArray) -> tuple[float, float]:
    tau0, tau1 = fit_line(x, y, w)
    return float(tau0), float(tau1)


def _quadratic(x: FloatArray, y: FloatArray, w: FloatArray) -> FloatArray:
    design = np.column_stack([np.ones_like(x), x, x * x]) * np.sqrt(w)[:, None]
    coefficients, *_ = np.linalg.lstsq(design, y * np.sqrt(w), rcond=None)
    result: FloatArray = coefficients
    return result


@dataclass(frozen=True)
class ServerFit:
    """The fitted step-time law, its intervals and its checks (see the module)."""

    server: Server
    data: StepData
    intervals: dict[str, tuple[float, float]]
    r_squared: float | None
    chi2: float | None
    dof: int
    p_value: float | None
    quadratic: tuple[float, float, float]
    quadratic_p: float | None
    linear: bool
    levels: list[dict[str, Any]]
    held_out: float | None
    warnings: tuple[str, ...] = field(default=())
    #: c / tau(1) per task: the concurrency-1 latency slope over the solo step time
    c_ratio: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``server`` part of the fit report."""
        s = self.server
        return {
            "slots": s.slots,
            "tau0": s.tau0,
            "tau1": s.tau1,
            "steps": [list(point) for point in s.steps] or None,
            "intervals": {k: list(v) for k, v in self.intervals.items()},
            "step_1": s.step_time(1),
            "step_slots": s.step_time(s.slots),
            "timing": self.data.timing,
            "batch": "client",
            "requests": self.data.requests,
            "outliers": self.data.outliers,
            "tail": self.data.tail,
            "r_squared": self.r_squared,
            "chi2": self.chi2,
            "dof": self.dof,
            "p_value": self.p_value,
            "linear": self.linear,
            "quadratic": dict(zip(("tau0", "tau1", "tau2"), self.quadratic, strict=True))
            | {"p_value": self.quadratic_p},
            "held_out_max_error": self.held_out,
            "c_over_step_1": self.c_ratio,
            "levels": self.levels,
            "warnings": list(self.warnings),
        }


def _held_out(data: StepData, w: FloatArray, x_mean: FloatArray, y_mean: FloatArray) -> FloatArray:
    """Relative error of each level's mean step predicted by the line of the others."""
    errors = np.full(data.levels.size, np.nan)
    if data.levels.size < 3:
        return errors
    for g in range(data.levels.size):
        rest = data.level != g
        tau0, tau1 = _line(data.batch[rest], data.step[rest], w[rest])
        predicted = tau0 + tau1 * x_mean[g]
        errors[g] = (predicted - y_mean[g]) / y_mean[g]
    return errors


def _bootstrap(
    data: StepData, w: FloatArray, count: int, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """``count`` refits of (tau0, tau1) to requests resampled within each level."""
    picks = []
    for g in range(data.levels.size):
        members = np.flatnonzero(data.level == g)
        picks.append(members[rng.integers(0, members.size, size=(count, members.size))])
    index = np.concatenate(picks, axis=1)
    tau0, tau1 = fit_line(data.batch[index], data.step[index], w[index])
    return np.asarray(tau0, dtype=np.float64), np.asarray(tau1, dtype=np.float64)


def _intervals(
    tau0: FloatArray, tau1: FloatArray, slots: int, level: float
) -> dict[str, tuple[float, float]]:
    tail = (1 - level) / 2
    draws = {"tau0": tau0, "tau1": tau1, "step_1": tau0 + tau1, "step_slots": tau0 + tau1 * slots}
    return {
        key: (float(np.quantile(v, tail)), float(np.quantile(v, 1 - tail)))
        for key, v in draws.items()
    }


def _level_rows(
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


# long: the fit and every check the module lists, in order, each a few lines over the
# same per-level means; split, each part would recompute them
def fit_server(
    data: StepData, *, bootstrap: int, level: float, rng: np.random.Generator
) -> ServerFit:
    """Fit tau(n) = tau0 + tau1 n to ``data`` with the checks of this module."""
    w = _weights(data)
    tau0, tau1 = _line(data.batch, data.step, w)
    server = Server(slots=data.slots, tau0=tau0, tau1=tau1)
    x_mean, y_mean = data.means(data.batch), data.means(data.step)
    fitted = tau0 + tau1 * data.batch
    grand = float(np.sum(w * data.step) / np.sum(w))
    sst = float(np.sum(w * (data.step - grand) ** 2))
    sse = float(np.sum(w * (data.step - fitted) ** 2))
    r_squared = 1.0 - sse / sst if sst > 0 else None
    counts = np.bincount(data.level, minlength=data.levels.size).astype(np.float64)
    level_w = counts * np.array([w[data.level == g][0] for g in range(data.levels.size)])
    dof = int(data.levels.size - 2)
    chi2 = float(np.sum(level_w * (y_mean - (tau0 + tau1 * x_mean)) ** 2)) if dof > 0 else None
    p_value = float(stats.chi2.sf(chi2, dof)) if chi2 is not None else None
    quadratic = _quadratic(data.batch, data.step, w)
    quadratic_p, bend = None, 0.0
    if data.levels.size >= 3 and data.size > 3:
        sse_q = float(np.sum(w * (data.step - np.polyval(quadratic[::-1], data.batch)) ** 2))
        f = (sse - sse_q) / max(sse_q / (data.size - 3), 1e-300)
        quadratic_p = float(stats.f.sf(max(f, 0.0), 1, data.size - 3))
        line_at = tau0 + tau1 * x_mean
        bend = float(np.max(np.abs(np.polyval(quadratic[::-1], x_mean) - line_at) / line_at))
    linear = not (quadratic_p is not None and quadratic_p < 1e-3 and bend > BEND)
    held = _held_out(data, w, x_mean, y_mean)
    held_out = float(np.nanmax(np.abs(held))) if np.isfinite(held).any() else None
    intervals: dict[str, tuple[float, float]] = {}
    if bootstrap:
        b0, b1 = _bootstrap(data, w, bootstrap, rng)
        intervals = _intervals(b0, b1, data.slots, level)
    levels = _level_rows(data, server, x_mean, y_mean, held)
    notes = _warnings(server, data, linear, quadratic, bend, levels, held_out)
    if not linear and int(data.levels[0]) == 1 and np.all(y_mean > 0):  # the steps are the law
        steps = tuple((int(n), float(y)) for n, y in zip(data.levels, y_mean, strict=True))
        server = Server(slots=data.slots, tau0=tau0, tau1=tau1, steps=steps)
    return ServerFit(
        server, data, intervals, r_squared, chi2, max(dof, 0), p_value,
        (float(quadratic[0]), float(quadratic[1]), float(quadratic[2])), quadratic_p,
        linear, levels, held_out, notes,
    )  # fmt: skip


def _warnings(
    server: Server,
    data: StepData,
    linear: bool,
    quadratic: FloatArray,
    bend: float,
    levels: list[dict[str, Any]],
    held_out: float | None,
) -> tuple[str, ...]:
    notes = []
    if not linear:
        worst = max(levels, key=lambda row: abs(row["residual"]))
        notes.append(
            f"server: the step time is not linear in the batch on these data (a quadratic "
            f"term tau2 = {quadratic[2]:.3g} s moves a level by {bend:.1%}; the line misses "
            f"concurrency {worst['concurrency']} by {worst['residual']:+.1%}); the profile's "
            "[server] steps are the measured step at each level (the line stays as tau0, tau1)"
        )
    if held_out is not None and held_out > HELD_OUT_GOAL:
        notes.append(
            f"server: a concurrency level left out of the fit is predicted {held_out:.1%} off "
            f"its measured step time (more than {HELD_OUT_GOAL:.0%})"
        )
    if server.tau1 <= 1e-9 * max(server.tau0, 1e-12):
        notes.append(
            "server: the step time does not grow with the batch (tau1 at 0: perfect batching)"
        )
    if data.outliers > 0.05 * data.requests:
        notes.append(
            f"server: {data.outliers} of {data.requests} requests are outliers and are left out"
        )
    if data.tail > 0.5 * data.requests:
        notes.append(
            f"server: {data.tail} of {data.requests} requests saw the batch shrink below "
            "their level while they decoded and are left out: too few queries per level "
            "(--server-queries)"
        )
    return tuple(notes)


def with_solo(fit: ServerFit, names: tuple[str, ...], c: FloatArray) -> ServerFit:
    """``fit`` with c / tau(1) of each task, and a warning where it is out of range.

    c (the concurrency-1 latency slope, seconds per thinking token) is tau(1) plus
    what each thinking token costs besides its decode step (phase 2 reads the
    thinking back); the two are measured in separate phases, so a ratio far from 1
    means the server ran at another speed in one of them.
    """
    step = fit.server.step_time(1)
    ratio = {name: float(value) / step for name, value in zip(names, c, strict=True)}
    notes = list(fit.warnings)
    low, high = SOLO_RATIO
    off = {k: v for k, v in ratio.items() if not low <= v <= high}
    if off:
        name, value = next(iter(off.items()))
        notes.append(
            f"server: c / tau(1) = {value:.2f} for {name} (expected {low:g}-{high:g}): the "
            "accuracy phase and the server phase saw the server decode at different speeds "
            "(another load on the machine?)"
        )
    return dataclasses.replace(fit, c_ratio=ratio, warnings=tuple(notes))
