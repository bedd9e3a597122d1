"""thinkq.solve against the paper's Table I and an independent cvxpy + Clarabel oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import thinkq
from instances import (
    load_hard_instances,
    oracle_instances,
    profiles,
    random_profile,
    random_stable_point,
)
from oracle import objective_value, solve_oracle, term_scale
from thinkq import Profile, model
from thinkq.solve import DEFAULT_TOL, solve_continuous

PAPER_CONTINUOUS = (0.0, 340.89, 0.0, 0.0, 346.24, 30.14)
PAPER_INTEGER = (0, 341, 0, 0, 346, 30)
ORACLE_REL = 1e-7  # J agreement with the oracle, relative to the size of J's terms
ORACLE_TOKENS = 1e-2  # budget agreement; the oracle's budgets are good to ~1e-4 tokens


def _assert_matches_oracle(profile: Profile, budgets: np.ndarray) -> None:
    """J(budgets) equals the oracle's optimum to ORACLE_REL and is not worse than it;
    the budgets of types that enter J agree to ORACLE_TOKENS."""
    reference = solve_oracle(profile)
    ours = objective_value(profile, budgets)
    scale = term_scale(profile, budgets)
    assert abs(ours - reference.objective) <= ORACLE_REL * scale, (ours, reference)
    # the oracle is accurate to ~1e-12; thinkq's KKT residual of 1e-7 tokens is finer
    assert ours >= reference.objective - 1e-10 * scale
    live = profile.share > 0
    np.testing.assert_allclose(budgets[live], reference.budgets[live], rtol=0, atol=ORACLE_TOKENS)


# --------------------------------------------------------------------- Table I (golden)


def test_table_one_budgets() -> None:
    result = thinkq.solve(thinkq.paper_profile())
    np.testing.assert_allclose(result.continuous.budgets, PAPER_CONTINUOUS, atol=0.5)
    assert result.budgets.tolist() == list(PAPER_INTEGER)
    assert result.budgets.dtype == np.int64


def test_table_one_objective_matches_oracle() -> None:
    p = thinkq.paper_profile()
    result = thinkq.solve(p)
    reference = solve_oracle(p)
    assert result.continuous.objective == pytest.approx(reference.objective, abs=1e-6)
    np.testing.assert_allclose(result.continuous.budgets, reference.budgets, atol=1e-3)
    _assert_matches_oracle(p, result.continuous.budgets)
    # the integer budgets lose a little, and stay within the paper's bound (41)
    assert result.objective < result.continuous.objective
    assert result.lower_bound is not None
    assert result.lower_bound <= result.objective


@pytest.mark.parametrize("method", ["auto", "newton", "fixed-point", "gradient"])
def test_methods_agree_on_table_one(method: str) -> None:
    p = thinkq.paper_profile()
    reference = thinkq.solve(p).continuous
    result = thinkq.solve(p, method=method).continuous
    assert result.converged
    assert result.objective == pytest.approx(reference.objective, abs=1e-6)
    np.testing.assert_allclose(result.budgets, reference.budgets, atol=1e-5)
    assert result.method == ("newton" if method == "auto" else method)


# --------------------------------------------------------------------- oracle comparison

ORACLE_INSTANCES = oracle_instances()


@pytest.mark.parametrize(
    "profile",
    ORACLE_INSTANCES,
    ids=[f"N{p.size}-lmax{p.max_tokens}-{i}" for i, p in enumerate(ORACLE_INSTANCES)],
)
def test_agrees_with_oracle(profile: Profile) -> None:
    result = thinkq.solve(profile).continuous
    assert result.converged, result.message
    _assert_matches_oracle(profile, result.budgets)


def test_oracle_instances_cover_every_kkt_case() -> None:
    """The oracle instances are not all alike: N spans 2..40, and the optima have
    budgets at 0, strictly inside and at l_max (the three cases of eq. 23)."""
    at_zero = interior = at_max = 0
    for p in ORACLE_INSTANCES:
        ell = thinkq.solve(p).continuous.budgets[p.share > 0]
        at_zero += int(np.any(ell == 0))
        at_max += int(np.any(ell == p.max_tokens))
        interior += int(np.any((ell > 0) & (ell < p.max_tokens)))
    assert len(ORACLE_INSTANCES) >= 30
    assert min(p.size for p in ORACLE_INSTANCES) <= 3
    assert max(p.size for p in ORACLE_INSTANCES) >= 35
    assert any(np.any(p.share == 0) for p in ORACLE_INSTANCES)
    assert min(at_zero, interior, at_max) >= 5, (at_zero, interior, at_max)


@pytest.mark.parametrize("seed", [1, 2])
def test_agrees_with_oracle_with_service_time_variance(seed: int) -> None:
    """Service-time variance adds sum pi_k Var_k to E[S^2] (P-K); the oracle models it."""
    rng = np.random.default_rng(seed)
    base = random_profile(rng, n=12)
    p = base.with_variance(rng.uniform(0.0, 2.0, base.size))
    result = thinkq.solve(p).continuous
    assert result.converged
    _assert_matches_oracle(p, result.budgets)
    # the variance costs J: the same budgets are worth less than without it
    assert objective_value(p, result.budgets) < objective_value(base, result.budgets)


# --------------------------------------------------------------------- the result object


@pytest.mark.parametrize("profile", [thinkq.paper_profile(), *ORACLE_INSTANCES[:6]])
def test_result_certificate(profile: Profile) -> None:
    result = thinkq.solve(profile)
    c = result.continuous
    assert c.converged is True
    assert c.method == "newton"
    assert c.iterations > 0
    assert c.evaluations >= c.iterations
    assert 0 <= c.kkt_residual <= DEFAULT_TOL
    assert c.kkt_residual == pytest.approx(model.kkt_residual(profile, c.budgets), abs=1e-12)
    assert c.objective == model.objective(profile, c.budgets)
    scale = term_scale(profile, c.budgets)
    assert 0 <= c.gap_bound <= 1e-9 * scale
    # the gap bound really bounds the distance to the oracle's optimum
    assert solve_oracle(profile).objective - c.objective <= c.gap_bound + 1e-12 * scale
    assert np.all((c.budgets >= 0) & (c.budgets <= profile.max_tokens))
    assert result.objective == model.objective(profile, result.budgets)
    assert result.objective <= c.objective


@pytest.mark.parametrize("tol", [1e-3, 1e-7, 1e-10])
def test_tolerance_is_met(tol: float) -> None:
    for p in (thinkq.paper_profile(), ORACLE_INSTANCES[1]):
        result = solve_continuous(p, tol=tol)
        assert result.converged
        assert model.kkt_residual(p, result.budgets) <= tol


@pytest.mark.parametrize("method", ["auto", "fixed-point", "gradient"])
def test_iteration_limit_is_reported_honestly(method: str) -> None:
    """Stopped after one iteration, no method may claim convergence."""
    p = thinkq.paper_profile()
    result = solve_continuous(p, method=method, max_iter=1)
    assert result.iterations == 1
    assert not result.converged
    assert result.kkt_residual > DEFAULT_TOL
    assert "limit" in result.message


# --------------------------------------------------------------------- property test


@settings(max_examples=80, deadline=None, derandomize=True)
@given(p=profiles(), seed=st.integers(0, 2**32 - 1))
def test_solution_is_optimal_on_generated_instances(p: Profile, seed: int) -> None:
    result = thinkq.solve(p)
    c = result.continuous
    assert c.converged, c.message
    assert c.kkt_residual <= DEFAULT_TOL
    ell = c.budgets
    best = objective_value(p, ell)
    tol = 1e-10 * term_scale(p, ell)
    rng = np.random.default_rng(seed)
    others = [np.zeros(p.size)]
    others += [np.full(p.size, u) for u in (p.max_tokens, p.max_tokens / 2, 1.0, rng.uniform())]
    others += [random_stable_point(p, rng) for _ in range(8)]
    for x in others:
        x = np.minimum(x, p.max_tokens)
        value = objective_value(p, x)  # -inf where uniform budgets are unstable
        assert value <= best + tol
    assert result.objective <= c.objective + tol


# --------------------------------------------------------------------- warm start


@pytest.mark.parametrize("profile", [thinkq.paper_profile(), *ORACLE_INSTANCES[:8]])
def test_warm_start_gives_the_same_answer(profile: Profile) -> None:
    cold = thinkq.solve(profile)
    rng = np.random.default_rng(profile.size)
    starts = [
        cold.continuous.budgets,
        random_stable_point(profile, rng),
        np.full(profile.size, profile.max_tokens / 10),
    ]
    for start in starts:
        if model.utilization(profile, start) >= 1:
            continue
        warm = thinkq.solve(profile, start=start)
        assert warm.continuous.converged
        np.testing.assert_allclose(warm.continuous.budgets, cold.continuous.budgets, atol=1e-5)
        scale = term_scale(profile, cold.continuous.budgets)
        assert abs(warm.continuous.objective - cold.continuous.objective) <= 1e-12 * scale
        np.testing.assert_array_equal(warm.budgets, cold.budgets)
    # started at its own answer, the solver has (almost) nothing to do
    again = solve_continuous(profile, start=cold.continuous.budgets)
    assert again.iterations <= 2


def test_warm_start_at_a_saturated_budget() -> None:
    """Warm start at l_max with b l_max > 709 (regression: objective_change overflowed).

    From the start (1000, 0) the solver asks for the change of J to a point where
    the b = 10 type has about 1 token; model.objective_change then computes
    exp(-10000) * expm1(10000) = 0 * inf, which warns (overflow in expm1) and is
    nan. Under the project's warnings-as-errors the solve raises; without it, it
    recovers by backtracking.
    """
    p = Profile.from_arrays(
        names=["fast", "slow"],
        share=[1.0, 1.0],
        A=[0.5, 0.5],
        b=[10.0, 1e-3],
        D=[0.2, 0.2],
        t0=[0.1, 0.1],
        c=[1e-3, 1e-3],
        rate=0.1,
        alpha=30.0,
        max_tokens=1000,
    )
    cold = thinkq.solve(p)
    warm = thinkq.solve(p, start=[1000.0, 0.0])
    assert warm.continuous.converged
    np.testing.assert_allclose(warm.continuous.budgets, cold.continuous.budgets, atol=1e-5)


# --------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"method": "foo"}, "method"),
        ({"method": ""}, "method"),
        ({"integer": "x"}, "integer"),
        ({"tol": 0}, "tol"),
        ({"tol": -1e-7}, "tol"),
        ({"tol": math.nan}, "tol"),
        ({"max_iter": 0}, "max_iter"),
        ({"start": np.zeros(5)}, "start"),
        ({"start": np.zeros((6, 1))}, "start"),
        ({"start": [0, 0, 0, 0, 0, math.nan]}, "start"),
        ({"start": np.full(6, 30000.0)}, "start"),  # unstable: rate E[S] ~ 38
    ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        thinkq.solve(thinkq.paper_profile(), **kwargs)  # type: ignore[arg-type]


def test_zero_max_tokens_gives_zero_budgets() -> None:
    p = thinkq.paper_profile().replace(max_tokens=0)
    result = thinkq.solve(p)
    assert result.continuous.converged
    assert result.budgets.tolist() == [0] * 6
    np.testing.assert_array_equal(result.continuous.budgets, np.zeros(6))
    assert result.objective == model.objective(p, np.zeros(6))
    for method in ("fixed-point", "gradient"):
        r = thinkq.solve(p, method=method)
        assert r.continuous.converged
        assert r.budgets.tolist() == [0] * 6


# --------------------------------------------------------------------- hard instances

HARD_INSTANCES = load_hard_instances()


def test_hard_instances_file() -> None:
    assert len(HARD_INSTANCES) >= 5
    assert len({p.size for p in HARD_INSTANCES}) > 1


@pytest.mark.parametrize("profile", HARD_INSTANCES, ids=lambda p: f"N{p.size}")
def test_hard_instance(profile: Profile) -> None:
    """The plain fixed point (24) fails here; the default solver must not."""
    plain = thinkq.solve(profile, method="fixed-point").continuous
    assert not plain.converged
    result = thinkq.solve(profile, method="auto").continuous
    assert result.converged, result.message
    assert result.kkt_residual <= DEFAULT_TOL
    _assert_matches_oracle(profile, result.budgets)


# --------------------------------------------------------------------- found by testing


def test_auto_converges_near_the_stability_boundary() -> None:
    """The default solver converges near the stability boundary (regression).

    Found by test_solution_is_optimal_on_generated_instances (then shrunk). The
    optimum (20.666, 0, 0) has utilisation 0.9991; projected Newton once crept along
    the stability boundary (an active budget a hair above 0 moved by grad / diag,
    tiny near saturation) and needed 1292 iterations; it now takes about 20.
    """
    p = Profile.from_arrays(
        names=["a", "b", "c"],
        share=[0.1813976218908935, 0.11955832761226191, 0.0847136683121229],
        A=[0.372421325153119, 0.01, 0.11769381555993175],
        b=[0.014479593538732448, 2.0009862202608455e-06, 1.0000000000007396],
        D=[0.255064138072907, 0.3099296552442772, 0.0],
        t0=[0.0, 0.0, 0.0],
        c=[1.0278521057730981e-05, 0.0001530077077377747, 0.009007680828920776],
        rate=1e4,
        alpha=3378.985871252276,
        max_tokens=44,
    )
    result = thinkq.solve(p).continuous
    assert result.converged, (result.message, result.iterations, result.budgets)
    _assert_matches_oracle(p, result.budgets)


def test_huge_rate_with_zero_overheads() -> None:
    """Rate = 1e16 with t0 = 0 is a valid profile (rate E[S(0)] = 0); solve() once
    raised ZeroDivisionError in bounds.lemma_bounds: rho_bar = 1 - 1/(x + hypot(1, x))
    rounds to 1 for x = rate * T_bar > ~1e16, and the slack 1 - rho_bar is 0.

    Every positive budget above ~1e-10 tokens is unstable, so the answer is 0.
    """
    p = Profile.from_arrays(
        names=["only"],
        share=[1.0],
        A=[0.5],
        b=[1e-3],
        D=[0.1],
        t0=[0.0],
        c=[1e-6],
        rate=1e16,
        alpha=10.0,
        max_tokens=1000,
    )
    result = thinkq.solve(p)
    assert result.continuous.converged
    assert result.budgets.tolist() == [0]


@pytest.mark.parametrize("rate", [1e-300, 1e-320])
def test_a_vanishing_rate_solves_to_the_zero_load_budgets(rate: float) -> None:
    # below about 1e-308 the products in K (eq. 21) overflow; the best response is
    # taken in log space there, and the answer is the queue-free optimum
    profile = thinkq.paper_profile()
    result = thinkq.solve(profile.replace(rate=rate))
    assert result.continuous.converged, result.continuous.message
    reference = thinkq.solve(profile.replace(rate=1e-12)).continuous.budgets
    np.testing.assert_allclose(result.continuous.budgets, reference, atol=1e-6)


@pytest.mark.parametrize("alpha", [1e50, 1e300])
def test_a_huge_alpha_stops_at_the_limit_of_double_precision_and_says_so(alpha: float) -> None:
    # the optimum's 1 - rho is below double precision: Newton cannot reach its KKT
    # point and used to creep at the stability boundary until the iteration limit
    profile = thinkq.paper_profile().replace(rate=1.0, alpha=alpha)
    result = solve_continuous(profile)
    assert not result.converged
    assert result.message == "J stopped improving (the limit of double precision)"
    assert result.iterations < 100
    rho = model.utilization(profile, result.budgets)
    assert 1.0 - 1e-12 < rho < 1.0


def test_types_of_tiny_share_still_converge_far_from_the_boundary() -> None:
    # found by hypothesis on CI: gains below J's rounding (types of share 1e-12 moving)
    # at rho 0.9 must not stop the search, only at the stability boundary
    n = 21
    share, a, d = np.zeros(n), np.ones(n), np.zeros(n)
    share[[0, 6, 20]] = [1e-12, 1e-12, 1.0]
    a[20], d[20] = 0.5, 0.5
    t0, c = np.zeros(n), np.ones(n)
    t0[6], c[0] = 1.0, 0.001
    profile = Profile.from_arrays(
        names=[f"t{k}" for k in range(n)], share=share, A=a, b=np.ones(n), D=d, t0=t0, c=c,
        rate=1e4, alpha=100.0, max_tokens=6,
    )  # fmt: skip
    result = solve_continuous(profile)
    assert result.converged, result.message
    assert result.kkt_residual <= DEFAULT_TOL
