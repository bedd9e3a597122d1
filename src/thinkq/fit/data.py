"""Per-task data for the fits, and their bootstrap replicates.

:func:`task_data` turns a :class:`~thinkq.records.RecordSet` into one
:class:`TaskData` per task: the binomial counts and the inlier latency summaries at
each distinct budget. :func:`resample` draws bootstrap replicates of the same
summaries:

* records with an ``item_id`` on every line: items are resampled (a cluster
  bootstrap), so that the answers of one item at every budget and in every run stay
  together; their correlation widens the intervals as it should;
* records without item ids: requests are resampled within each budget;
* summary rows: counts are drawn from Binomial(n, k/n) and latency means from their
  normal sampling distribution (a parametric bootstrap).

Outliers are classified once, on the data; replicates reuse that classification.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from thinkq._typing import FloatArray
from thinkq.fit.latency import LatencyStats, inliers
from thinkq.records import RecordSet

__all__ = ["TaskData", "resample", "supported_max", "task_data"]

#: Resampling a task holds at most this many weights in memory at once.
_CHUNK = 4_000_000


@dataclass(frozen=True)
class TaskData:
    """One task's measurements, summarised per distinct budget (J budgets).

    ``units`` are the resampling units of records, each with five sums (trials,
    correct, inlier count, sum and sum of squares of inlier deviations from
    ``center``): items (U x J x 5), or single requests (R x 5) whose budget index is
    ``stratum``.
    """

    name: str
    budgets: FloatArray
    trials: FloatArray
    correct: FloatArray
    latency: LatencyStats
    outliers: int
    queries: int
    resampling: str  # "items", "requests" or "summary"
    variance_known: bool = True
    units: FloatArray | None = None
    stratum: NDArray[np.intp] | None = None
    center: FloatArray | None = None


def _from_records(name: str, rows: list[tuple[int, bool, float, object]]) -> TaskData:
    budget = np.array([r[0] for r in rows], dtype=np.float64)
    answer = np.array([r[1] for r in rows], dtype=np.float64)
    latency = np.array([r[2] for r in rows], dtype=np.float64)
    budgets, group = np.unique(budget, return_inverse=True)
    J = budgets.size
    keep = inliers(latency, group, J)
    center = np.array([np.median(latency[group == j]) for j in range(J)])
    deviation = np.where(keep, latency - center[group], 0.0)
    values = np.column_stack([np.ones_like(answer), answer, keep, deviation, deviation**2])
    totals = np.zeros((J, 5))
    np.add.at(totals, group, values)
    items = [r[3] for r in rows]
    stratum: NDArray[np.intp] | None
    if all(item is not None for item in items):
        _, unit = np.unique(np.array([repr(i) for i in items]), return_inverse=True)
        units = np.zeros((int(unit.max()) + 1, J, 5))
        np.add.at(units, (unit, group), values)
        resampling, stratum = "items", None
    else:
        units, resampling, stratum = values, "requests", group
    return TaskData(
        name=name,
        budgets=budgets,
        trials=totals[:, 0],
        correct=totals[:, 1],
        latency=_latency(totals, center),
        outliers=int(latency.size - keep.sum()),
        queries=latency.size,
        resampling=resampling,
        units=units,
        stratum=stratum,
        center=center,
    )


def _latency(totals: FloatArray, center: FloatArray) -> LatencyStats:
    """Inlier count, mean and sum of squares from (..., J, 5) unit sums."""
    n = totals[..., 2]
    safe = np.maximum(n, 1.0)
    s1, s2 = totals[..., 3], totals[..., 4]
    return LatencyStats(n, center + s1 / safe, np.maximum(s2 - s1 * s1 / safe, 0.0))


def _from_summary(name: str, rows: list[tuple[int, int, int, float, float | None]]) -> TaskData:
    budgets = np.unique(np.array([r[0] for r in rows], dtype=np.float64))
    J = budgets.size
    n, k, s1, ss = np.zeros(J), np.zeros(J), np.zeros(J), np.zeros(J)
    known = all(r[4] is not None for r in rows)
    for budget, trials, correct, row_mean, _ in rows:
        j = int(np.searchsorted(budgets, budget))
        n[j] += trials
        k[j] += correct
        s1[j] += trials * row_mean
    mean = s1 / n
    for budget, trials, _, row_mean, variance in rows:  # pooled: within + between rows
        j = int(np.searchsorted(budgets, budget))
        ss[j] += (trials - 1) * (variance or 0.0) + trials * (row_mean - mean[j]) ** 2
    return TaskData(
        name=name,
        budgets=budgets,
        trials=n,
        correct=k,
        latency=LatencyStats(n, mean, ss),
        outliers=0,
        queries=int(n.sum()),
        resampling="summary",
        variance_known=known,
    )


def task_data(records: RecordSet) -> tuple[TaskData, ...]:
    """One :class:`TaskData` per task, in order of first appearance."""
    raw: dict[str, list[tuple[int, bool, float, object]]] = {}
    for r in records.records:
        raw.setdefault(r.task, []).append((r.budget, r.correct, r.latency_s, r.item_id))
    rows: dict[str, list[tuple[int, int, int, float, float | None]]] = {}
    for s in records.summaries:
        rows.setdefault(s.task, []).append(
            (s.budget, s.n, s.correct, s.mean_latency_s, s.latency_variance_s2)
        )
    return tuple(
        _from_records(name, raw[name]) if name in raw else _from_summary(name, rows[name])
        for name in records.task_names
    )


def supported_max(tasks: tuple[TaskData, ...]) -> tuple[int, str | None]:
    """The largest budget (tokens) measured about as often as the others, and why not the top.

    A budget with fewer than half the queries of the median budget (one stray record
    at 10^12) does not set the default l_max; the note says which budget was passed over.
    """
    budgets = np.unique(np.concatenate([t.budgets for t in tasks]))
    counts = np.zeros(budgets.size)
    for t in tasks:
        np.add.at(counts, np.searchsorted(budgets, t.budgets), t.trials)
    enough = counts >= np.median(counts) / 2
    top = int(budgets[np.flatnonzero(enough)[-1]])
    if top == int(budgets[-1]):
        return top, None
    thin = int(counts[-1])
    return top, (
        f"the largest budget, {int(budgets[-1])}, has {thin} {'query' if thin == 1 else 'queries'}"
        f" (a median budget {np.median(counts):g}): l_max is {top}, the largest budget measured "
        "as often as the others; --max-tokens sets it"
    )


def resample(
    task: TaskData, count: int, rng: np.random.Generator, *, residual_variance: float = 0.0
) -> tuple[FloatArray, FloatArray, LatencyStats]:
    """``count`` bootstrap replicates: trials, correct (count x J) and latency summaries.

    ``residual_variance`` (s^2 per request) stands in for the latency variance of a
    summary that gives none.
    """
    J = task.budgets.size
    if task.units is None or task.center is None:
        n = np.broadcast_to(task.trials, (count, J))
        k = rng.binomial(task.trials.astype(np.int64), task.correct / task.trials, size=(count, J))
        known = task.variance_known
        var = task.latency.ss / np.maximum(task.trials - 1, 1) if known else residual_variance
        var = np.broadcast_to(var, (J,))
        mean = task.latency.mean + rng.standard_normal((count, J)) * np.sqrt(var / task.trials)
        ss = var * rng.chisquare(np.maximum(task.trials - 1, 1), size=(count, J))
        return n.astype(np.float64), k.astype(np.float64), LatencyStats(n * 1.0, mean, ss)
    units = task.units
    totals = np.zeros((count, J, 5))
    if task.stratum is None:  # items: resample all units together
        size = units.shape[0]
        step = max(1, _CHUNK // size)
        for start in range(0, count, step):
            stop = min(count, start + step)
            weights = rng.multinomial(size, np.full(size, 1.0 / size), size=stop - start)
            totals[start:stop] = np.einsum("bu,ujc->bjc", weights, units)
    else:  # requests: resample within each budget
        for j in range(J):
            members = units[task.stratum == j]
            size = members.shape[0]
            step = max(1, _CHUNK // size)
            for start in range(0, count, step):
                stop = min(count, start + step)
                weights = rng.multinomial(size, np.full(size, 1.0 / size), size=stop - start)
                totals[start:stop, j, :] = weights @ members
    return totals[..., 0], totals[..., 1], _latency(totals, task.center)
