"""From fit to decision: how far the optimal budgets move with the fit's uncertainty.

A bootstrap replicate of a fit is a complete set of curve parameters (A, b, D, t0, c,
variance per task) that the measurements could equally have produced.
:func:`propagate` solves problem (9) for each replicate at the profile's operating
point and reports, per task, the spread of the optimal integer budget, and for J both
the optimum under each replicate and the J that the point budgets achieve under it:
their difference (the *regret*) is what shipping the point budgets costs if that
replicate is the truth.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from thinkq import model
from thinkq._typing import FloatArray
from thinkq.errors import ProfileError, ThinkqError
from thinkq.profile import Profile
from thinkq.solve import SolveResult, solve

__all__ = ["PARAMETERS", "Propagation", "Replicates", "propagate"]

#: The parameters a replicate holds, per task.
PARAMETERS = ("A", "b", "D", "t0", "c", "variance")


@dataclass(frozen=True, eq=False)
class Replicates:
    """Bootstrap replicates of a fit: one (R, N) array per parameter (R replicates)."""

    names: tuple[str, ...]
    A: FloatArray
    b: FloatArray
    D: FloatArray
    t0: FloatArray
    c: FloatArray
    variance: FloatArray

    @property
    def count(self) -> int:
        return int(self.A.shape[0])

    def profile(self, r: int, base: Profile) -> Profile:
        """Replicate ``r`` as a profile with ``base``'s shares and operating point."""
        return Profile.from_arrays(
            names=base.names,
            share=base.share,
            **{key: getattr(self, key)[r] for key in PARAMETERS},
            rate=base.rate,
            alpha=base.alpha,
            max_tokens=base.max_tokens,
            source=f"{base.source} (replicate {r + 1})",
        )

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names)} | {
            key: getattr(self, key).tolist() for key in PARAMETERS
        }

    @classmethod
    def from_dict(cls, data: Any) -> Replicates:
        """Validate a decoded ``replicates`` object (raises ``ValueError`` naming the key)."""
        if not isinstance(data, Mapping):
            raise ValueError("replicates: expected an object")
        names = data.get("names")
        if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
            raise ValueError("replicates.names: expected a list of task names")
        arrays = {}
        for key in PARAMETERS:
            try:
                array = np.array(data.get(key), dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"replicates.{key}: expected rows of numbers") from exc
            if array.ndim != 2 or array.shape[1] != len(names) or array.shape[0] < 1:
                raise ValueError(
                    f"replicates.{key}: expected one row of {len(names)} per replicate"
                )
            if not np.all(np.isfinite(array)):
                raise ValueError(f"replicates.{key}: numbers must be finite")
            arrays[key] = array
        if len({a.shape[0] for a in arrays.values()}) != 1:
            raise ValueError("replicates: every parameter needs the same number of replicates")
        return cls(names=tuple(names), **arrays)


@dataclass(frozen=True, eq=False)
class Propagation:
    """Optimal budgets and J across replicates (rows of ``budgets``, ``objective``...).

    ``objective`` is J at each replicate's own optimum, ``shipped`` J of the point
    budgets under each replicate, ``regret`` = objective - shipped (>= 0 up to solver
    tolerance). ``failed`` counts replicates whose profile is invalid at the operating
    point (unstable even with zero budgets); they are left out.
    """

    names: tuple[str, ...]
    level: float
    point: SolveResult
    budgets: NDArray[np.int64]
    objective: FloatArray
    shipped: FloatArray
    failed: int

    @property
    def replicates(self) -> int:
        return int(self.objective.size)

    def interval(self, values: NDArray[Any]) -> tuple[float, float]:
        tail = (1 - self.level) / 2
        low, high = np.quantile(np.asarray(values, dtype=np.float64), [tail, 1 - tail], axis=0)
        return float(low), float(high)

    @property
    def regret(self) -> FloatArray:
        result: FloatArray = self.objective - self.shipped
        return result

    def budget_intervals(self) -> list[tuple[float, float]]:
        return [self.interval(self.budgets[:, k]) for k in range(len(self.names))]

    def to_dict(self) -> dict[str, Any]:
        regret = self.regret
        return {
            "replicates": self.replicates,
            "failed": self.failed,
            "level": self.level,
            "objective": {
                "point": self.point.objective,
                "optimal_interval": list(self.interval(self.objective)),
                "shipped_interval": list(self.interval(self.shipped)),
                "regret_mean": float(np.mean(regret)),
                "regret_high": float(np.quantile(regret, self.level)),
            },
            "tasks": [
                {
                    "name": name,
                    "budget": int(self.point.budgets[k]),
                    "interval": list(interval),
                    "median": float(np.median(self.budgets[:, k])),
                    "zero_share": float(np.mean(self.budgets[:, k] == 0)),
                }
                for k, (name, interval) in enumerate(
                    zip(self.names, self.budget_intervals(), strict=True)
                )
            ],
        }


def propagate(
    profile: Profile,
    replicates: Replicates,
    *,
    count: int | None = None,
    level: float = 0.95,
    point: SolveResult | None = None,
    progress: Callable[[int, int], None] | None = None,
    **options: Any,
) -> Propagation:
    """Solve every replicate at ``profile``'s operating point (the first ``count``).

    ``options`` go to :func:`thinkq.solve` (``method``, ``integer``, ``tol``...).
    Raises ``ValueError`` naming ``count`` or ``replicates`` when they do not fit the
    profile, and :class:`~thinkq.ThinkqError` when no replicate can be solved.
    """
    if tuple(replicates.names) != profile.names:
        raise ValueError(
            "replicates: the fit's tasks are not the profile's "
            f"({', '.join(replicates.names)} vs {', '.join(profile.names)})"
        )
    total = replicates.count if count is None else count
    if not (isinstance(total, int) and 1 <= total <= replicates.count):
        raise ValueError(
            f"count: expected 1 to {replicates.count} replicates (as many as the fit "
            f"stored), got {total!r}"
        )
    if not 0 < level < 1:
        raise ValueError(f"level: expected a number in (0, 1), got {level!r}")
    point = point if point is not None else solve(profile, **options)
    budgets, objective, shipped, failed = [], [], [], 0
    for r in range(total):
        try:
            replica = replicates.profile(r, profile)
        except ProfileError:
            failed += 1
            continue
        start = point.continuous.budgets
        if model.utilization(replica, start) >= 1.0:
            start = np.zeros(replica.size)
        result = solve(replica, start=start, **options)
        budgets.append(result.budgets)
        objective.append(result.objective)
        shipped.append(model.objective(replica, point.budgets))
        if progress is not None:
            progress(r + 1, total)
    if not budgets:
        raise ThinkqError(
            f"none of the {total} replicates is stable at rate {profile.rate:g}/s: "
            "the fit's uncertainty cannot be propagated at this operating point"
        )
    return Propagation(
        names=profile.names,
        level=level,
        point=point,
        budgets=np.array(budgets, dtype=np.int64),
        objective=np.array(objective),
        shipped=np.array(shipped),
        failed=failed,
    )
