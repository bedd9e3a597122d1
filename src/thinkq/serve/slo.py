"""The gateway under latency objectives (``thinkq serve --slo 'p95<=8s'``).

At each re-solve the budgets are :func:`thinkq.slo.solve_slo`'s at the estimated load:
the most accurate budgets that meet every objective (alpha is replaced by the shadow
price). When even zero budgets miss an objective at the estimated load, the plan's
budgets are zero and the gateway admits only a fraction of the offered requests: the
largest rate r_max at which zero budgets meet every objective, over the estimated
rate (:func:`max_rate`, a bisection on the rate). Admission thins the arrivals
evenly (a credit of that fraction per arrival, one admission per whole credit), so
the admitted stream is at most r_max on average and no burstier than the offered one;
the others get 503 with ``Retry-After`` (:mod:`thinkq.serve.admission`).

Hysteresis: the budgets in force are kept while they still meet every objective at
the new estimate and the new budgets would raise the mean accuracy by no more than
the hysteresis (relative).

What the objectives measure at the budgets in force is :func:`thinkq.slo` 's
(:mod:`thinkq.slo.evaluate`): means from the model, percentiles from
:func:`thinkq.tails.system_times` (exact on the paper's server; on a batched server a
simulation of :data:`GATEWAY_QUERIES` queries, seeded, with its noise). The measured
values come from the served requests of the window (:func:`measured`): percentiles
as the smallest time with at least that fraction of the requests at or below it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from thinkq import model
from thinkq._typing import IntArray
from thinkq.errors import SloError
from thinkq.profile import Profile
from thinkq.serve.queue import Record
from thinkq.slo import Objective, parse_objectives, solve_slo
from thinkq.slo.evaluate import Target, measure, resolve
from thinkq.slo.times import tails

__all__ = [
    "GATEWAY_QUERIES",
    "SloState",
    "max_rate",
    "measured",
    "plan_slo",
    "resolved",
    "unmeetable",
]

#: Simulated queries per budget vector for percentiles on a batched server.
GATEWAY_QUERIES = 20_000
_RATE_STEPS = 40


@dataclass(frozen=True, slots=True)
class SloState:
    """The objectives at the budgets in force, as the model predicts them.

    Attributes
    ----------
    objectives:
        The objectives (all must hold).
    predicted:
        Each objective's value at the plan's budgets and estimated load, seconds
        (``inf`` where unstable).
    shadow_price:
        The alpha whose unconstrained solve gives the budgets (``None`` when no
        objective binds, or when they cannot be met).
    meetable:
        Whether zero budgets meet every objective at the estimated load.
    admitted:
        The fraction of offered requests admitted (1 when meetable).
    max_rate:
        The largest rate at which zero budgets meet every objective (1/s), when
        they cannot be met at the estimated load; else ``None``.
    """

    objectives: tuple[Objective, ...]
    predicted: tuple[float, ...]
    shadow_price: float | None
    meetable: bool = True
    admitted: float = 1.0
    max_rate: float | None = None


def resolved(profile: Profile, objectives: Sequence[str | Objective]) -> tuple[Objective, ...]:
    """The objectives parsed, their tasks looked up in ``profile`` (``ValueError``)."""
    return tuple(t.objective for t in resolve(parse_objectives(objectives), profile))


def _feasible(point: Profile, targets: Sequence[Target], budgets: IntArray) -> bool:
    return measure(point, budgets, targets, tails(queries=GATEWAY_QUERIES)).feasible


def max_rate(point: Profile, objectives: Sequence[Objective], up_to: float) -> float:
    """The largest rate (1/s) up to ``up_to`` at which zero budgets meet every objective.

    ``point`` gives the shares and latency lines (its own rate is not used). A
    bisection on the rate below the stability limit at zero budgets, to 1e-3
    relative; 0 if no rate does.
    """
    targets = resolve(objectives, point)
    zero = np.zeros(point.size, dtype=np.int64)
    mean = float(np.dot(point.share, point.t0))
    server = point.batched
    most = (1.0 / mean if server is None else server.rate_limit(mean)) if mean > 0 else math.inf
    limit = most * (1.0 - 1e-9)
    high, low = min(up_to, limit), 0.0
    if _feasible(point.replace(rate=high), targets, zero):
        return high
    for _ in range(_RATE_STEPS):
        middle = 0.5 * (low + high)
        if high - low <= 1e-3 * high:
            break
        if _feasible(point.replace(rate=middle), targets, zero):
            low = middle
        else:
            high = middle
    return low


def plan_slo(
    point: Profile,
    objectives: Sequence[Objective],
    *,
    before: tuple[int, ...] | None,
    hysteresis: float,
) -> tuple[IntArray, SloState]:
    """The budgets at the operating point ``point`` under ``objectives``, and their state.

    ``before`` are the budgets in force (kept under the hysteresis rule of the module).
    """
    targets = resolve(objectives, point)
    try:
        result = solve_slo(point, objectives, queries=GATEWAY_QUERIES)
    except SloError:
        zero = np.zeros(point.size, dtype=np.int64)
        values = measure(point, zero, targets, tails(queries=GATEWAY_QUERIES)).values
        return zero, unmeetable(point, objectives, point.rate, values)
    budgets = result.budgets
    if before is not None:
        kept = np.asarray(before, dtype=np.int64)
        check = measure(point, kept, targets, tails(queries=GATEWAY_QUERIES))
        gain = result.accuracy - model.mean_accuracy(point, kept)
        if check.feasible and gain <= hysteresis * abs(result.accuracy):
            return kept, SloState(tuple(objectives), check.values, result.shadow_price)
    return budgets, SloState(tuple(objectives), result.achieved, result.shadow_price)


def unmeetable(
    point: Profile, objectives: Sequence[Objective], rate: float, values: tuple[float, ...]
) -> SloState:
    """The state when zero budgets miss an objective at the estimated ``rate``.

    ``point`` is the operating point at a stable rate (its shares and lines);
    ``values`` the objectives' values predicted at zero budgets (``inf``: unstable).
    """
    top = max_rate(point, objectives, rate)
    admitted = min(top / rate, 1.0) if rate > 0 else 1.0
    return SloState(tuple(objectives), values, None, False, admitted, top)


def measured(
    objectives: Sequence[Objective], records: Sequence[Record]
) -> tuple[float | None, ...]:
    """Each objective over the served requests of ``records`` (``None`` without any)."""
    values: list[float | None] = []
    for o in objectives:
        times = [r.system_time for r in records if r.outcome == "ok" and o.task in (None, r.task)]
        if not times:
            values.append(None)
        elif o.percentile is None:
            values.append(float(np.mean(times)))
        else:
            q = o.percentile / 100.0
            values.append(float(np.quantile(times, q, method="inverted_cdf")))
    return tuple(values)
