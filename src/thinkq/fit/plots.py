"""Fig. 2-style plots of a fit: measured points, fitted curves and bootstrap bands.

The data behind each panel come from :func:`accuracy_panels` and
:func:`latency_panels` (plain arrays, so tests check what is drawn rather than
pixels); :func:`draw_accuracy` and :func:`draw_latency` draw them with matplotlib's
object API, one panel per task, and :func:`save_plots` writes ``accuracy`` and
``latency`` as PNG and SVG (:func:`thinkq.paper.figures.save`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from thinkq._typing import FloatArray
from thinkq.fit.result import FitResult
from thinkq.paper.figures import save

__all__ = [
    "MAX_PANELS",
    "AccuracyPanel",
    "LatencyPanel",
    "accuracy_panels",
    "draw_accuracy",
    "draw_latency",
    "latency_panels",
    "save_plots",
    "wilson",
]

#: A figure shows at most this many tasks (the first ones).
MAX_PANELS = 24
_Z = 1.959963984540054  # the 97.5% normal quantile: 95% error bars


@dataclass(frozen=True)
class AccuracyPanel:
    """Measured accuracy with 95% Wilson intervals, the fitted p(l) and its band."""

    name: str
    budgets: FloatArray
    accuracy: FloatArray
    low: FloatArray
    high: FloatArray
    grid: FloatArray
    fitted: FloatArray
    band: tuple[FloatArray, FloatArray] | None


@dataclass(frozen=True)
class LatencyPanel:
    """Mean latency per budget +- one standard deviation of the requests, the fitted
    line t(l) = t0 + c l and its band; ``outliers`` requests were set aside."""

    name: str
    budgets: FloatArray
    mean: FloatArray
    sd: FloatArray
    grid: FloatArray
    fitted: FloatArray
    band: tuple[FloatArray, FloatArray] | None
    outliers: int


def wilson(correct: FloatArray, trials: FloatArray) -> tuple[FloatArray, FloatArray]:
    """95% Wilson score interval of a binomial proportion (good near 0 and 1)."""
    n = np.asarray(trials, dtype=np.float64)
    k = np.asarray(correct, dtype=np.float64)
    centre = (k + _Z**2 / 2) / (n + _Z**2)
    half = _Z * np.sqrt(k * (n - k) / n + _Z**2 / 4) / (n + _Z**2)
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def _grid(budgets: FloatArray) -> FloatArray:
    top = float(budgets.max()) if budgets.size else 1.0
    positive = budgets[budgets > 0]
    low = float(positive.min()) / 4 if positive.size else 1.0
    return np.concatenate([[0.0], np.geomspace(low, max(top, low) * 1.25, 200)])


def _band(values: FloatArray, level: float) -> tuple[FloatArray, FloatArray]:
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail], axis=0)
    return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)


def accuracy_panels(result: FitResult) -> list[AccuracyPanel]:
    """The data of the accuracy plot, one panel per task."""
    panels = []
    rep = result.replicates
    for k, task in enumerate(result.tasks):
        d = task.data
        grid = _grid(d.budgets)
        band = None
        if rep is not None:
            curves = rep.A[:, k, None] * -np.expm1(-rep.b[:, k, None] * grid) + rep.D[:, k, None]
            band = _band(curves, result.level)
        low, high = wilson(d.correct, d.trials)
        panels.append(
            AccuracyPanel(
                name=task.name,
                budgets=d.budgets,
                accuracy=d.correct / d.trials,
                low=low,
                high=high,
                grid=grid,
                fitted=task.accuracy.curve(grid),
                band=band,
            )
        )
    return panels


def latency_panels(result: FitResult) -> list[LatencyPanel]:
    """The data of the latency plot, one panel per task."""
    panels = []
    rep = result.replicates
    for k, task in enumerate(result.tasks):
        d, fit = task.data, task.latency
        grid = _grid(d.budgets)
        band = None
        if rep is not None:
            band = _band(rep.t0[:, k, None] + rep.c[:, k, None] * grid, result.level)
        panels.append(
            LatencyPanel(
                name=task.name,
                budgets=d.budgets,
                mean=d.latency.mean,
                sd=np.sqrt(fit.budget_variance),
                grid=grid,
                fitted=fit.line(grid),
                band=band,
                outliers=fit.outliers,
            )
        )
    return panels


def _axes(count: int, title: str) -> tuple[Figure, list[Axes]]:
    shown = min(count, MAX_PANELS)
    columns = min(3, shown)
    rows = math.ceil(shown / columns)
    figure = Figure(figsize=(4.2 * columns, 3.2 * rows), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    axes = [a for row in grid for a in row]
    for extra in axes[shown:]:
        extra.set_visible(False)
    more = f" (the first {MAX_PANELS} of {count} tasks)" if count > MAX_PANELS else ""
    figure.suptitle(title + more)
    return figure, axes[:shown]


def _budget_axis(axes: Axes, budgets: FloatArray, grid: FloatArray) -> None:
    """Budgets on a symmetric-log axis from 0: linear up to the smallest positive budget."""
    positive = budgets[budgets > 0]
    threshold = float(positive.min()) if positive.size else 1.0
    axes.set_xscale("symlog", linthresh=threshold)
    top = float(grid.max())
    powers = 10.0 ** np.arange(np.ceil(np.log10(threshold)), np.floor(np.log10(top)) + 1)
    ticks = [0.0, *powers.tolist()]
    axes.set_xticks(ticks, [f"{t:g}" for t in ticks])
    axes.set_xlim(0, top)
    axes.set_xlabel("thinking-token budget l (tokens)")
    axes.grid(alpha=0.3)


def _legend(figure: Figure, axes: list[Axes]) -> None:
    if axes:
        handles, labels = axes[0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside lower center", ncols=3, fontsize="small")


def draw_accuracy(panels: list[AccuracyPanel], *, level: float = 0.95) -> Figure:
    """Measured accuracy (95% Wilson bars) and the fitted p(l), one panel per task."""
    figure, axes = _axes(len(panels), "Accuracy against the thinking budget (cf. Fig. 2)")
    for ax, p in zip(axes, panels, strict=False):
        if p.band is not None:
            ax.fill_between(p.grid, *p.band, alpha=0.25, label=f"{level:.0%} bootstrap band")
        ax.plot(p.grid, p.fitted, label="fit A (1 - exp(-b l)) + D")
        bars = np.maximum(np.vstack([p.accuracy - p.low, p.high - p.accuracy]), 0.0)
        ax.errorbar(
            p.budgets,
            p.accuracy,
            yerr=bars,
            fmt="o",
            color="black",
            markersize=3,
            capsize=2,
            label="measured, 95% CI",
        )
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("accuracy")
        ax.set_title(p.name, fontsize="medium")
        _budget_axis(ax, p.budgets, p.grid)
    _legend(figure, axes)
    return figure


def draw_latency(panels: list[LatencyPanel], *, level: float = 0.95) -> Figure:
    """Mean latency (+- 1 sd of requests) and the fitted line, one panel per task, on
    linear axes so that a departure from the line t0 + c l is visible."""
    figure, axes = _axes(len(panels), "Latency against the thinking budget")
    for ax, p in zip(axes, panels, strict=False):
        if p.band is not None:
            ax.fill_between(p.grid, *p.band, alpha=0.25, label=f"{level:.0%} bootstrap band")
        ax.plot(p.grid, p.fitted, label="fit t0 + c l")
        ax.errorbar(
            p.budgets,
            p.mean,
            yerr=p.sd,
            fmt="o",
            color="black",
            markersize=3,
            capsize=2,
            label="mean +- 1 sd of requests",
        )
        ax.set_ylabel("latency (s)")
        note = f" ({p.outliers} outliers set aside)" if p.outliers else ""
        ax.set_title(p.name + note, fontsize="medium")
        ax.set_xlim(0, float(p.grid.max()))
        ax.set_ylim(bottom=0)
        ax.set_xlabel("thinking-token budget l (tokens)")
        ax.grid(alpha=0.3)
    _legend(figure, axes)
    return figure


def save_plots(result: FitResult, directory: Path) -> list[Path]:
    """Write ``accuracy.png/.svg`` and ``latency.png/.svg`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = save(draw_accuracy(accuracy_panels(result), level=result.level), directory / "accuracy")
    figure = draw_latency(latency_panels(result), level=result.level)
    return paths + save(figure, directory / "latency")
