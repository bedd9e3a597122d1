"""Figures drawn with matplotlib's object API (no pyplot, no display, no global
state), each saved as PNG and SVG."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from thinkq._files import write_atomic
from thinkq._typing import FloatArray
from thinkq.paper.experiments import Figure2, Figure3, Figure4
from thinkq.paper.sweep import Sweep

__all__ = ["draw_figure2", "draw_figure3", "draw_figure4", "draw_sweep", "save"]


def save(figure: Figure, stem: Path, *, formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """Write ``figure`` as ``stem.png`` and ``stem.svg`` (or ``formats``) atomically."""
    paths = []
    for fmt in formats:
        buffer = io.BytesIO()
        # no creation date and fixed ids in SVG, so the same data give the same file
        metadata = {"Date": None} if fmt == "svg" else None
        with matplotlib.rc_context({"svg.hashsalt": "thinkq"}):
            figure.savefig(buffer, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
        paths.append(write_atomic(stem.with_suffix(f".{fmt}"), buffer.getvalue()))
    return paths


def draw_figure2(data: Figure2) -> Figure:
    """Fig. 2: the fitted accuracy curves p_k(l) = A_k (1 - e^{-b_k l}) + D_k."""
    figure = Figure(figsize=(6.4, 4.2))
    axes = figure.subplots()
    for name, curve in zip(data.names, data.accuracy, strict=True):
        axes.plot(data.budgets, curve, label=name)
    axes.set_xscale("symlog", linthresh=1)
    axes.set_xlabel("thinking-token budget l (tokens)")
    axes.set_ylabel("accuracy p_k(l)")
    axes.set_ylim(0, 1)
    axes.set_title("Fitted accuracy curves (Fig. 2)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return figure


def _drawable(values: FloatArray) -> FloatArray:
    """``values`` with -inf (J where the queue is unstable) as NaN: not drawn."""
    return np.where(np.isfinite(values), values, np.nan)


def draw_figure3(data: Figure3) -> Figure:
    """Fig. 3: J under uniform budgets and the optimal allocation, analytic and simulated."""
    figure = Figure(figsize=(6.4, 4.2))
    axes = figure.subplots()
    x = np.arange(len(data.policies))
    # a policy under which the queue is unstable (J = -inf) has no bar
    analytic = _drawable(np.array([p.objective for p in data.policies]))
    simulated = _drawable(np.array([p.simulated_objective for p in data.policies]))
    errors = np.array(
        [
            [p.simulated_objective - p.simulated_ci[0], p.simulated_ci[1] - p.simulated_objective]
            for p in data.policies
        ]
    ).T
    errors[:, np.isnan(simulated)] = 0.0
    errors = np.maximum(errors, 0.0)  # a zero-width interval may round below its centre
    axes.bar(x - 0.2, analytic, width=0.4, label="analytic (P-K)")
    axes.bar(x + 0.2, simulated, width=0.4, yerr=errors, capsize=3, label="simulated, 95% CI")
    axes.set_xticks(x, [p.label for p in data.policies])
    axes.set_ylabel("J = alpha x accuracy - mean system time (s)")
    axes.set_title("Objective under uniform and optimal allocations (Fig. 3)")
    axes.axhline(0, color="black", linewidth=0.6)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize="small")
    return figure


def draw_figure4(data: Figure4) -> Figure:
    """Fig. 4: J against one budget, the lower bound (41) and simulated points."""
    figure = Figure(figsize=(6.4, 4.2))
    axes = figure.subplots()
    axes.plot(data.budgets, _drawable(data.objective), label="J (analytic)")
    axes.plot(data.budgets, data.lower_bound, "--", color="tab:red", label="lower bound (41)")
    errors = np.vstack([data.simulated - data.simulated_low, data.simulated_high - data.simulated])
    errors = np.maximum(errors, 0.0)  # as in Fig. 3; NaN (not simulated) stays NaN
    axes.errorbar(
        data.simulated_budgets,
        data.simulated,
        yerr=errors,
        fmt="o",
        color="black",
        markersize=4,
        capsize=2,
        label="simulated (10,000 queries), 95% CI",
    )
    axes.axvline(
        data.optimum,
        color="gray",
        linewidth=0.8,
        linestyle=":",
        label=f"optimum {data.optimum:.1f} tokens",
    )
    axes.set_xlabel(f"{data.task} thinking-token budget (tokens)")
    axes.set_ylabel("objective J")
    axes.set_title(f"Sensitivity to the {data.task} budget (Fig. 4)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return figure


def draw_sweep(data: Sweep) -> Figure:
    """Budgets, accuracy and system time across a sweep of rate, alpha or slots."""
    figure = Figure(figsize=(6.4, 6.4))
    top, bottom = figure.subplots(2, 1, sharex=True)
    stable = [p for p in data.points if p.stable]
    values = [p.value for p in stable]
    budgets = np.array([p.budgets for p in stable])
    for k, name in enumerate(data.names[:12]):
        top.plot(values, budgets[:, k], label=name)
    top.set_ylabel("optimal budget (tokens)")
    top.grid(alpha=0.3)
    top.legend(fontsize="x-small", ncol=2)
    bottom.plot(values, [p.mean_system_time for p in stable], label="mean system time (s)")
    if all(p.p95_system_time is not None for p in stable):
        bottom.plot(values, [p.p95_system_time for p in stable], label="p95 system time (s)")
    bottom.set_ylabel("seconds")
    twin = bottom.twinx()
    twin.plot(values, [p.accuracy for p in stable], color="tab:green", label="accuracy")
    twin.set_ylabel("mean accuracy")
    labels = {"rate": "arrival rate (queries/s)", "slots": "decode slots B (sequences at once)"}
    bottom.set_xlabel(labels.get(data.parameter, data.parameter))
    if data.parameter == "slots":
        bottom.set_xscale("log", base=2)
        bottom.set_xticks(values, [f"{v:g}" for v in values])
    elif values and max(values) / min(values) > 20:
        bottom.set_xscale("log")
    bottom.grid(alpha=0.3)
    handles = bottom.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    bottom.legend(handles, [str(h.get_label()) for h in handles], fontsize="small")
    figure.suptitle(f"Optimal budgets across {data.parameter}")
    return figure
