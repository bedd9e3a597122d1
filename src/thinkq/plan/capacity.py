"""``plan_capacity``: how many identical replicas carry a rate within latency objectives.

The model: c identical replicas, each request sent to one of them uniformly at
random. A Poisson stream split at random is c independent Poisson streams of rate
lambda / c, so each replica is exactly the profile's server (M/G/1, or the batched
server of its ``[server]`` table) at lambda / c, and everything known about one server
at one rate holds per replica: nothing is approximated by the split. Routing to the
shortest queue (JSQ) balances better and needs at most as many replicas, so the count
is conservative for a JSQ router.

A count c is feasible when one replica at lambda / c meets every objective
(:func:`thinkq.slo.solve_slo` does not raise) with an accuracy of at least the floor.
Fewer arrivals per replica only shorten the queue, so feasibility is monotone in c:
the smallest feasible c is found by doubling, then bisection. The largest rate one
replica carries is found by bisection on the rate, from a feasible rate and an
infeasible one, to a relative ``rate_rtol``; the rate reported is the feasible end.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from thinkq import model
from thinkq.errors import SloError
from thinkq.plan.replica import Evaluator, Replica, lean_budgets, values
from thinkq.plan.result import ROUTING, CapacityPlan, ReplicaRow
from thinkq.profile import Profile
from thinkq.simulate.distributions import Distribution
from thinkq.slo.evaluate import Target, resolve
from thinkq.slo.objectives import Objective, parse_objectives
from thinkq.slo.times import DEFAULT_QUERIES, tails

__all__ = ["AROUND", "MAX_REPLICAS", "RATE_RTOL", "plan_capacity"]

#: The largest replica count searched.
MAX_REPLICAS = 1 << 20
#: Relative precision of the largest rate one replica carries.
RATE_RTOL = 1e-4
#: Rows reported on each side of the answer.
AROUND = 2
#: "Almost zero load": this fraction of the rate at which even zero budgets are unstable.
_IDLE = 1e-9
#: The fewest simulated queries per percentile (20 batches of 10; a batched server).
_MIN_QUERIES = 200
#: Rates beyond this are not searched (zero service times: every rate is carried).
_HUGE_RATE = 1e300


def _check(
    rate: float, min_accuracy: float | None, max_replicas: int, rate_rtol: float, queries: int
) -> None:
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.number)):
        raise ValueError(f"rate: expected a positive, finite number of queries/s, got {rate!r}")
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate: expected a positive, finite number of queries/s, got {rate!r}")
    if min_accuracy is not None and not 0.0 <= min_accuracy <= 1.0:
        raise ValueError(f"min_accuracy: expected a fraction in [0, 1], got {min_accuracy!r}")
    if isinstance(max_replicas, bool) or not isinstance(max_replicas, int) or max_replicas < 1:
        raise ValueError(f"max_replicas: expected an integer >= 1, got {max_replicas!r}")
    if not (math.isfinite(rate_rtol) and 0.0 < rate_rtol < 1.0):
        raise ValueError(f"rate_rtol: expected a number in (0, 1), got {rate_rtol!r}")
    if isinstance(queries, bool) or not isinstance(queries, int) or queries < _MIN_QUERIES:
        raise ValueError(f"queries: expected an integer >= {_MIN_QUERIES}, got {queries!r}")


def _shown(targets: Sequence[Target], achieved: Sequence[float]) -> tuple[Objective, float]:
    """The first objective missed and its value (the first one if none is)."""
    for target, value in zip(targets, achieved, strict=True):
        if not value <= target.objective.target:
            return target.objective, value
    return targets[0].objective, achieved[0]


def _seconds(value: float) -> str:
    return "infinite (the queue is unstable)" if math.isinf(value) else f"{value:.4g} s"


def _idle_rate(profile: Profile) -> float:
    """A rate at which a replica is almost idle: a tiny fraction of its stable range."""
    zero = np.zeros(profile.size, dtype=np.int64)
    busy = model.utilization(profile, zero) / profile.rate  # seconds of work per query
    return _IDLE / busy if busy > 0 else _IDLE * profile.rate


def _unmeetable(ev: Evaluator, idle: Replica, floor: float | None) -> SloError:
    """No replica count meets the objectives: the error, with the smallest value."""
    lean = lean_budgets(ev.served(idle.rate) or ev.profile, floor or 0.0, ev.options)
    if lean is None:  # the floor is out of reach
        best = model.mean_accuracy(ev.profile, np.full(ev.profile.size, ev.profile.max_tokens))
        reach = f"({best:.6g} with every type at l_max = {ev.profile.max_tokens})"
        if best >= (floor or 0.0):  # pragma: no cover (the path stopped converging)
            reach = "on the solver's path at almost zero load"
        return SloError(
            f"min_accuracy: {floor:g} is more than any budgets reach {reach}; "
            "no replica count meets it",
            objective=str(ev.targets[0].objective),
            smallest=math.inf,
        )
    achieved = values(ev.served(idle.rate) or ev.profile, lean, ev.targets, ev.times)
    o, value = _shown(ev.targets, achieved)
    kept = "zero budgets" if floor is None else f"budgets with accuracy >= {floor:g}"
    return SloError(
        f"slo: {o.text or str(o)!r}: not met at any replica count: even a replica at almost "
        f"zero load (service time alone) gives {o.statistic}"
        f"{'' if o.task is None else ' of ' + o.task} = {_seconds(value)} > {o.target:g} s "
        f"with {kept}",
        objective=str(o),
        smallest=value,
    )


def _too_many(ev: Evaluator, rate: float, max_replicas: int) -> SloError:
    """More than ``max_replicas`` replicas needed: the error, with what the cap gives."""
    at_cap = ev.at(rate / max_replicas)
    o, value = _shown(ev.targets, at_cap.achieved)
    why = f"{o.statistic} = {_seconds(value)}"
    if at_cap.reason == "accuracy":
        why = f"the best accuracy within the SLO is {at_cap.accuracy:.6g} < {ev.floor:g}"
    return SloError(
        f"slo: {o.text or str(o)!r}: more than {max_replicas} replicas needed to carry "
        f"{rate:g} queries/s ({why} at {max_replicas}; the search stops there)",
        objective=str(o),
        smallest=value,
    )


def _smallest_count(ev: Evaluator, rate: float, max_replicas: int) -> int:
    """The smallest feasible replica count: doubling, then bisection."""
    if ev.at(rate).feasible:
        return 1
    lo, hi = 1, 2  # lo infeasible
    while not ev.at(rate / min(hi, max_replicas)).feasible:
        if hi >= max_replicas:
            raise _too_many(ev, rate, max_replicas)
        lo, hi = hi, hi * 2
    hi = min(hi, max_replicas)
    while hi - lo > 1:
        middle = (lo + hi) // 2
        lo, hi = (lo, middle) if ev.at(rate / middle).feasible else (middle, hi)
    return hi


def _max_rate(ev: Evaluator, feasible: float, rtol: float) -> tuple[float, Replica]:
    """The largest rate one replica carries (to ``rtol``) and the replica there, from a
    feasible rate; ``inf`` if it carries every rate (zero budgets take no time).

    Above the rate at which even zero budgets are unstable nothing is feasible; where
    zero budgets take no time, the bracket grows by squared steps instead.
    """
    zero = np.zeros(ev.profile.size, dtype=np.int64)
    busy = model.utilization(ev.profile, zero)
    lo = feasible
    if busy > 0:
        hi = ev.profile.rate / busy  # unstable at zero budgets: infeasible
    elif model.mean_accuracy(ev.profile, zero) >= ev.floor:
        return math.inf, ev.at(feasible)  # zero budgets: no wait, the SLO holds at any rate
    else:
        hi, step = lo * 2.0, 2.0
        while ev.at(hi).feasible:
            if hi >= _HUGE_RATE:
                return math.inf, ev.at(hi)
            lo, step = hi, step * step
            hi = min(hi * step, _HUGE_RATE)
    while hi / lo - 1.0 > rtol:
        middle = math.sqrt(lo) * math.sqrt(hi)
        if not lo < middle < hi:
            break
        lo, hi = (middle, hi) if ev.at(middle).feasible else (lo, middle)
    return lo, ev.at(lo)


def _row(ev: Evaluator, replicas: int, rate: float, floor: float | None) -> ReplicaRow:
    """One replica count's row: the replica, its percentiles and the lean budgets."""
    replica = ev.at(rate / replicas)
    profile = ev.served(replica.rate)
    if profile is None:  # unstable at zero budgets: rho = rate E[S(0)] (/ C(B)) >= 1
        rho = model.utilization(ev.profile, replica.budgets) * replica.rate / ev.profile.rate
        return ReplicaRow(replicas, replica, rho, math.inf, math.inf, math.inf, None, None, None)
    mean = model.system_time(profile, replica.budgets)
    utilization = model.utilization(profile, replica.budgets)
    p95 = p99 = math.inf
    if math.isfinite(mean):
        times = ev.times(profile, replica.budgets)
        p95, p99 = times.percentile(95), times.percentile(99)
    lean = lean_budgets(profile, floor or 0.0, ev.options)
    if lean is None:
        return ReplicaRow(replicas, replica, utilization, mean, p95, p99, None, None, None)
    accuracy = model.mean_accuracy(profile, lean)
    achieved = values(profile, lean, ev.targets, ev.times)
    return ReplicaRow(replicas, replica, utilization, mean, p95, p99, lean, accuracy, achieved)


# long: the signature and docstring document its ten options (as thinkq.solve does)
def plan_capacity(
    profile: Profile,
    rate: float,
    objectives: Iterable[str | Objective],
    *,
    min_accuracy: float | None = None,
    max_replicas: int = MAX_REPLICAS,
    rate_rtol: float = RATE_RTOL,
    method: str = "auto",
    integer: str = "best",
    answer_times: Sequence[Distribution] | None = None,
    queries: int = DEFAULT_QUERIES,
    seed: int = 0,
) -> CapacityPlan:
    """The fewest identical replicas that carry ``rate`` within ``objectives``.

    Parameters
    ----------
    profile:
        One replica's instance (its rate and alpha are not used).
    rate:
        The total arrival rate, queries per second (split at random over replicas).
    objectives:
        ``"p95<=8s"``, ``"mean<=2s"``, ``"gsm8k:p99<=10s"``, ... (all must hold).
    min_accuracy:
        The accuracy floor (a fraction in [0, 1]) each replica's budgets must reach.
    max_replicas:
        The largest count searched.
    rate_rtol:
        Relative precision of the largest rate one replica carries.
    method, integer:
        Passed to every solve.
    answer_times, queries, seed:
        Passed to :func:`thinkq.tails.system_times` (see :func:`thinkq.slo.solve_slo`).

    Raises
    ------
    ValueError
        A bad ``rate``, ``min_accuracy``, ``max_replicas``, ``rate_rtol`` or ``queries``,
        or a malformed objective (the message names it).
    SloError
        Objectives no replica count meets: even a replica at almost zero load misses
        them (the service time alone exceeds a target, or the floor needs more), or
        more than ``max_replicas`` replicas would be needed.
    """
    _check(rate, min_accuracy, max_replicas, rate_rtol, queries)
    rate = float(rate)
    targets = resolve(parse_objectives(objectives), profile)
    options: dict[str, Any] = {"method": method, "integer": integer}
    times = tails(answer_times=answer_times, queries=queries, seed=seed)
    floor = 0.0 if min_accuracy is None else float(min_accuracy)
    ev = Evaluator(profile, targets, floor, times, options)
    idle = ev.at(_idle_rate(profile))
    if not idle.feasible:
        raise _unmeetable(ev, idle, min_accuracy)
    answer = _smallest_count(ev, rate, max_replicas)
    counts = range(max(1, answer - AROUND), answer + AROUND + 1)
    rows = tuple(_row(ev, c, rate, min_accuracy) for c in counts)
    max_rate, capacity = _max_rate(ev, rate / answer, rate_rtol)
    methods = [r.replica.slo.percentile_method for r in rows if r.replica.slo is not None]
    return CapacityPlan(
        rate=rate,
        objectives=tuple(t.objective for t in targets),
        min_accuracy=min_accuracy,
        replicas=answer,
        rows=rows,
        max_rate=max_rate,
        capacity=capacity,
        routing=ROUTING,
        names=profile.names,
        evaluations=ev.evaluations,
        percentile_method=next((m for m in methods if m is not None), None),
    )
