"""A vectorised FIFO M/G/1 simulator of the paper's server (section IV).

Queries arrive as a Poisson stream at ``rate``; each is of type k with probability
pi_k and takes S = c_k l_k + X_k seconds, X_k deterministic (t0_k, the paper's
model) or drawn from an answer-time :mod:`distribution <thinkq.simulate.distributions>`.
Waiting times follow Lindley's recursion W_n = max(0, W_{n-1} + S_{n-1} - A_n),
solved without a Python loop per query: within a block, with Y the running sum of
S_{n-1} - A_n started from the carried wait, W = Y - min(0, running min of Y).
Blocks keep the sums short (no drift over 10^8 queries) and the memory bounded; the
wait and service at the end of a block carry over to the next.

Means are exact sums. Percentiles come from log-spaced histograms (256 bins per
doubling overall, 0.27 % relative resolution; 64 per doubling per type, for up to
256 types). Confidence intervals use batch means over contiguous batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from thinkq import model
from thinkq._typing import FloatArray
from thinkq.profile import Profile
from thinkq.simulate.distributions import Deterministic, Distribution, Lognormal
from thinkq.simulate.queueing import Histogram, TypeSampler, draw_answer_times, lindley

__all__ = ["Simulation", "TaskStatistics", "simulate"]

_BLOCK = 1 << 18
_BATCHES = 20
_LEVEL = 0.95
_FINE = 256  # bins per doubling, overall
_COARSE = 64  # bins per doubling, per type
_PER_TYPE_LIMIT = 256


@dataclass(frozen=True)
class TaskStatistics:
    """Simulated and analytic figures of one query type (times in seconds)."""

    name: str
    budget: float
    queries: int
    mean_waiting_time: float
    mean_system_time: float
    p50_system_time: float | None
    p95_system_time: float | None
    p99_system_time: float | None
    accuracy: float
    analytic_mean_system_time: float
    analytic_accuracy: float


@dataclass(frozen=True)
class Simulation:
    """The outcome of :func:`simulate` (times in seconds).

    ``objective`` is J (eq. 7) as realised: alpha times the realised accuracy minus
    the simulated mean system time. ``*_ci`` are two-sided confidence intervals
    (level ``ci_level``) from batch means; ``analytic_*`` are the Pollaczek-Khinchine
    figures (eqs. 3-7) for the same budgets and service distributions.
    """

    queries: int
    warmup: int
    seed: int | None
    mean_waiting_time: float
    mean_system_time: float
    p50_waiting_time: float
    p95_waiting_time: float
    p99_waiting_time: float
    p50_system_time: float
    p95_system_time: float
    p99_system_time: float
    utilization: float
    accuracy: float
    ci_level: float
    mean_waiting_time_ci: tuple[float, float]
    mean_system_time_ci: tuple[float, float]
    accuracy_ci: tuple[float, float]
    objective: float
    objective_ci: tuple[float, float]
    analytic_mean_waiting_time: float
    analytic_mean_system_time: float
    analytic_utilization: float
    analytic_accuracy: float
    analytic_objective: float
    tasks: tuple[TaskStatistics, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (the schema of ``thinkq simulate --json``)."""
        data = asdict(self)
        for key in ("mean_waiting_time_ci", "mean_system_time_ci", "accuracy_ci", "objective_ci"):
            data[key] = list(data[key])
        return data


def _answer_sampler(
    profile: Profile, answer_times: Sequence[Distribution] | None
) -> Sequence[Distribution] | None:
    if answer_times is None:
        return _profile_answer_times(profile)
    if len(answer_times) != profile.size:
        raise ValueError(
            f"answer_times: expected {profile.size} distributions (one per type), "
            f"got {len(answer_times)}"
        )
    for k, dist in enumerate(answer_times):
        if not isinstance(dist, Distribution):
            raise ValueError(
                f"answer_times[{k}]: not a distribution (needs mean, variance, sample)"
            )
        if not math.isclose(dist.mean, profile.t0[k], rel_tol=1e-9, abs_tol=1e-12):
            raise ValueError(
                f"answer_times[{k}]: mean {dist.mean:g} s differs from t0 = "
                f"{profile.t0[k]:g} s of task '{profile.names[k]}' "
                "(use Profile.with_answer_times to take t0 from the distributions)"
            )
    return answer_times


def _profile_answer_times(profile: Profile) -> list[Distribution] | None:
    """The profile's own service variability: lognormal where its variance is positive.

    ``None`` (deterministic, the paper's model) when no task has a variance.
    """
    if not np.any(profile.variance > 0):
        return None
    answers: list[Distribution] = []
    for k, (mean, variance) in enumerate(zip(profile.t0, profile.variance, strict=True)):
        if variance == 0:
            answers.append(Deterministic(float(mean)))
        elif mean > 0:
            answers.append(Lognormal(float(mean), math.sqrt(variance) / float(mean)))
        else:
            raise ValueError(
                f"profile: task '{profile.names[k]}' has variance {variance:g} s^2 around "
                "t0 = 0: a non-negative answer time with mean 0 cannot vary; "
                "pass answer_times explicitly"
            )
    return answers


def simulate(
    profile: Profile,
    budgets: ArrayLike,
    *,
    queries: int = 10_000,
    seed: int | None = None,
    warmup: int | None = None,
    answer_times: Sequence[Distribution] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Simulation:
    """Simulate ``queries`` queries of the FIFO M/G/1 server at ``budgets``.

    Parameters
    ----------
    profile:
        The instance: rate, shares and curves.
    budgets:
        Thinking tokens per type (as in :func:`thinkq.solve`).
    queries:
        Measured queries (after the warm-up).
    seed:
        Seed of numpy's default generator; the same seed gives the same result.
    warmup:
        Queries simulated first and discarded (the queue starts empty); default
        ``queries // 10``.
    answer_times:
        One distribution per type for the answer part X_k of the service time (mean
        t0_k). Default: the profile's own variability: deterministic (as in the
        paper) where a task's ``variance`` is 0, else lognormal with mean t0_k and
        that variance. The analytic figures use the same distributions' variances.
    progress:
        Called as ``progress(done, total)`` after each block of queries.

    Returns
    -------
    Simulation
        Means, percentiles, confidence intervals, utilisation, realised accuracy,
        per type, and the P-K figures for comparison.
    """
    if isinstance(queries, bool) or not isinstance(queries, int) or queries < _BATCHES:
        raise ValueError(f"queries: expected an integer >= {_BATCHES}, got {queries!r}")
    warm = queries // 10 if warmup is None else warmup
    if isinstance(warm, bool) or not isinstance(warm, int) or warm < 0:
        raise ValueError(f"warmup: expected an integer >= 0, got {warmup!r}")
    l = np.asarray(budgets, dtype=np.float64)
    if l.shape != (profile.size,) or not np.all(np.isfinite(l)) or np.any(l < 0):
        raise ValueError(f"budgets: expected {profile.size} finite budgets >= 0")
    answers = _answer_sampler(profile, answer_times)
    variance = None if answers is None else np.array([d.variance for d in answers])
    if model.utilization(profile, l) >= 1.0:
        raise ValueError("budgets: the queue is unstable at these budgets (rate * E[S] >= 1)")

    rng = np.random.default_rng(seed)
    sampler = TypeSampler(profile.share)
    n_types = profile.size
    thinking = profile.c * l
    service_of = thinking + profile.t0
    correct_of = model.accuracy(profile, l)
    overall_wait, overall_system = Histogram(_FINE), Histogram(_FINE)
    type_system = Histogram(_COARSE, n_types) if n_types <= _PER_TYPE_LIMIT else None
    count = np.zeros(n_types, dtype=np.int64)
    sum_wait = np.zeros(n_types)
    sum_service = np.zeros(n_types)
    sum_correct = np.zeros(n_types)
    batch_wait = np.zeros(_BATCHES)
    batch_system = np.zeros(_BATCHES)
    batch_correct = np.zeros(_BATCHES)
    busy = span = 0.0
    carry = (0.0, 0.0)  # the wait and the service of the last query so far
    # the warm-up, then the batches of the confidence intervals, each in blocks
    edges = [warm + queries * b // _BATCHES for b in range(_BATCHES + 1)]
    segments = [(-1, 0, warm)] + [(b, edges[b], edges[b + 1]) for b in range(_BATCHES)]
    for batch, first, last in segments:
        for start in range(first, last, _BLOCK):
            size = min(_BLOCK, last - start)
            gaps = rng.exponential(1.0 / profile.rate, size)
            types = sampler.draw(rng, size)
            service = service_of[types]
            if answers is not None:
                service = thinking[types] + draw_answer_times(answers, types, rng)
            wait, carry = lindley(gaps, service, carry)
            if progress is not None:
                progress(start + size, warm + queries)
            if batch < 0:
                continue
            system = wait + service
            n_k = np.bincount(types, minlength=n_types)
            # a Bernoulli draw per query, summed per type: one binomial draw per type
            correct_k = rng.binomial(n_k, correct_of)
            count += n_k
            sum_correct += correct_k
            sum_wait += np.bincount(types, weights=wait, minlength=n_types)
            if answers is None:
                sum_service += n_k * service_of
            else:
                sum_service += np.bincount(types, weights=service, minlength=n_types)
            busy += float(service.sum())
            span += float(gaps.sum())
            batch_wait[batch] += float(wait.sum())
            batch_system[batch] += float(system.sum())
            batch_correct[batch] += float(correct_k.sum())
            overall_wait.add(wait)
            overall_system.add(system)
            if type_system is not None:
                type_system.add(system, types)
    sum_system = sum_wait + sum_service
    batch_size = np.diff(edges)
    analytic = profile if variance is None else profile.with_variance(variance)
    wait_pk = model.waiting_time(analytic, l)

    def interval(batch_sums: FloatArray) -> tuple[float, float]:
        means = batch_sums / batch_size
        half = stats.t.ppf(0.5 + _LEVEL / 2, _BATCHES - 1) * means.std(ddof=1) / math.sqrt(_BATCHES)
        centre = float(batch_sums.sum() / queries)
        return (centre - float(half), centre + float(half))

    tasks = tuple(
        TaskStatistics(
            name=name,
            budget=float(l[k]),
            queries=int(count[k]),
            mean_waiting_time=float(sum_wait[k] / count[k]) if count[k] else math.nan,
            mean_system_time=float(sum_system[k] / count[k]) if count[k] else math.nan,
            p50_system_time=type_system.quantile(0.50, k) if type_system else None,
            p95_system_time=type_system.quantile(0.95, k) if type_system else None,
            p99_system_time=type_system.quantile(0.99, k) if type_system else None,
            accuracy=float(sum_correct[k] / count[k]) if count[k] else math.nan,
            analytic_mean_system_time=wait_pk + float(service_of[k]),
            analytic_accuracy=float(correct_of[k]),
        )
        for k, name in enumerate(profile.names)
    )
    return Simulation(
        queries=queries,
        warmup=warm,
        seed=seed,
        mean_waiting_time=float(sum_wait.sum() / queries),
        mean_system_time=float(sum_system.sum() / queries),
        p50_waiting_time=overall_wait.quantile(0.50),
        p95_waiting_time=overall_wait.quantile(0.95),
        p99_waiting_time=overall_wait.quantile(0.99),
        p50_system_time=overall_system.quantile(0.50),
        p95_system_time=overall_system.quantile(0.95),
        p99_system_time=overall_system.quantile(0.99),
        utilization=busy / span,
        accuracy=float(sum_correct.sum() / queries),
        ci_level=_LEVEL,
        mean_waiting_time_ci=interval(batch_wait),
        mean_system_time_ci=interval(batch_system),
        accuracy_ci=interval(batch_correct),
        objective=float(profile.alpha * sum_correct.sum() / queries - sum_system.sum() / queries),
        objective_ci=interval(profile.alpha * batch_correct - batch_system),
        analytic_mean_waiting_time=wait_pk,
        analytic_mean_system_time=model.system_time(analytic, l),
        analytic_utilization=model.utilization(analytic, l),
        analytic_accuracy=model.mean_accuracy(profile, l),
        analytic_objective=model.objective(analytic, l),
        tasks=tasks,
    )
