"""The paper's experiments (section IV) as data: Table I, Fig. 2, Fig. 3 and Fig. 4.

Each function returns the numbers behind a table or figure; :mod:`thinkq.paper.figures`
draws them and :mod:`thinkq.paper.reproduce` writes them out. Simulations use 10,000
queries per point, as the paper does, with fixed seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thinkq import model
from thinkq._typing import FloatArray
from thinkq.profile import Profile
from thinkq.simulate import simulate
from thinkq.solve import SolveResult, solve
from thinkq.solve.bounds import paper_lower_bound

__all__ = [
    "PAPER_BUDGETS",
    "PAPER_QUERIES",
    "PAPER_UNIFORM_BUDGETS",
    "Figure2",
    "Figure3",
    "Figure4",
    "PolicyOutcome",
    "figure2",
    "figure3",
    "figure4",
    "table_one",
]

#: l* as Table I prints it (computed by the authors from unrounded parameters).
PAPER_BUDGETS: tuple[float, ...] = (0.0, 340.5, 0.0, 0.0, 345.0, 30.1)
#: The uniform allocations of Fig. 3.
PAPER_UNIFORM_BUDGETS: tuple[int, ...] = (0, 100, 500)
#: Queries per simulated point, as in section IV.
PAPER_QUERIES = 10_000


@dataclass(frozen=True)
class Figure2:
    """Fitted accuracy curves p_k(l) (eq. 2) on a grid of budgets (tokens)."""

    names: tuple[str, ...]
    budgets: FloatArray
    accuracy: FloatArray  # shape (N, len(budgets))


@dataclass(frozen=True)
class PolicyOutcome:
    """J of one allocation policy, analytic (eq. 7) and simulated, with its CI."""

    label: str
    budgets: tuple[float, ...]
    objective: float
    simulated_objective: float
    simulated_ci: tuple[float, float]


@dataclass(frozen=True)
class Figure3:
    """J under uniform allocations and the optimal one."""

    policies: tuple[PolicyOutcome, ...]


@dataclass(frozen=True)
class Figure4:
    """J against one task's budget with the others at their optimum.

    ``objective`` is J on ``budgets`` (the curve), ``lower_bound`` the paper's
    J-bar (41) there (NaN where its assumption fails), and ``simulated`` the realised
    J of 10,000-query runs at ``simulated_budgets``, with confidence intervals (NaN
    where the queue is unstable: those budgets are not simulated, see ``unstable``).
    """

    task: str
    optimum: float
    budgets: FloatArray
    objective: FloatArray
    lower_bound: FloatArray
    simulated_budgets: FloatArray
    simulated: FloatArray
    simulated_low: FloatArray
    simulated_high: FloatArray

    @property
    def unstable(self) -> FloatArray:
        """The simulated budgets skipped because the queue is unstable there (tokens)."""
        return self.simulated_budgets[np.isnan(self.simulated)]

    @property
    def argmax(self) -> float:
        """The budget of the curve's highest J (tokens)."""
        return float(self.budgets[int(np.argmax(self.objective))])


def figure2(profile: Profile, *, points: int = 200) -> Figure2:
    """p_k(l) on [0, 1) linearly and ``points`` budgets geometrically from 1 to l_max."""
    top = max(profile.max_tokens, 1)
    grid = np.concatenate([np.linspace(0.0, 1.0, 11)[:-1], np.geomspace(1.0, top, points)])
    curves = np.array(
        [profile.A[k] * -np.expm1(-profile.b[k] * grid) + profile.D[k] for k in range(profile.size)]
    )
    return Figure2(names=profile.names, budgets=grid, accuracy=curves)


def figure3(
    profile: Profile, result: SolveResult, *, queries: int = PAPER_QUERIES, seed: int = 3
) -> Figure3:
    """J at uniform 0, 100, 500 tokens and at the optimal integer budgets (Fig. 3)."""
    policies = [(f"uniform {u}", np.full(profile.size, float(u))) for u in PAPER_UNIFORM_BUDGETS]
    policies.append(("optimal", result.budgets.astype(np.float64)))
    outcomes = []
    for i, (label, l) in enumerate(policies):
        stable = model.utilization(profile, l) < 1.0
        if stable:
            run = simulate(profile, l, queries=queries, seed=seed + i)
            sim, ci = run.objective, run.objective_ci
        else:
            sim, ci = float("-inf"), (float("-inf"), float("-inf"))
        outcomes.append(
            PolicyOutcome(label, tuple(l.tolist()), model.objective(profile, l), sim, ci)
        )
    return Figure3(policies=tuple(outcomes))


def figure4(
    profile: Profile,
    result: SolveResult,
    *,
    task: str = "GSM8K",
    top: int = 1000,
    simulated_points: int = 21,
    queries: int = PAPER_QUERIES,
    seed: int = 4,
) -> Figure4:
    """J against ``task``'s budget from 0 to ``top``, the others at l* (Fig. 4)."""
    if task not in profile.names:
        raise ValueError(f"task: {task!r} is not a task of the profile")
    k = profile.names.index(task)
    optimum = result.continuous.budgets

    def at(budget: float) -> FloatArray:
        l = optimum.copy()
        l[k] = budget
        return l

    grid = np.arange(0.0, top + 1.0)
    curve = np.array([model.objective(profile, at(x)) for x in grid])
    bound = np.array([_bound(profile, at(x)) for x in grid])
    sim_grid = np.linspace(0.0, top, simulated_points)
    runs = [  # a budget at which the queue is unstable is not simulated (NaN)
        simulate(profile, at(x), queries=queries, seed=seed + i)
        if model.utilization(profile, at(x)) < 1.0
        else None
        for i, x in enumerate(sim_grid)
    ]
    nan = float("nan")
    return Figure4(
        task=task,
        optimum=float(optimum[k]),
        budgets=grid,
        objective=curve,
        lower_bound=bound,
        simulated_budgets=sim_grid,
        simulated=np.array([nan if r is None else r.objective for r in runs]),
        simulated_low=np.array([nan if r is None else r.objective_ci[0] for r in runs]),
        simulated_high=np.array([nan if r is None else r.objective_ci[1] for r in runs]),
    )


def _bound(profile: Profile, budgets: FloatArray) -> float:
    value = paper_lower_bound(profile, budgets)
    return float("nan") if value is None else value


def table_one(profile: Profile) -> tuple[SolveResult, list[dict[str, object]]]:
    """Table I: the parameters, our l* and integer budgets, and the paper's l*."""
    result = solve(profile)
    paper = PAPER_BUDGETS if profile.size == len(PAPER_BUDGETS) else (None,) * profile.size
    rows: list[dict[str, object]] = [
        {
            "dataset": name,
            "A": float(profile.A[k]),
            "b": float(profile.b[k]),
            "D": float(profile.D[k]),
            "t0": float(profile.t0[k]),
            "c": float(profile.c[k]),
            "l_star": float(result.continuous.budgets[k]),
            "l_int": int(result.budgets[k]),
            "paper_l_star": paper[k],
        }
        for k, name in enumerate(profile.names)
    ]
    return result, rows
