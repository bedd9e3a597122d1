"""Fit a profile to measurements: accuracy and latency curves with their uncertainty.

:func:`fit_records` reads measurement files (:mod:`thinkq.records`), fits per task

* the accuracy curve p(l) = A (1 - e^{-b l}) + D (eq. 2) by binomial maximum
  likelihood (:mod:`.accuracy`),
* the service-time line t(l) = t0 + c l (eq. 1), robust to stalled requests, and the
  variance around it (:mod:`.latency`),

bootstraps both (:mod:`.data`) for percentile intervals, and returns a
:class:`FitResult`: a validated :class:`~thinkq.Profile` at the chosen operating
point, a report per task (parameters, intervals, goodness of fit, warnings) and the
bootstrap :class:`Replicates`, which :func:`propagate` turns into intervals on the
optimal budgets and J.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thinkq.errors import FitError
from thinkq.fit._likelihood import A_MIN
from thinkq.fit.accuracy import AccuracyFit, FloatArray, fit_accuracy, refit_accuracy
from thinkq.fit.data import TaskData, resample, task_data
from thinkq.fit.latency import C_MIN, LatencyFit, fit_latency, fit_line, pooled_variance
from thinkq.fit.report import task_report
from thinkq.fit.uncertainty import PARAMETERS, Propagation, Replicates, propagate
from thinkq.profile import Profile
from thinkq.records import RecordSet, read_records

__all__ = [
    "A_MIN",
    "C_MIN",
    "DEFAULT_ALPHA",
    "DEFAULT_BOOTSTRAP",
    "DEFAULT_RATE",
    "SHARES",
    "AccuracyFit",
    "FitError",
    "FitResult",
    "LatencyFit",
    "Propagation",
    "Replicates",
    "TaskFit",
    "fit_records",
    "propagate",
]

#: The paper's operating point (section IV), the default of a fitted profile.
DEFAULT_RATE = 0.1
DEFAULT_ALPHA = 30.0
DEFAULT_BOOTSTRAP = 200
SHARES = ("empirical", "uniform")
#: Bootstrap replicates refitted together (one progress step).
_BATCH = 25


@dataclass(frozen=True)
class TaskFit:
    """One task's fits; ``intervals`` maps each of A, b, D, t0, c, variance to its
    bootstrap percentile interval (empty without a bootstrap)."""

    name: str
    share: float
    data: TaskData
    accuracy: AccuracyFit
    latency: LatencyFit
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.accuracy.warnings + self.latency.warnings


@dataclass(frozen=True)
class FitResult:
    """A fitted profile, the fit of every task and the bootstrap replicates."""

    profile: Profile
    tasks: tuple[TaskFit, ...]
    replicates: Replicates | None
    level: float
    seed: int | None
    model: str | None
    files: tuple[str, ...]
    measured_max: int

    @property
    def warnings(self) -> tuple[str, ...]:
        """Every task's warnings, each prefixed by the task, then the profile's."""
        notes = [f"{t.name}: {w}" for t in self.tasks for w in t.warnings]
        if self.profile.max_tokens > self.measured_max:
            notes.append(
                f"max_tokens {self.profile.max_tokens} is above the largest measured budget "
                f"{self.measured_max}: budgets beyond it rest on extrapolated curves"
            )
        return tuple(notes)

    def to_dict(self, *, replicates: bool = False) -> dict[str, Any]:
        """The fit report (the ``--json`` output; with ``replicates`` the sidecar file)."""
        data: dict[str, Any] = {
            "format": "thinkq-fit/1",
            "files": list(self.files),
            "model": self.model,
            "level": self.level,
            "bootstrap": self.replicates.count if self.replicates else 0,
            "seed": self.seed,
            "profile": self.profile.to_dict(),
            "tasks": [task_report(t) for t in self.tasks],
            "warnings": list(self.warnings),
        }
        if replicates and self.replicates is not None:
            data["replicates"] = self.replicates.to_dict()
        return data


def _latency_fits(tasks: tuple[TaskData, ...]) -> list[LatencyFit]:
    fits: dict[int, LatencyFit] = {}
    for i, t in enumerate(tasks):
        if t.budgets.size >= 2:
            fits[i] = fit_latency(
                t.budgets, t.latency, outliers=t.outliers, variance_known=t.variance_known
            )
    single = [i for i, t in enumerate(tasks) if t.budgets.size < 2]
    if single:
        slopes = [f.c for f in fits.values() if f.c > C_MIN] or [f.c for f in fits.values()]
        if not slopes:
            raise FitError(
                "no task was measured at two or more budgets, so the time per thinking token "
                "c cannot be estimated: measure at least one task at two budgets"
            )
        borrowed = float(np.median(slopes))
        for i in single:
            t = tasks[i]
            fits[i] = fit_latency(
                t.budgets,
                t.latency,
                outliers=t.outliers,
                c_fixed=borrowed,
                variance_known=t.variance_known,
            )
    return [fits[i] for i in range(len(tasks))]


def _replicates(
    task: TaskData,
    accuracy: AccuracyFit,
    latency: LatencyFit,
    count: int,
    rng: np.random.Generator,
    tick: Callable[[int], None],
) -> dict[str, FloatArray]:
    l = task.budgets
    residual = 0.0
    if not task.variance_known and l.size > 2:  # a summary without variances
        gap = task.latency.mean - latency.line(l)
        residual = float(np.sum(task.trials * gap**2) / (l.size - 2))
    n, k, lat = resample(task, count, rng, residual_variance=residual)
    out: dict[str, FloatArray] = {}
    for start in range(0, count, _BATCH):
        stop = min(count, start + _BATCH)
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


def fit_records(
    records: RecordSet | Iterable[str | Path],
    *,
    rate: float = DEFAULT_RATE,
    alpha: float = DEFAULT_ALPHA,
    max_tokens: int | None = None,
    shares: str = "empirical",
    bootstrap: int = DEFAULT_BOOTSTRAP,
    level: float = 0.95,
    seed: int | None = 0,
    progress: Callable[[int, int], None] | None = None,
) -> FitResult:
    """Fit a profile to measurement files (or a :class:`~thinkq.records.RecordSet`).

    Parameters
    ----------
    rate, alpha:
        The operating point written to the profile (default: the paper's, 0.1/s, 30).
    max_tokens:
        l_max of the profile; default the largest measured budget (beyond it the
        curves are extrapolations).
    shares:
        ``"empirical"``: each task's share of the queries in the measurements;
        ``"uniform"``: equal shares.
    bootstrap:
        Replicates for the intervals and for :func:`propagate` (0: none).
    level:
        Coverage of the percentile intervals.
    seed:
        Seed of the bootstrap (the same seed gives the same intervals).
    progress:
        Called as ``progress(done, total)`` while bootstrapping.

    Raises
    ------
    RecordError
        Malformed measurement files (every bad line is listed).
    FitError
        Measurements that cannot give c (no task measured at two budgets).
    ProfileError
        The fitted profile is invalid at the operating point (e.g. unstable ``rate``).
    ValueError
        A bad ``shares``, ``bootstrap`` or ``level``.
    """
    if shares not in SHARES:
        raise ValueError(f"shares: expected one of {', '.join(SHARES)}, got {shares!r}")
    if not (isinstance(bootstrap, int) and bootstrap >= 0):
        raise ValueError(f"bootstrap: expected an integer >= 0, got {bootstrap!r}")
    if not 0 < level < 1:
        raise ValueError(f"level: expected a number in (0, 1), got {level!r}")
    record_set = records if isinstance(records, RecordSet) else read_records(records)
    tasks = task_data(record_set)
    accuracy = [fit_accuracy(t.budgets, t.trials, t.correct) for t in tasks]
    latency = _latency_fits(tasks)
    measured_max = int(max(float(t.budgets.max()) for t in tasks))
    weights = [float(t.queries) if shares == "empirical" else 1.0 for t in tasks]
    profile = Profile.from_arrays(
        names=[t.name for t in tasks],
        share=weights,
        A=[a.A for a in accuracy],
        b=[a.b for a in accuracy],
        D=[a.D for a in accuracy],
        t0=[s.t0 for s in latency],
        c=[s.c for s in latency],
        variance=[s.variance for s in latency],
        rate=rate,
        alpha=alpha,
        max_tokens=measured_max if max_tokens is None else max_tokens,
        source=", ".join(record_set.files),
    )
    replicates, intervals = None, [dict[str, tuple[float, float]]() for _ in tasks]
    if bootstrap:
        total, done = bootstrap * len(tasks), 0

        def tick(count: int) -> None:
            nonlocal done
            done += count
            if progress is not None:
                progress(done, total)

        streams = np.random.SeedSequence(seed).spawn(len(tasks))
        draws = [
            _replicates(t, a, s, bootstrap, np.random.default_rng(stream), tick)
            for t, a, s, stream in zip(tasks, accuracy, latency, streams, strict=True)
        ]
        replicates = Replicates(
            names=profile.names,
            **{key: np.column_stack([d[key] for d in draws]) for key in PARAMETERS},
        )
        tail = (1 - level) / 2
        for i, d in enumerate(draws):
            for key in PARAMETERS:
                low, high = np.quantile(d[key], [tail, 1 - tail])
                intervals[i][key] = (float(low), float(high))
    return FitResult(
        profile=profile,
        tasks=tuple(
            TaskFit(t.name, float(profile.share[i]), t, accuracy[i], latency[i], intervals[i])
            for i, t in enumerate(tasks)
        ),
        replicates=replicates,
        level=level,
        seed=seed,
        model=record_set.model,
        files=record_set.files,
        measured_max=measured_max,
    )
