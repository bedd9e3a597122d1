"""The result of an SLO-constrained solve (:func:`thinkq.slo.solve_slo`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thinkq._typing import IntArray
from thinkq.slo.objectives import Objective
from thinkq.solve import SolveResult

__all__ = ["SloResult"]


@dataclass(frozen=True)
class SloResult:
    """Budgets that maximise the weighted mean accuracy subject to latency objectives.

    The budgets are exactly ``thinkq.solve(profile.replace(alpha=alpha))``'s: the
    unconstrained problem at the alpha found along the path.

    Attributes
    ----------
    objectives:
        The objectives, all of which must hold.
    achieved:
        Each objective's value at the budgets, seconds.
    solution:
        The unconstrained solve at :attr:`alpha` (its profile carries that alpha).
    shadow_price:
        alpha*, the largest alpha (to ``rtol``) at which the unconstrained integer
        solve meets every objective: seconds of mean system time per unit of accuracy
        (accuracy as a fraction in [0, 1]), the units of the profile's alpha. ``None``
        when no objective binds: every type with queries is at ``l_max``. (If the
        objectives still hold at alpha = 1e300 short of that, it is 1e300.)
    next_alpha, next_accuracy:
        The smallest alpha tried above the shadow price (an objective fails there) and
        the accuracy it would give; ``None`` when nothing binds.
    accuracy_bound:
        An upper bound on the accuracy of *any* budgets (integer or not) meeting the
        objectives, by weak duality, where it is proven: every objective an overall
        mean on the paper's server (P-K, where J is concave). Else ``None``.
    solves:
        Integer solves along the path.
    evaluations:
        Budget vectors whose objectives were measured (percentile computations).
    percentile_method:
        How percentiles were computed (``None`` without percentile objectives).
    """

    objectives: tuple[Objective, ...]
    achieved: tuple[float, ...]
    solution: SolveResult
    shadow_price: float | None
    next_alpha: float | None
    next_accuracy: float | None
    accuracy_bound: float | None
    solves: int
    evaluations: int
    percentile_method: str | None

    @property
    def alpha(self) -> float:
        """The alpha of :attr:`solution` (the shadow price when an objective binds)."""
        return self.solution.profile.alpha

    @property
    def budgets(self) -> IntArray:
        """Integer budgets, tokens per type."""
        return self.solution.budgets

    @property
    def accuracy(self) -> float:
        """sum_k pi_k p_k at the budgets (a fraction in [0, 1])."""
        return self.solution.accuracy

    @property
    def met(self) -> tuple[bool, ...]:
        """Whether each objective holds (always all ``True``)."""
        return tuple(v <= o.target for v, o in zip(self.achieved, self.objectives, strict=True))

    @property
    def binding(self) -> bool:
        """Whether an objective limits the budgets (else they are at the maximum)."""
        return self.shadow_price is not None

    @property
    def accuracy_per_second(self) -> float | None:
        """1 / alpha*: accuracy (fraction) gained per second of mean system time at the
        margin, the multiplier of problem "max accuracy s.t. E[T] <= target"; ``None``
        when nothing binds (it is 0 then)."""
        return None if self.shadow_price is None else 1.0 / self.shadow_price

    @property
    def exact(self) -> bool:
        """Whether the search is exact: every objective is an overall mean."""
        return all(o.exact for o in self.objectives)

    def to_dict(self) -> dict[str, Any]:
        """The ``slo`` object of ``thinkq solve --slo ... --json``."""
        return {
            "objectives": [
                {
                    "objective": str(o),
                    "statistic": o.statistic,
                    "task": o.task,
                    "target": o.target,
                    "achieved": value,
                    "met": met,
                }
                for o, value, met in zip(self.objectives, self.achieved, self.met, strict=True)
            ],
            "shadow_price": self.shadow_price,
            "shadow_price_units": "seconds of mean system time per unit of accuracy (0-1)",
            "accuracy_per_second": self.accuracy_per_second,
            "binding": self.binding,
            "exact": self.exact,
            "next_alpha": self.next_alpha,
            "next_accuracy": self.next_accuracy,
            "accuracy_bound": self.accuracy_bound,
            "solves": self.solves,
            "evaluations": self.evaluations,
            "percentile_method": self.percentile_method,
        }
