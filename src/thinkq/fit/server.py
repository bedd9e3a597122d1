"""The server table: the step-time law tau(n) fitted to the server phase.

Each request of ``thinkq profile --slots B`` gives a point (x, y): x the batch it saw
(the time-averaged number of queries in service while it decoded), y its seconds per
decode step (:mod:`.steps`). The law is fitted to the requests by weighted least
squares with tau0 >= 0 and tau1 >= 0 (the latency fit's :func:`~.latency.fit_line`),
each request weighted by the inverse of its level's variance (steps spread more in
bigger batches), first as the line tau0 + tau1 n. Then:

* **intervals**: the requests are resampled within each level and refitted
  (percentile intervals of tau0, tau1, and tau(1) and tau(B) of the law in force);
* **goodness of fit**: R^2 over requests; per level the measured mean step against
  tau(mean batch), and chi^2 of the level means on levels - 2 degrees of freedom;
* **linearity**: the quadratic tau0 + tau1 n + tau2 n^2 is fitted beside the line;
  when its extra term is significant (F-test, p < 10^-3) and moves a level's
  prediction by more than :data:`BEND`, the law is not linear on these data, and the
  law in force is the bent law of :mod:`.law`, tau(1) + beta (n^gamma - 1) / gamma,
  fitted the same way and written as ``steps`` (its value at each n, interpolated);
* **held-out check**: each level is left out in turn, the law in force fitted to the
  others predicts its mean step, and the relative error is kept (the line needs three
  levels, the bent law four: ``thinkq profile --server-levels 1,2,3,4``); the line's
  own held-out error is kept beside it;
* **measured steps**: where the bent law misses a level by over :data:`HELD_OUT_GOAL`
  or predicts the interior levels left out worse than the measured steps interpolated
  from the levels beside them do, ``steps`` are the measured steps (and their held-out
  errors, at interior levels, those kept);
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
from thinkq.fit.law import PowerLaw, fit_power, power_held_out
from thinkq.fit.server_checks import intervals as server_intervals
from thinkq.fit.server_checks import (
    level_rows,
    line_held_out,
    quadratic_fit,
    step_line,
    steps_held_out,
    worst,
)
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
    #: the bent law, where the line does not hold (then ``server.steps`` are its values)
    power: PowerLaw | None = None
    #: the worst held-out error of the line (``held_out`` is the bent law's where it was fitted)
    line_held_out: float | None = None
    #: the bent law missed a level by more than :data:`HELD_OUT_GOAL` or predicted the
    #: interior levels left out worse: ``server.steps`` are the measured steps instead
    measured_steps: bool = False
    #: the worst held-out error of the bent law on the interior levels, where it was fitted
    power_held_out: float | None = None

    @property
    def law(self) -> str:
        """The law in force in words."""
        if self.power is None:
            return f"tau(n) = {self.server.tau0 * 1e3:.4g} ms + {self.server.tau1 * 1e3:.4g} ms n"
        if self.measured_steps:
            return "tau(n) = the measured steps, interpolated"
        return self.power.text()

    @property
    def steps_text(self) -> str:
        """What the ``steps`` written are, in words."""
        if self.power is not None and not self.measured_steps:
            return f"the bent law {self.power.text()} at each n"
        return "the measured step at each level"

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
            "law": "line" if self.power is None else "steps" if self.measured_steps else "power",
            "power": None
            if self.power is None
            else {"step_1": self.power.step_1, "beta": self.power.beta, "gamma": self.power.gamma},
            "quadratic": dict(zip(("tau0", "tau1", "tau2"), self.quadratic, strict=True))
            | {"p_value": self.quadratic_p},
            "held_out_max_error": self.held_out,
            "line_held_out_max_error": self.line_held_out,
            "power_held_out_max_error": self.power_held_out,
            "c_over_step_1": self.c_ratio,
            "levels": self.levels,
            "warnings": list(self.warnings),
        }


# long: the fit and every check the module lists, in order, each a few lines over the
# same per-level means; split, each part would recompute them
def fit_server(
    data: StepData, *, bootstrap: int, level: float, rng: np.random.Generator
) -> ServerFit:
    """Fit the step-time law to ``data`` with the checks of this module."""
    w = _weights(data)
    tau0, tau1 = step_line(data.batch, data.step, w)
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
    quadratic = quadratic_fit(data.batch, data.step, w)
    quadratic_p, bend = None, 0.0
    if data.levels.size >= 3 and data.size > 3:
        sse_q = float(np.sum(w * (data.step - np.polyval(quadratic[::-1], data.batch)) ** 2))
        f = (sse - sse_q) / max(sse_q / (data.size - 3), 1e-300)
        quadratic_p = float(stats.f.sf(max(f, 0.0), 1, data.size - 3))
        line_at = tau0 + tau1 * x_mean
        bend = float(np.max(np.abs(np.polyval(quadratic[::-1], x_mean) - line_at) / line_at))
    linear = not (quadratic_p is not None and quadratic_p < 1e-3 and bend > BEND)
    line_held = line_held_out(data, w, x_mean, y_mean)
    held, power, power_held = line_held, None, None
    measured = False
    if not linear:  # the bent law (three levels at least: the quadratic needed them)
        power = fit_power(data.batch, data.step, w)
        steps = power.steps(data.slots)
        held = power_held_out(data.batch, data.step, w, data.level, x_mean, y_mean)
        between, power_held = steps_held_out(x_mean, y_mean), worst(held[1:-1])
        worse = power_held is not None and power_held > (worst(between[1:-1]) or np.inf)
        miss = float(np.max(np.abs(power.misses(x_mean, y_mean))))
        if (miss > HELD_OUT_GOAL or worse) and int(data.levels[0]) == 1:
            steps = tuple((int(n), float(y)) for n, y in zip(data.levels, y_mean, strict=True))
            measured, held = True, between
        server = Server(slots=data.slots, tau0=tau0, tau1=tau1, steps=steps)
    intervals: dict[str, tuple[float, float]] = {}
    if bootstrap:
        intervals = server_intervals(data, w, bootstrap, level, rng, None if measured else power)
    levels = level_rows(data, server, x_mean, y_mean, held)
    fit = ServerFit(
        server, data, intervals, r_squared, chi2, max(dof, 0), p_value,
        (float(quadratic[0]), float(quadratic[1]), float(quadratic[2])), quadratic_p,
        linear, levels, worst(held), power=power, line_held_out=worst(line_held),
        measured_steps=measured, power_held_out=power_held,
    )  # fmt: skip
    return dataclasses.replace(fit, warnings=server_warnings(fit, bend))


def server_warnings(fit: ServerFit, bend: float) -> tuple[str, ...]:
    """What the fit should tell its user (each a line starting ``server:``)."""
    notes = []
    data, server = fit.data, fit.server
    if fit.power is not None:
        line = server.tau0 + server.tau1 * data.means(data.batch)
        miss = (data.means(data.step) - line) / line
        worst = int(np.argmax(np.abs(miss)))
        notes.append(
            f"server: the step time is not linear in the batch on these data (a quadratic "
            f"term tau2 = {fit.quadratic[2]:.3g} s moves a level by {bend:.1%}; the line "
            f"misses concurrency {int(data.levels[worst])} by {miss[worst]:+.1%}); the "
            f"profile's [server] steps are {fit.steps_text} (the line stays as tau0, tau1)"
        )
        bent = fit.power.misses(data.means(data.batch), data.means(data.step))
        off = int(np.argmax(np.abs(bent)))
        if abs(bent[off]) > HELD_OUT_GOAL:
            notes.append(
                f"server: the bent law misses concurrency {int(data.levels[off])} by "
                f"{bent[off]:+.1%}: the step time is not a smooth function of the batch here"
                + (
                    "; the profile's [server] steps are the measured step at each level instead"
                    if fit.measured_steps
                    else ""
                )
            )
        elif fit.measured_steps and fit.held_out is not None:
            notes.append(
                f"server: the measured steps, interpolated, predict a level left out within "
                f"{fit.held_out:.1%}, the bent law within {fit.power_held_out:.1%} (interior "
                "levels): the profile's [server] steps are the measured step at each level"
            )
    if fit.held_out is not None and fit.held_out > HELD_OUT_GOAL:
        notes.append(
            f"server: a concurrency level left out of the fit is predicted {fit.held_out:.1%} "
            f"off its measured step time (more than {HELD_OUT_GOAL:.0%})"
        )
    if fit.held_out is None and fit.power is not None:
        notes.append(
            "server: too few concurrency levels to check the bent law on a level left out "
            "(it has three parameters: measure four levels or more, --server-levels)"
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
