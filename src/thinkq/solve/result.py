"""Result objects of the solvers (in the manner of ``scipy.optimize.root_scalar``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from thinkq import model
from thinkq._typing import FloatArray, IntArray
from thinkq.profile import Profile
from thinkq.solve.bounds import Bounds, lemma_bounds

__all__ = ["ContinuousResult", "Method", "SolveResult"]

Method = Literal["auto", "newton", "fixed-point", "gradient"]


@dataclass(frozen=True)
class ContinuousResult:
    """The solution of the continuous relaxation (9) by one method.

    Attributes
    ----------
    budgets:
        l*, tokens per type (floats in [0, l_max]).
    objective:
        J(l*).
    converged:
        Whether the stopping test (KKT residual <= tolerance) was met.
    iterations:
        Iterations taken.
    evaluations:
        Objective/gradient evaluations (each is O(N) work).
    method:
        The method that ran (``"newton"``, ``"fixed-point"``, ``"gradient"``).
    message:
        Why it stopped, in words.
    kkt_residual:
        max_k |l_k - clip(l_hat_k(l))| in tokens (eq. 23): zero exactly at the optimum.
    gap_bound:
        An upper bound on J(l_opt) - J(l*) (the Frank-Wolfe gap over the box, valid
        because J is concave on the convex stability region).
    profile:
        The instance solved.
    start_objective:
        J at the start point; it defines the region of :attr:`bounds`.
    """

    budgets: FloatArray
    objective: float
    converged: bool
    iterations: int
    evaluations: int
    method: str
    message: str
    kkt_residual: float
    gap_bound: float
    profile: Profile = field(repr=False, compare=False)
    start_objective: float = field(repr=False, compare=False)

    @cached_property
    def bounds(self) -> Bounds:
        """Lemma 2 and Lemma 3 constants, on the region defined by J at the start point.

        Computed on first access: the default solver does not need them.
        """
        return lemma_bounds(self.profile, self.start_objective)


@dataclass(frozen=True)
class SolveResult:
    """Optimal integer budgets with the continuous optimum behind them.

    Attributes
    ----------
    profile:
        The instance solved.
    budgets:
        Integer budgets (tokens per type), from ``integer`` rounding of ``continuous``.
    integer:
        The rounding rule used: ``"best"`` (eq. 39 or local search) or ``"round"`` (40).
    objective:
        J at the integer budgets.
    continuous:
        The continuous solution and its certificate.
    lower_bound:
        The paper's J-bar (41), or ``None`` where lambda (E[S] + c_max) >= 1.
    """

    profile: Profile
    budgets: IntArray
    integer: str
    objective: float
    continuous: ContinuousResult
    lower_bound: float | None

    @property
    def continuous_objective(self) -> float:
        """J(l*) of the continuous relaxation: an upper bound on any integer J."""
        return self.continuous.objective

    @property
    def loss_bound(self) -> float:
        """An upper bound on J(l_opt) - J(l_int): what the integer budgets can lose.

        J(l_opt) <= J(l*) + gap_bound (the continuous certificate), so the bound is
        ``continuous_objective + continuous.gap_bound - objective``; it also bounds
        the loss against the best integer budgets.
        """
        return self.continuous_objective + self.continuous.gap_bound - self.objective

    @property
    def accuracy(self) -> float:
        """sum_k pi_k p_k at the integer budgets."""
        return model.mean_accuracy(self.profile, self.budgets)

    @property
    def utilization(self) -> float:
        """lambda E[S] at the integer budgets."""
        return model.utilization(self.profile, self.budgets)

    @property
    def mean_waiting_time(self) -> float:
        """P-K mean wait (eq. 5) at the integer budgets, seconds."""
        return model.waiting_time(self.profile, self.budgets)

    @property
    def mean_system_time(self) -> float:
        """Mean system time (eq. 6) at the integer budgets, seconds."""
        return model.system_time(self.profile, self.budgets)

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON-ready data (the schema of ``thinkq solve --json``)."""
        p = self.profile
        accuracy = model.accuracy(p, self.budgets)
        service = model.service_time(p, self.budgets)
        c = self.continuous
        return {
            "objective": self.objective,
            "continuous_objective": self.continuous_objective,
            "lower_bound": self.lower_bound,
            "loss_bound": self.loss_bound,
            "accuracy": self.accuracy,
            "utilization": self.utilization,
            "mean_waiting_time": self.mean_waiting_time,
            "mean_system_time": self.mean_system_time,
            "rate": p.rate,
            "alpha": p.alpha,
            "max_tokens": p.max_tokens,
            "integer": self.integer,
            "tasks": [
                {
                    "name": name,
                    "share": float(p.share[k]),
                    "budget": int(self.budgets[k]),
                    "continuous_budget": float(c.budgets[k]),
                    "accuracy": float(accuracy[k]),
                    "service_time": float(service[k]),
                }
                for k, name in enumerate(p.names)
            ],
            "solver": {
                "method": c.method,
                "converged": c.converged,
                "iterations": c.iterations,
                "evaluations": c.evaluations,
                "message": c.message,
                "kkt_residual": c.kkt_residual,
                "gap_bound": c.gap_bound,
                "contraction_bound": c.bounds.contraction,
                "step_bound": c.bounds.step_bound,
                "lipschitz_bound": c.bounds.lipschitz,
                "bounds_region": c.bounds.region,
                "rho_max": c.bounds.rho_max,
                "rho_bar": c.bounds.rho_bar,
            },
        }
