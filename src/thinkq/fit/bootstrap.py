"""Bootstrap replicates of a fit: resampled measurements refitted, task by task.

Each task's counts and latencies are resampled (:func:`~thinkq.fit.data.resample`)
and refitted with the point fit's method: the accuracy curve in batches of
:data:`BATCH` replicates (one progress step each), the latency line by weighted
least squares (or t0 alone when the task borrowed c). The replicates give percentile
intervals per parameter and, through :func:`~thinkq.fit.uncertainty.propagate`,
intervals on the optimal budgets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from thinkq._typing import FloatArray
from thinkq.fit.accuracy import AccuracyFit, refit_accuracy
from thinkq.fit.data import TaskData, resample
from thinkq.fit.latency import LatencyFit, fit_line, pooled_variance
from thinkq.fit.uncertainty import PARAMETERS, Replicates

__all__ = ["BATCH", "bootstrap", "percentile_intervals", "replicates"]

#: Bootstrap replicates refitted together (one progress step).
BATCH = 25


def bootstrap(
    tasks: Sequence[TaskData],
    accuracy: Sequence[AccuracyFit],
    latency: Sequence[LatencyFit],
    count: int,
    *,
    level: float,
    seed: int | None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Replicates, list[dict[str, tuple[float, float]]]]:
    """``count`` replicates of every task, each from its own stream of ``seed``, and
    per task the central ``level`` percentile interval of each parameter.

    ``progress(done, total)`` is called as the refits of all tasks go on.
    """
    total, done = count * len(tasks), 0

    def tick(batch: int) -> None:
        nonlocal done
        done += batch
        if progress is not None:
            progress(done, total)

    streams = np.random.SeedSequence(seed).spawn(len(tasks))
    draws = [
        replicates(t, a, s, count, np.random.default_rng(stream), tick)
        for t, a, s, stream in zip(tasks, accuracy, latency, streams, strict=True)
    ]
    together = Replicates(
        names=tuple(t.name for t in tasks),
        **{key: np.column_stack([d[key] for d in draws]) for key in PARAMETERS},
    )
    return together, [percentile_intervals(d, level) for d in draws]


def percentile_intervals(
    draws: dict[str, FloatArray], level: float
) -> dict[str, tuple[float, float]]:
    """The central ``level`` percentile interval of each parameter's replicates."""
    tail = (1 - level) / 2
    intervals = {}
    for key in PARAMETERS:
        low, high = np.quantile(draws[key], [tail, 1 - tail])
        intervals[key] = (float(low), float(high))
    return intervals


def replicates(
    task: TaskData,
    accuracy: AccuracyFit,
    latency: LatencyFit,
    count: int,
    rng: np.random.Generator,
    tick: Callable[[int], None],
) -> dict[str, FloatArray]:
    """``count`` bootstrap refits of one task: A, b, D, t0, c, variance, one value each.

    ``tick(done)`` is called after each batch of refits.
    """
    l = task.budgets
    residual = 0.0
    if not task.variance_known and l.size > 2:  # a summary without variances
        gap = task.latency.mean - latency.line(l)
        residual = float(np.sum(task.trials * gap**2) / (l.size - 2))
    n, k, lat = resample(task, count, rng, residual_variance=residual)
    out: dict[str, FloatArray] = {}
    for start in range(0, count, BATCH):
        stop = min(count, start + BATCH)
        parts = refit_accuracy(l, n[start:stop], k[start:stop], accuracy)
        for key, part in zip(("A", "b", "D"), parts, strict=True):
            out[key] = np.concatenate([out[key], part]) if key in out else part
        tick(stop - start)
    weights = np.broadcast_to(latency.weights, lat.mean.shape) * (lat.n > 0)
    if latency.c_borrowed:
        c = np.full(count, latency.c)
        t0 = np.maximum((weights * (lat.mean - c[:, None] * l)).sum(-1) / weights.sum(-1), 0.0)
    else:
        t0, c = fit_line(l, lat.mean, weights)
    out["t0"], out["c"] = t0, c
    if task.variance_known:
        out["variance"] = pooled_variance(l, lat, t0, c)
    else:
        out["variance"] = np.zeros(count)
    return out
