"""The batched solver: today's numbers at B = 1, the global optimum elsewhere.

The global claim is checked against brute force that shares nothing with the solver
but the delay law (:mod:`batched_instances`).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import wrightomega

from batched_instances import brute_force, loaded, random_profile, random_server
from thinkq import Profile, model, paper_profile
from thinkq.batching import UNLIMITED_SLOTS, Server, delay
from thinkq.batching.levels import Levels
from thinkq.batching.objective import (
    BatchedWorkspace,
    gradient,
    hessian_parts,
    kkt_residual,
    objective,
    respond,
)
from thinkq.batching.peaks import Level, hermite_top, single_peak
from thinkq.lambert import halley_omega
from thinkq.solve import solve_continuous
from thinkq.solve.batched import solve_batched

TOL = 1e-7


def test_at_one_slot_auto_is_todays_solver_on_the_paper_profile() -> None:
    profile = paper_profile()
    today = solve_continuous(profile)
    result = solve_batched(profile, Server(slots=1))
    assert result.method == "newton"
    np.testing.assert_array_equal(result.budgets, today.budgets)
    assert result.objective == today.objective


@pytest.mark.parametrize("rate", [0.05, 0.1, 0.3, 0.6])
def test_at_one_slot_the_scan_gives_todays_numbers(rate: float) -> None:
    profile = paper_profile().replace(rate=rate)
    today = solve_continuous(profile)
    result = solve_batched(profile, Server(slots=1), method="scan")
    assert result.method == "scan+newton"
    assert result.converged
    assert result.objective == pytest.approx(today.objective, rel=1e-9)
    np.testing.assert_allclose(result.budgets, today.budgets, rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_at_one_slot_the_scan_matches_on_random_instances(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    profile = loaded(rng, random_profile(rng, 4), Server(1))
    today = solve_continuous(profile)
    result = solve_batched(profile, Server(1), method="scan")
    assert result.converged
    assert result.objective == pytest.approx(today.objective, rel=1e-9)
    np.testing.assert_allclose(result.budgets, today.budgets, rtol=1e-9, atol=1e-6)


def test_at_one_slot_the_batched_objective_is_the_papers() -> None:
    profile = paper_profile()
    l = np.array([100.0, 300.0, 0.0, 20.0, 400.0, 30.0])
    assert objective(profile, Server(1), l) == pytest.approx(model.objective(profile, l), 1e-12)
    np.testing.assert_allclose(gradient(profile, Server(1), l), model.gradient(profile, l), 1e-9)


def test_at_one_slot_the_best_response_and_residual_are_the_papers() -> None:
    profile = paper_profile().replace(rate=0.3)
    l = np.array([100.0, 300.0, 0.0, 20.0, 400.0, 30.0])
    np.testing.assert_allclose(
        respond(profile, *_marginal(profile, l)), model.best_response(profile, l), rtol=1e-12
    )
    assert kkt_residual(profile, Server(1), l) == pytest.approx(
        model.kkt_residual(profile, l), rel=1e-10
    )


def _marginal(profile: Profile, l: np.ndarray) -> tuple[float, float]:
    m = model.moments(profile, l)
    law = delay(Server(1), profile.rate, m.mean, m.second)
    return law.d_mean, law.d_second


def test_without_a_queue_the_response_is_the_closed_form_limit() -> None:
    profile = paper_profile()
    limit = respond(profile, 1.3, 0.0)
    np.testing.assert_allclose(
        limit, np.log(profile.alpha * profile.A * profile.b / (1.3 * profile.c)) / profile.b
    )
    np.testing.assert_allclose(respond(profile, 1.3, 1e-250), limit, rtol=1e-9)
    assert np.all(respond(profile, -1.0, 0.0) == np.inf)  # tokens cost nothing: l_max


def test_the_fast_omega_of_the_search_is_scipys_to_1e_14() -> None:
    y = np.concatenate(
        [
            np.linspace(-745.0, 50.0, 20001),
            np.linspace(50.0, 1e4, 2001),
            np.geomspace(1e4, 1e300, 301),
        ]
    )
    np.testing.assert_allclose(halley_omega(y), wrightomega(y), rtol=1e-14, atol=0.0)
    edges = halley_omega(np.array([-np.inf, np.inf, np.nan]))
    assert edges[0] == 0.0
    assert edges[1] == np.inf
    assert np.isnan(edges[2])


@pytest.mark.parametrize(
    ("f1", "f2"), [(0.8, 0.05), (3.0, 1e-6), (-0.5, 0.2), (0.4, 0.0), (60.0, 0.01)]
)
def test_the_searchs_projected_responses_are_the_clipped_best_responses(
    f1: float, f2: float
) -> None:
    profile = random_profile(np.random.default_rng(7), 3000)
    responder = BatchedWorkspace(profile, Server(8)).respond
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # as the scan calls it
        l, inside = responder.projected(f1, f2)  # 60: a gather
    expected = np.clip(respond(profile, f1, f2), 0.0, profile.max_tokens)
    np.testing.assert_allclose(l, expected, rtol=1e-12, atol=1e-9)
    assert np.all(inside[(expected > 0.0) & (expected < profile.max_tokens)])


def test_at_one_slot_the_scan_matches_on_a_thousand_types() -> None:
    rng = np.random.default_rng(11)
    profile = loaded(rng, random_profile(rng, 1000), Server(1))
    today = solve_continuous(profile)
    result = solve_batched(profile, Server(1), method="scan")
    assert result.converged
    assert result.objective == pytest.approx(today.objective, rel=1e-9)
    np.testing.assert_allclose(result.budgets, today.budgets, rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize("seed", range(20))
def test_the_solver_beats_brute_force_on_random_batched_instances(seed: int) -> None:
    rng = np.random.default_rng(seed)
    server = random_server(rng)
    profile = loaded(rng, random_profile(rng, 2 + seed % 2), server)
    result = solve_batched(profile, server)
    assert result.converged, result.message
    assert result.kkt_residual <= TOL
    assert result.kkt_residual == kkt_residual(profile, server, result.budgets)
    assert result.objective == objective(profile, server, result.budgets)
    best = brute_force(profile, server, rng)
    assert result.objective >= best - 1e-9 * (1.0 + abs(best))


@pytest.mark.parametrize(
    ("server", "rate"),
    [(Server(2, 1.0, 0.1), 0.6), (Server(64, 0.0, 1.0), 0.25), (Server(UNLIMITED_SLOTS), 1.0)],
)
def test_gradient_and_hessian_match_finite_differences(server: Server, rate: float) -> None:
    profile = paper_profile().replace(rate=rate)
    l = np.array([100.0, 300.0, 50.0, 20.0, 400.0, 30.0])
    grad = gradient(profile, server, l)
    parts = hessian_parts(profile, server, l)
    hess = -np.diag(parts.diagonal) - parts.outer * np.outer(parts.u, parts.u)
    hess -= parts.cross * (np.outer(parts.u, parts.v) + np.outer(parts.v, parts.u))
    h = 1e-3
    for k in range(profile.size):
        e = np.zeros(profile.size)
        e[k] = h
        numeric = (objective(profile, server, l + e) - objective(profile, server, l - e)) / (2 * h)
        assert grad[k] == pytest.approx(numeric, rel=1e-6, abs=1e-10)
        column = (gradient(profile, server, l + e) - gradient(profile, server, l - e)) / (2 * h)
        np.testing.assert_allclose(hess[:, k], column, rtol=1e-5, atol=1e-12)


def test_unlimited_slots_without_batching_cost_give_the_queue_free_budgets() -> None:
    profile = paper_profile().replace(rate=5.0)
    server = Server(UNLIMITED_SLOTS, 1.0, 0.0)  # M/G/infinity: E[T] = E[S]
    result = solve_batched(profile, server)
    free = np.log(profile.alpha * profile.A * profile.b / profile.c) / profile.b
    expected = np.clip(free, 0.0, profile.max_tokens)
    assert result.converged
    np.testing.assert_allclose(result.budgets, expected, rtol=1e-9, atol=1e-6)


def test_a_heavier_load_never_gains_budget_in_total() -> None:
    server = Server(8, 1.0, 0.1)
    light = solve_batched(paper_profile().replace(rate=0.5), server)
    heavy = solve_batched(paper_profile().replace(rate=4.0), server)
    assert heavy.converged
    assert light.converged
    assert heavy.objective < light.objective
    assert heavy.budgets.sum() < light.budgets.sum()


@pytest.mark.parametrize(
    ("options", "name"),
    [({"method": "fast"}, "method"), ({"tol": 0.0}, "tol"), ({"max_iter": 0}, "max_iter"),
     ({"points": 1}, "points")],
)  # fmt: skip
def test_bad_arguments_raise_value_error_naming_them(options: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name}:"):
        solve_batched(paper_profile(), Server(8), **options)  # type: ignore[arg-type]


# --------------------------------------------------------------------- the scan's levels


@pytest.mark.parametrize(
    ("server", "rate"), [(Server(8, 1.0, 0.1), 0.1), (Server(64, 0.0, 1.0), 1.0)]
)
def test_a_levels_slope_is_the_derivative_of_the_profile(server: Server, rate: float) -> None:
    profile = paper_profile().replace(rate=rate)
    levels = Levels(BatchedWorkspace(profile, server))
    high = min(levels.top, server.max_capacity / rate)
    h = 1e-5 * high
    for fraction in (0.1, 0.3, 0.6):  # of the stable levels above E[S(0)]
        a = levels.base + fraction * (high - levels.base)
        here = levels.solve(a)
        assert math.isfinite(here.objective)
        up, down = levels.solve(a + h), levels.solve(a - h)
        numeric = (up.objective - down.objective) / (2 * h)
        assert here.slope == pytest.approx(numeric, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("server", [Server(UNLIMITED_SLOTS, 0.02, 0.002), Server(8, 0.02, 0.002)])
def test_a_level_is_found_without_the_previous_levels_prediction(server: Server) -> None:
    # from F1 alone the first Newton step in logs can land below double range (most
    # types at 0, a flat spend): the search must still reach every stable level
    profile = paper_profile().with_server(server)
    levels = Levels(BatchedWorkspace(profile, server))
    high = min(levels.top, server.max_capacity / profile.rate)
    for fraction in (0.3, 0.5, 0.7, 0.9):
        a = levels.base + fraction * (high - levels.base)
        levels.last = None
        level = levels.solve(a)
        assert math.isfinite(level.mu), fraction
        assert level.a == pytest.approx(a, rel=1e-8), fraction


def _level(a: float, value: float, slope: float) -> Level:
    return Level(a, 0.0, np.zeros(1), value, slope)


def test_the_cubics_top_is_exact_for_a_cubic() -> None:
    def f(a: float) -> float:
        return -((a - 0.3) ** 2) * (1.0 + 0.2 * a)

    def df(a: float) -> float:
        return -2.0 * (a - 0.3) * (1.0 + 0.2 * a) - 0.2 * (a - 0.3) ** 2

    top = hermite_top(_level(0.0, f(0.0), df(0.0)), _level(1.0, f(1.0), df(1.0)))
    assert top == pytest.approx(0.3, abs=1e-12)
    assert hermite_top(_level(0.0, 0.0, -1.0), _level(1.0, -2.0, -3.0)) is None


def test_single_peak_needs_values_and_slopes_to_agree() -> None:
    def scan(values: list[float], slopes: list[float]) -> list[Level]:
        return [_level(i, v, s) for i, (v, s) in enumerate(zip(values, slopes, strict=True))]

    slopes = [math.nan, 1.0, 0.5, -1.0, -1e17]
    assert single_peak(scan([1.0, 3.0, 4.0, 2.0, -math.inf], slopes)) == 2
    # the values rise but a slope says falling: a peak hidden between two levels
    assert (
        single_peak(scan([1.0, 3.0, 4.0, 2.0, -math.inf], [math.nan, -0.1, 0.5, -1.0, -1.0]))
        is None
    )
    # two peaks in the values
    assert single_peak(scan([1.0, 3.0, 2.0, 2.5, 1.0], [math.nan, 1.0, -1.0, -1.0, -1.0])) is None
