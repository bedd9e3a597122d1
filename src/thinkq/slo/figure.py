"""The frontier drawn with matplotlib's object API: system time against accuracy."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from thinkq.slo.frontier import Frontier, FrontierPoint
from thinkq.slo.result import SloResult

__all__ = ["draw_frontier"]

#: Beyond this ratio of the largest to the smallest time, the time axis is logarithmic.
_LOG_RATIO = 30.0


def draw_frontier(
    data: Frontier, slo: SloResult | None = None, slo_point: FrontierPoint | None = None
) -> Figure:
    """Mean and percentile system time against mean accuracy along alpha, with the
    profile's operating point and, given ``slo``, its objectives (horizontal lines)
    and its budgets' place on both curves (``slo_point``, stars)."""
    figure = Figure(figsize=(6.4, 4.4))
    axes = figure.subplots()
    stable = [p for p in data.points if np.isfinite(p.percentile_time)]
    accuracy = [p.accuracy for p in stable]
    label = f"p{data.percentile:g}"
    axes.plot(accuracy, [p.mean_system_time for p in stable], "o-", ms=3, label="mean")
    axes.plot(accuracy, [p.percentile_time for p in stable], "s-", ms=3, label=label)
    own = data.operating_point
    axes.plot([own.accuracy] * 2, [own.mean_system_time, own.percentile_time], "kD", ms=7,
              label=f"profile's alpha = {own.alpha:g}")  # fmt: skip
    if slo is not None:
        for objective in slo.objectives:
            axes.axhline(objective.target, ls="--", lw=1, color="tab:red", alpha=0.7)
            axes.annotate(str(objective), (0.01, objective.target), xycoords=("axes fraction",
                          "data"), fontsize="x-small", color="tab:red", va="bottom")  # fmt: skip
    if slo is not None and slo_point is not None:
        mark = [slo_point.mean_system_time, slo_point.percentile_time]
        axes.plot([slo_point.accuracy] * 2, mark, "*", color="tab:red", ms=12,
                  label=f"SLO budgets (alpha = {slo.alpha:.4g})")  # fmt: skip
    times = [t for p in stable for t in (p.mean_system_time, p.percentile_time) if t > 0]
    if times and max(times) / min(times) > _LOG_RATIO:
        axes.set_yscale("log")
    axes.set_xlabel("weighted mean accuracy (fraction)")
    axes.set_ylabel("system time (s)")
    axes.set_title(f"Accuracy-latency frontier over alpha (mean and {label})")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return figure
