"""Result objects of the solvers (in the manner of ``scipy.optimize.root_scalar``).

On a batched server (``profile.batched``) the figures that rest on P-K (the gap bound,
the constants of Lemmas 2 and 3, the lower bound 41, the loss bound) are ``None``:
J is not proven concave there. A profile with a ``[server]`` table also reports the
server's own figures (:class:`ServerFigures`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, NamedTuple

from thinkq import model
from thinkq._typing import FloatArray, IntArray
from thinkq.batching.delay import delay
from thinkq.profile import Profile
from thinkq.solve.bounds import Bounds, lemma_bounds

__all__ = ["ContinuousResult", "Method", "ServerFigures", "SolveResult"]

Method = Literal["auto", "newton", "fixed-point", "gradient"]


class ServerFigures(NamedTuple):
    """A ``[server]`` table's figures at a budget vector (``thinkq solve``'s ``server``).

    Attributes
    ----------
    slots, tau0, tau1:
        The table: B, and the step time tau(n) = tau0 + tau1 n in seconds.
    capacity:
        C(B), solo-seconds of work per second with every slot busy.
    utilization:
        lambda E[S] / C(B): stable below 1.
    mean_batch:
        E[min(N, B)], the mean number of queries in service.
    step_time:
        Mean seconds per decode step while the server is busy.
    slowdown:
        Seconds in service per second of solo service time (sigma; 1 at B = 1).
    waiting_time:
        Mean wait for a slot, seconds.
    """

    slots: int
    tau0: float
    tau1: float
    capacity: float
    utilization: float
    mean_batch: float
    step_time: float
    slowdown: float
    waiting_time: float

    @classmethod
    def at(cls, profile: Profile, budgets: FloatArray | IntArray) -> ServerFigures | None:
        """The figures of ``profile.server`` at ``budgets`` (``None`` without a table)."""
        server = profile.server
        if server is None:
            return None
        m = model.moments(profile, budgets)
        law = delay(server, profile.rate, m.mean, m.second)
        capacity = server.max_capacity
        return cls(
            slots=server.slots, tau0=server.tau0, tau1=server.tau1, capacity=capacity,
            utilization=server.utilization(profile.rate, m.mean), mean_batch=law.batch,
            step_time=law.step, slowdown=law.slowdown, waiting_time=law.waiting_time,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The figures as plain JSON-ready data."""
        return self._asdict()


@dataclass(frozen=True)
class ContinuousResult:
    """The solution of the continuous relaxation (9) by one method.

    Attributes
    ----------
    budgets:
        l*, tokens per type (floats in [0, l_max]).
    objective:
        J(l*) (eq. 7; under the batched delay law on a batched server).
    converged:
        Whether the stopping test (KKT residual <= tolerance) was met.
    iterations:
        Iterations taken.
    evaluations:
        Objective/gradient evaluations (each is O(N) work).
    method:
        The method that ran (``"newton"``, ``"fixed-point"``, ``"gradient"``; on a
        batched server ``"scan+newton"``).
    message:
        Why it stopped, in words.
    kkt_residual:
        max_k |l_k - clip(l_hat_k(l))| in tokens (eq. 23): zero exactly at the optimum.
    gap_bound:
        An upper bound on J(l_opt) - J(l*) (the Frank-Wolfe gap over the box, valid
        because J is concave on the convex stability region), or ``None`` on a
        batched server, where J is not proven concave.
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
    gap_bound: float | None
    profile: Profile = field(repr=False, compare=False)
    start_objective: float = field(repr=False, compare=False)

    @cached_property
    def bounds(self) -> Bounds | None:
        """Lemma 2 and Lemma 3 constants, on the region defined by J at the start point.

        Computed on first access: the default solver does not need them. ``None`` on
        a batched server (they are P-K's).
        """
        if self.profile.batched is not None:
            return None
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
        The paper's J-bar (41), or ``None`` where lambda (E[S] + c_max) >= 1 or the
        server is batched (the bound is P-K's).
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
    def loss_bound(self) -> float | None:
        """An upper bound on J(l_opt) - J(l_int): what the integer budgets can lose.

        J(l_opt) <= J(l*) + gap_bound (the continuous certificate), so the bound is
        ``continuous_objective + continuous.gap_bound - objective``; it also bounds
        the loss against the best integer budgets. ``None`` without a gap bound.
        """
        gap = self.continuous.gap_bound
        if gap is None:
            return None
        return self.continuous_objective + gap - self.objective

    @property
    def accuracy(self) -> float:
        """sum_k pi_k p_k at the integer budgets."""
        return model.mean_accuracy(self.profile, self.budgets)

    @property
    def utilization(self) -> float:
        """lambda E[S] at the integer budgets (on a batched server, over C(B))."""
        return model.utilization(self.profile, self.budgets)

    @property
    def mean_waiting_time(self) -> float:
        """Mean wait (eq. 5, or the batched law) at the integer budgets, seconds."""
        return model.waiting_time(self.profile, self.budgets)

    @property
    def mean_system_time(self) -> float:
        """Mean system time (eq. 6) at the integer budgets, seconds."""
        return model.system_time(self.profile, self.budgets)

    @cached_property
    def server(self) -> ServerFigures | None:
        """The server's figures at the integer budgets (``None`` without a table)."""
        return ServerFigures.at(self.profile, self.budgets)

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON-ready data (the schema of ``thinkq solve --json``).

        P-K-only figures are ``None`` on a batched server; a profile with a
        ``[server]`` table adds a ``server`` object (:class:`ServerFigures`).
        """
        p = self.profile
        accuracy = model.accuracy(p, self.budgets)
        service = model.service_time(p, self.budgets)
        c, b = self.continuous, self.continuous.bounds
        data = {
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
                "contraction_bound": None if b is None else b.contraction,
                "step_bound": None if b is None else b.step_bound,
                "lipschitz_bound": None if b is None else b.lipschitz,
                "bounds_region": None if b is None else b.region,
                "rho_max": None if b is None else b.rho_max,
                "rho_bar": None if b is None else b.rho_bar,
            },
        }
        if self.server is not None:
            data["server"] = self.server.to_dict()
        return data
