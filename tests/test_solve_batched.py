"""``thinkq.solve`` on a profile with a ``[server]`` table.

One slot is the paper's server: today's numbers. More slots: the batched law, with the
continuous J at least brute force's (:mod:`batched_instances`), the integer J at least
the best integer point near the optimum, and the P-K-only figures ``None``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import thinkq
from batched_instances import brute_force, direct_objective, loaded, random_profile, random_server
from thinkq import Profile, model, paper_profile
from thinkq.batching import UNLIMITED_SLOTS, Server
from thinkq.solve import DEFAULT_TOL, solve, solve_continuous
from thinkq.solve.integer import BATCHED_EXHAUSTIVE_LIMIT, best_integer, round_budgets

ONE_SLOT = [Server(1), Server(1, 0.02, 0.002), Server(1, 0.0, 1.0)]


# --------------------------------------------------------------------- one slot: today's solver


@pytest.mark.parametrize("server", ONE_SLOT)
@pytest.mark.parametrize("rate", [0.05, 0.1, 0.3, 1.0])
def test_a_one_slot_table_gives_todays_numbers(server: Server, rate: float) -> None:
    today = solve(paper_profile().replace(rate=rate))
    result = solve(paper_profile().replace(rate=rate).with_server(server))
    assert result.objective == pytest.approx(today.objective, rel=1e-9)
    np.testing.assert_array_equal(result.budgets, today.budgets)
    c, t = result.continuous, today.continuous
    np.testing.assert_allclose(c.budgets, t.budgets, rtol=1e-9, atol=1e-9)
    assert c.objective == pytest.approx(t.objective, rel=1e-9)
    assert (c.method, c.iterations, c.converged) == (t.method, t.iterations, t.converged)
    assert c.kkt_residual == pytest.approx(t.kkt_residual, rel=1e-9, abs=1e-12)
    assert result.lower_bound == pytest.approx(today.lower_bound, rel=1e-9)
    assert c.bounds is not None
    assert c.bounds == t.bounds


@pytest.mark.parametrize("seed", range(5))
def test_a_one_slot_table_gives_todays_numbers_on_random_instances(seed: int) -> None:
    rng = np.random.default_rng(500 + seed)
    profile = loaded(rng, random_profile(rng, 5), Server(1))
    today = solve(profile)
    result = solve(profile.with_server(Server(1, 1.0, 0.1)))
    np.testing.assert_array_equal(result.budgets, today.budgets)
    assert result.objective == pytest.approx(today.objective, rel=1e-9)
    np.testing.assert_allclose(result.continuous.budgets, today.continuous.budgets, rtol=1e-9)


# --------------------------------------------------------------------- B > 1: the global optimum


def _near_integers(profile: Profile, l: np.ndarray, reach: int = 2) -> float:
    """The best J over every integer vector within ``reach`` of floor/ceil of ``l``."""
    axes = [
        range(max(0, math.floor(x) - reach), min(profile.max_tokens, math.ceil(x) + reach) + 1)
        for x in l
    ]
    points = np.array(list(itertools.product(*axes)), dtype=np.float64)
    return float(np.max(direct_objective(profile, profile.server, points)))  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(20))
def test_solve_is_global_on_random_batched_instances(seed: int) -> None:
    rng = np.random.default_rng(300 + seed)
    server = random_server(rng)
    profile = loaded(rng, random_profile(rng, 2 + seed % 2), server).with_server(server)
    assert profile.batched == server
    result = solve(profile)
    c = result.continuous
    assert c.method == "scan+newton"
    assert c.converged, c.message
    assert c.kkt_residual <= DEFAULT_TOL
    assert c.kkt_residual == model.kkt_residual(profile, c.budgets)
    best = brute_force(profile, server, rng)
    assert c.objective >= best - 1e-9 * (1.0 + abs(best))
    # the integer budgets: the batched J, at least the best integer point nearby
    assert result.objective == model.objective(profile, result.budgets)
    assert result.objective <= c.objective + 1e-12 * (1.0 + abs(c.objective))
    near = _near_integers(profile, c.budgets)
    assert result.objective >= near - 1e-12 * (1.0 + abs(near))


def test_the_batched_objective_differs_from_pk_and_the_budgets_follow_it() -> None:
    """With eight slots the queue is shorter: more tokens pay than on one slot."""
    profile = paper_profile().replace(rate=1.0)
    one = solve(profile)
    eight = solve(profile.with_server(Server(8, 0.02, 0.002)))
    assert eight.objective > one.objective + 1.0
    assert eight.budgets.sum() > one.budgets.sum()
    assert eight.objective == pytest.approx(
        float(direct_objective(eight.profile, Server(8, 0.02, 0.002), eight.budgets[None, :])[0]),
        rel=1e-12,
    )


def test_pk_only_figures_are_none_on_a_batched_server() -> None:
    result = solve(paper_profile().with_server(Server(8, 1.0, 0.1)))
    assert result.continuous.gap_bound is None
    assert result.continuous.bounds is None
    assert result.lower_bound is None
    assert result.loss_bound is None
    solver = result.to_dict()["solver"]
    for key in ("gap_bound", "contraction_bound", "step_bound", "lipschitz_bound",
                "bounds_region", "rho_max", "rho_bar"):  # fmt: skip
        assert solver[key] is None, key


def test_the_server_figures_are_the_delay_laws() -> None:
    server = Server(8, 0.02, 0.002)
    profile = paper_profile().replace(rate=1.0).with_server(server)
    result = solve(profile)
    figures = result.server
    assert figures is not None
    m = model.moments(profile, result.budgets)
    law = thinkq.batching.delay(server, profile.rate, m.mean, m.second)
    assert figures.capacity == pytest.approx(8 * 0.022 / (0.02 + 0.002 * 8))
    assert figures.utilization == pytest.approx(result.utilization, rel=1e-12)
    assert figures.utilization == pytest.approx(profile.rate * m.mean / figures.capacity)
    assert (figures.mean_batch, figures.step_time, figures.slowdown) == (
        law.batch,
        law.step,
        law.slowdown,
    )
    assert figures.waiting_time == pytest.approx(result.mean_waiting_time, rel=1e-12)
    assert 1.0 < figures.mean_batch < 8.0
    assert server.step_time(1) < figures.step_time < server.step_time(8)
    assert solve(paper_profile()).server is None


@pytest.mark.parametrize("method", ["fixed-point", "gradient"])
def test_the_papers_iterations_refuse_a_batched_server(method: str) -> None:
    profile = paper_profile().with_server(Server(4, 1.0, 0.1))
    with pytest.raises(ValueError, match=r"^method: .*M/G/1.*4 slots"):
        solve(profile, method=method)
    assert solve(profile, method="newton").continuous.method == "scan+newton"


def test_a_warm_start_is_polished_and_checked() -> None:
    profile = paper_profile().replace(rate=1.0).with_server(Server(8, 1.0, 0.1))
    cold = solve_continuous(profile)
    warm = solve_continuous(profile, start=cold.budgets)
    assert warm.converged
    assert warm.objective >= cold.objective - 1e-12
    assert warm.start_objective == pytest.approx(cold.objective, rel=1e-12)
    with pytest.raises(ValueError, match=r"^start: .*C\(B\)"):
        solve_continuous(profile.replace(rate=3.0), start=np.full(6, 2000.0))


# --------------------------------------------------------------------- integer budgets


def _floor_ceil_best(profile: Profile, budgets: np.ndarray) -> float:
    axes = [sorted({math.floor(x), min(math.ceil(x), profile.max_tokens)}) for x in budgets]
    points = np.array(list(itertools.product(*axes)), dtype=np.float64)
    return float(np.max(direct_objective(profile, profile.server, points)))  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(6))
def test_best_integer_is_the_best_floor_ceil_combination_under_the_batched_j(seed: int) -> None:
    rng = np.random.default_rng(700 + seed)
    server = random_server(rng)
    profile = loaded(rng, random_profile(rng, BATCHED_EXHAUSTIVE_LIMIT), server)
    profile = profile.with_server(server)
    budgets = rng.uniform(0.0, 1.0, profile.size) * solve_continuous(profile).budgets + 0.3
    chosen = best_integer(profile, budgets)
    best = _floor_ceil_best(profile, budgets)
    assert model.objective(profile, chosen) >= best - 1e-12 * (1.0 + abs(best))


@pytest.mark.parametrize("server", [Server(8, 1.0, 0.1), Server(UNLIMITED_SLOTS, 0.0, 1.0)])
def test_the_local_search_beats_rounding_and_single_flips_under_the_batched_j(
    server: Server,
) -> None:
    rng = np.random.default_rng(17)
    profile = loaded(rng, random_profile(rng, 60), server).with_server(server)
    budgets = solve_continuous(profile).budgets
    budgets = np.where(budgets == np.round(budgets), budgets + 0.4, budgets)
    chosen = best_integer(profile, budgets)
    rounded = round_budgets(profile, budgets)
    value = model.objective(profile, chosen)
    assert np.all((chosen == np.floor(budgets)) | (chosen == np.ceil(budgets)))
    assert value >= model.objective(profile, rounded)
    for k in range(profile.size):  # no single flip from the answer improves J
        flipped = chosen.copy()
        flipped[k] = math.floor(budgets[k]) if chosen[k] > budgets[k] else math.ceil(budgets[k])
        if flipped[k] <= profile.max_tokens:
            assert model.objective(profile, flipped) <= value + 1e-12 * (1.0 + abs(value))


def test_types_without_share_get_their_best_response_on_a_batched_server() -> None:
    """They do not move J; as today's solver, they get the budget of a marginal type."""
    base = paper_profile().replace(rate=1.0)
    share = base.share.copy()
    share[[1, 4]] = 0.0  # GSM8K and BBH: the two that get tokens
    profile = Profile.from_arrays(
        names=base.names, share=share / share.sum(), A=base.A, b=base.b, D=base.D,
        t0=base.t0, c=base.c, rate=1.0, alpha=base.alpha, max_tokens=base.max_tokens,
        server=Server(8, 1.0, 0.1),
    )  # fmt: skip
    result = solve_continuous(profile)
    assert result.converged, result.message
    assert result.kkt_residual <= DEFAULT_TOL
    response = np.clip(model.best_response(profile, result.budgets), 0, profile.max_tokens)
    np.testing.assert_allclose(result.budgets[[1, 4]], response[[1, 4]], rtol=1e-12)
    assert np.all(result.budgets[[1, 4]] > 0.0)


@pytest.mark.parametrize("slots", [8, UNLIMITED_SLOTS])
def test_a_huge_alpha_stops_at_the_limit_of_double_precision(slots: int) -> None:
    # the optimum's distance to the capacity is below double precision: the polish
    # used to creep there until its iteration limit (a minute with unlimited slots)
    profile = paper_profile().with_server(Server(slots, 0.02, 0.002)).replace(alpha=1e50)
    result = solve_continuous(profile.replace(rate=1.0))
    assert not result.converged
    assert result.message == "J stopped improving (the limit of double precision)"
    assert result.iterations < 100
