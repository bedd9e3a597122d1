"""The capacity plan drawn: accuracy and the SLO's statistic against the replica count.

Drawn with matplotlib's object API (no pyplot, no display), saved as PNG or SVG.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from thinkq.paper.figures import save
from thinkq.plan.result import CapacityPlan

__all__ = ["draw_plan", "save_plan"]


def _finite(values: list[float | None]) -> list[float]:
    return [v if v is not None and math.isfinite(v) else math.nan for v in values]


def draw_plan(plan: CapacityPlan) -> Figure:
    """Accuracy (top) and the first objective's statistic (bottom) per replica count,
    with the objective's target, the accuracy floor and the answer marked."""
    figure = Figure(figsize=(6.4, 6.0))
    top, bottom = figure.subplots(2, 1, sharex=True)
    counts = np.array([row.replicas for row in plan.rows])
    feasible = np.array([row.feasible for row in plan.rows])
    accuracy = np.array(_finite([row.replica.accuracy for row in plan.rows]))
    top.plot(counts, accuracy, color="C0", label="best accuracy within the SLO")
    top.scatter(counts[feasible], accuracy[feasible], color="C0", zorder=3, label="feasible")
    top.scatter(counts[~feasible], accuracy[~feasible], facecolors="none", edgecolors="C3",
                zorder=3, label="infeasible")  # fmt: skip
    if plan.min_accuracy is not None:
        top.axhline(plan.min_accuracy, color="C3", linestyle="--", label="minimum accuracy")
    top.set_ylabel("mean accuracy (per replica)")
    o = plan.objectives[0]
    best = _finite([row.replica.achieved[0] for row in plan.rows])
    lean = _finite([None if row.lean_achieved is None else row.lean_achieved[0]
                    for row in plan.rows])  # fmt: skip
    floor = "zero budgets" if plan.min_accuracy is None else "least latency at the floor"
    bottom.plot(counts, best, marker="o", color="C0", label="at the planned budgets")
    bottom.plot(counts, lean, marker="s", color="C2", label=floor)
    bottom.axhline(o.target, color="C3", linestyle="--", label=f"SLO {o}")
    bottom.set_ylabel(f"{o.statistic} system time{'' if o.task is None else ' of ' + o.task} (s)")
    bottom.set_xlabel("replicas (requests split at random)")
    for axes in (top, bottom):
        axes.axvline(plan.replicas, color="0.4", linestyle=":", label=f"answer: {plan.replicas}")
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    bottom.set_xticks(counts)
    top.set_title(f"Capacity for {plan.rate:g} queries/s: {plan.replicas} replicas")
    return figure


def save_plan(plan: CapacityPlan, path: Path) -> Path:
    """Draw ``plan`` into ``path`` (``.png`` or ``.svg``), atomically."""
    (written,) = save(draw_plan(plan), path.with_suffix(""), formats=(path.suffix[1:].lower(),))
    return written
