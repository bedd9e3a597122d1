"""The live page's view of the plan: a summary whose size does not grow with the types.

With up to :data:`MAX_ROWS` task types every type is a row, in the profile's order.
With more (10,000 types is a supported profile) the rows are the :data:`MAX_ROWS`
types with the largest estimated shares, and the whole distribution is summarised:
counts (types, at zero budget, at ``l_max``), the share-weighted mean budget and
accuracy, and a histogram of the budgets over :data:`BINS` equal bins of [0, l_max]
(types per bin and their estimated share). Every figure comes from the plan in force
(:class:`~thinkq.serve.controller.Plan`) and the profile's curves (eq. 1, eq. 2).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from thinkq.profile import Profile
from thinkq.serve.controller import Plan

__all__ = ["BINS", "MAX_ROWS", "budgets_summary"]

#: Types listed one per row (all of them up to this many, else the largest shares).
MAX_ROWS = 20
#: Bins of the budget histogram.
BINS = 16


def _rows(profile: Profile, plan: Plan, chosen: np.ndarray) -> list[dict[str, Any]]:
    budgets = np.asarray(plan.budgets, dtype=np.float64)
    t0, c = np.asarray(plan.t0), np.asarray(plan.c)
    accuracy = profile.A * -np.expm1(-profile.b * budgets) + profile.D  # eq. 2
    return [
        {
            "task": profile.names[i],
            "budget": plan.budgets[i],
            "share": plan.shares[i],
            "t0": plan.t0[i],
            "c": plan.c[i],
            "accuracy": float(accuracy[i]),
            "service_time": float(t0[i] + c[i] * budgets[i]),  # eq. 1
        }
        for i in chosen.tolist()
    ]


def _histogram(profile: Profile, plan: Plan) -> dict[str, Any]:
    budgets, shares = np.asarray(plan.budgets), np.asarray(plan.shares)
    top = max(profile.max_tokens, int(budgets.max(initial=0)), 1)
    edges = np.linspace(0.0, top, BINS + 1)
    counts, _ = np.histogram(budgets, bins=edges)
    weights, _ = np.histogram(budgets, bins=edges, weights=shares)
    return {
        "edges": edges.tolist(),
        "types": counts.astype(int).tolist(),
        "share": weights.tolist(),
    }


def budgets_summary(profile: Profile, plan: Plan) -> dict[str, Any]:
    """The budgets in force as the page shows them (see the module docstring)."""
    n = profile.size
    budgets, shares = np.asarray(plan.budgets), np.asarray(plan.shares)
    if n <= MAX_ROWS:
        chosen = np.arange(n)
    else:
        chosen = np.argpartition(-shares, MAX_ROWS - 1)[:MAX_ROWS]
        chosen = chosen[np.argsort(-shares[chosen], kind="stable")]
    accuracy = profile.A * -np.expm1(-profile.b * budgets) + profile.D
    return {
        "types": n,
        "all_rows": n <= MAX_ROWS,
        "rows": _rows(profile, plan, chosen),
        "zero_budget": int(np.count_nonzero(budgets == 0)),
        "at_max_tokens": int(np.count_nonzero(budgets >= profile.max_tokens)),
        "max_tokens": profile.max_tokens,
        "mean_budget": float(np.dot(shares, budgets)),
        "mean_accuracy": float(np.dot(shares, accuracy)),
        "min_budget": int(budgets.min()),
        "max_budget": int(budgets.max()),
        "histogram": _histogram(profile, plan),
    }
