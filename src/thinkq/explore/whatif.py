"""One what-if answer: the library's solve at the page's settings, and what it does.

Everything here is :func:`thinkq.solve` (the integer budgets ``thinkq solve`` prints),
:func:`thinkq.tails.system_times` (the p95 ``thinkq solve --json`` prints) and
:func:`thinkq.slo.frontier.frontier`: no second implementation of the model.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np

from thinkq import model
from thinkq._typing import FloatArray, IntArray
from thinkq.errors import ThinkqError, UnstableLoadError
from thinkq.explore.settings import Settings, apply, saturation_rate
from thinkq.profile import Profile
from thinkq.slo.frontier import frontier
from thinkq.slo.times import tails
from thinkq.solve import SolveResult, solve
from thinkq.tails import system_times

__all__ = [
    "FRONTIER_POINTS",
    "FRONTIER_QUERIES",
    "FULL_TABLE_MAX_TASKS",
    "LARGEST_SHOWN",
    "what_if",
]

#: Up to this many task types every row is shown; beyond, the largest shares only.
FULL_TABLE_MAX_TASKS = 50
#: How many types (those with the largest shares of the queries) a summary shows.
LARGEST_SHOWN = 20
#: Bins of positive budgets in a summary's histogram (zero budgets have their own).
HISTOGRAM_BINS = 8
#: Points of the frontier (fewer than ``thinkq frontier``'s 30: it is redrawn as you drag).
FRONTIER_POINTS = 20
#: Simulated queries per frontier point on a batched server (p95 only; the mean is exact).
FRONTIER_QUERIES = 20_000


def _rows(result: SolveResult) -> tuple[str, list[dict[str, Any]]]:
    """Every type (few types), or those with the largest shares of the queries (ties:
    the larger budget first)."""
    p = result.profile
    if p.size <= FULL_TABLE_MAX_TASKS:
        shown, order = "all", list(range(p.size))
    else:
        keys = np.lexsort((-result.budgets, -p.share))[:LARGEST_SHOWN]
        shown, order = "largest", [int(k) for k in keys]
    accuracy = model.accuracy(p, result.budgets)
    service = model.service_time(p, result.budgets)
    rows = [
        {
            "name": p.names[k],
            "share": float(p.share[k]),
            "budget": int(result.budgets[k]),
            "continuous_budget": float(result.continuous.budgets[k]),
            "accuracy": float(accuracy[k]),
            "service_time": float(service[k]),
        }
        for k in order
    ]
    return shown, rows


def _histogram(budgets: IntArray, share: FloatArray) -> list[dict[str, Any]]:
    """Types and share of the queries by budget: zero, then equal bins up to the largest
    (each bin holds budgets in (low, high])."""
    top = int(budgets.max()) if budgets.size else 0
    edges = np.unique(np.ceil(np.linspace(0, top, HISTOGRAM_BINS + 1)).astype(np.int64))
    bins = [(0, 0)] + [(int(a), int(b)) for a, b in itertools.pairwise(edges)]
    found = []
    for low, high in bins:
        inside = budgets == 0 if high == 0 else (budgets > low) & (budgets <= high)
        found.append(
            {"low": low, "high": high, "types": int(np.count_nonzero(inside)),
             "share": float(share[inside].sum())}
        )  # fmt: skip
    return found


def _summary(result: SolveResult) -> dict[str, Any]:
    budgets, p = result.budgets, result.profile
    at_zero = int(np.count_nonzero(budgets == 0))
    at_max = int(np.count_nonzero(budgets == p.max_tokens)) if p.max_tokens > 0 else 0
    return {
        "types": int(budgets.size),
        "at_zero": at_zero,
        "at_max": at_max,
        "in_between": int(budgets.size) - at_zero - at_max,
        "total_budget": int(budgets.sum()),
        "mean_budget_per_query": float(np.dot(p.share, budgets)),
        "histogram": _histogram(budgets, p.share),
    }


def _p95(result: SolveResult) -> tuple[float | None, str | None]:
    try:
        times = system_times(result.profile, result.budgets)
    except (ThinkqError, ValueError, ArithmeticError):
        return None, None
    return float(times.percentile(95.0)), times.method


def _frontier(profile: Profile) -> dict[str, Any]:
    try:
        traced = frontier(profile, points=FRONTIER_POINTS, times=tails(queries=FRONTIER_QUERIES))
    except (ThinkqError, ValueError, ArithmeticError) as exc:
        return {"frontier": None, "frontier_error": " ".join(str(exc).split())}
    data = traced.to_dict()
    for point in [data["operating_point"], *data["points"]]:
        del point["budgets"]  # the page draws the trace; the budgets are above it
    del data["names"]
    return {"frontier": data}


def what_if(profile: Profile, settings: Settings, *, trace: bool = True) -> dict[str, Any]:
    """The page's answer at ``settings`` as JSON-ready data (``docs/explore.md``).

    Raises ``ValueError`` naming the field for an invalid setting; a load unstable
    even at zero budgets is an answer (``"stable": false`` and a ``message``).
    """
    started = time.perf_counter()
    head: dict[str, Any] = {"settings": settings.to_dict()}
    try:
        here = apply(profile, settings)
    except UnstableLoadError as exc:
        return head | {
            "stable": False,
            "message": str(exc).removeprefix("field 'rate': "),
            "saturation_rate": saturation_rate(profile, settings.slots),
        }
    result = solve(here)
    p95, method = _p95(result)
    shown, rows = _rows(result)
    figures = result.server
    c = result.continuous
    answer = head | {
        "stable": True,
        "saturation_rate": saturation_rate(here),
        "names": list(here.names),
        "budgets": [int(b) for b in result.budgets],
        "summary": _summary(result),
        "shown": shown,
        "rows": rows,
        "accuracy": result.accuracy,
        "objective": result.objective,
        "mean_system_time": result.mean_system_time,
        "p95_system_time": p95,
        "percentile_method": method,
        "utilization": result.utilization,
        "mean_batch": None if figures is None else figures.mean_batch,
        "converged": c.converged,
        "kkt_residual": c.kkt_residual,
    }
    if trace:
        answer |= _frontier(here)
    return answer | {"seconds": time.perf_counter() - started}
