"""The paper's constants and bounds: Lemma 2 (25-26), Lemma 3 (31-32), J-bar (41).

Every constant is recomputed here from the paper's formulas and compared with
thinkq's, then checked against what it claims to bound: Hessian entries and the
Jacobian of the best response (by finite differences) at points of the region where
the lemma is stated, and J at integer budgets for the lower bound (41).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings

import thinkq
from instances import oracle_instances, profiles, random_profile, random_stable_point
from oracle import objective_value, term_scale
from thinkq import Bounds, Profile, model
from thinkq.solve import solve_continuous
from thinkq.solve.bounds import lemma_bounds
from thinkq.solve.integer import round_budgets


@dataclass(frozen=True)
class Region:
    """The quantities of Lemmas 2 and 3 on a region: rho, t_k^max, E[S^2]_max."""

    rho: float
    t_hi: np.ndarray
    second: float


def _region(p: Profile, bounds: Bounds) -> Region:
    """The paper's box, or the level set {rate E[S] <= rho_bar} of thinkq's docstring:
    l_k <= min(l_max, (s_bar - E[S(0)]) / (pi_k c_k)), E[S^2] <= min(sum pi t_hi^2,
    t_max s_bar)."""
    if bounds.region == "box":
        t_hi = p.t0 + p.c * p.max_tokens
        return Region(bounds.rho_max, t_hi, float(np.dot(p.share, t_hi**2)))
    s_bar = bounds.rho_bar / p.rate
    room = max(s_bar - float(np.dot(p.share, p.t0)), 0.0)
    live = p.share > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        l_hi = np.where(live, np.minimum(p.max_tokens, room / (p.share * p.c)), p.max_tokens)
    t_hi = p.t0 + p.c * l_hi
    second = min(float(np.dot(p.share, t_hi**2)), float(t_hi.max()) * s_bar)
    return Region(bounds.rho_bar, t_hi, second)


def _lemma3_matrix(p: Profile, r: Region) -> np.ndarray:
    """H_kj of eq. (31)."""
    lam, pc, d = p.rate, p.share * p.c, 1.0 - r.rho
    h = lam**2 * np.outer(pc, pc) * (r.t_hi[:, None] + r.t_hi[None, :]) / d**2
    h += lam**3 * np.outer(pc, pc) * r.second / d**3
    h[np.diag_indices_from(h)] += lam * p.share * p.c**2 / d + p.alpha * p.share * p.A * p.b**2
    return h


def _lemma2_matrix(p: Profile, r: Region) -> np.ndarray:
    """The entrywise bound (25) on |d l_hat_k / d l_j| (row k, column j)."""
    lam, d, t_max = p.rate, 1.0 - r.rho, float(r.t_hi.max())
    bracket = 1.0 + lam * t_max / d + lam**2 * r.second / (2 * d**2)
    pc = p.share * p.c
    return np.outer(bracket / p.c, pc) + np.outer(lam / (p.b * d), pc)


def _jacobian(p: Profile, ell: np.ndarray) -> np.ndarray:
    """d l_hat / d l by central differences (columns of zero-share types are 0)."""
    m = model.moments(p, ell)
    jac = np.zeros((p.size, p.size))
    for j in np.flatnonzero(p.share > 0):
        length = m.slack / (p.rate * p.share[j] * p.c[j])
        if m.second > 0:
            length = min(length, np.sqrt(m.second / p.share[j]) / p.c[j])
        h = 1e-6 * length
        e = np.zeros(p.size)
        e[j] = h
        jac[:, j] = (model.best_response(p, ell + e) - model.best_response(p, ell - e)) / (2 * h)
    return jac


def _box_profile(rng: np.random.Generator) -> Profile:
    """Small l_max and low rate: rho_max = rate E[S]_max < 1 on the whole box."""
    base = random_profile(rng, n=int(rng.integers(2, 16)), max_tokens=int(rng.integers(1, 300)))
    s_max = float(np.dot(base.share, base.t0 + base.c * base.max_tokens))
    return base.replace(rate=rng.uniform(0.05, 0.95) / s_max)


BOX = [_box_profile(np.random.default_rng(seed)) for seed in range(12)]
LEVEL_SET = [
    thinkq.paper_profile(),
    *[p for p in oracle_instances() if thinkq.solve(p).continuous.bounds.region == "level-set"],
][:11]


def _bounds(p: Profile) -> Bounds:
    return thinkq.solve(p).continuous.bounds


# --------------------------------------------------------------------- the constants


@pytest.mark.parametrize("profile", BOX + LEVEL_SET)
def test_constants_follow_eqs_26_31_32_38(profile: Profile) -> None:
    b = _bounds(profile)
    s_max = float(np.dot(profile.share, profile.t0 + profile.c * profile.max_tokens))
    assert b.rho_max == pytest.approx(profile.rate * s_max, rel=1e-12)
    assert b.region == ("box" if b.rho_max < 1 else "level-set")
    assert 0 < b.rho_bar < 1
    if b.region == "box":
        assert b.rho_bar == b.rho_max
    r = _region(profile, b)
    assert b.lipschitz == pytest.approx(_lemma3_matrix(profile, r).sum(axis=1).max(), rel=1e-12)
    assert b.step_bound == pytest.approx(2 / b.lipschitz, rel=1e-15)  # (38)
    assert b.contraction == pytest.approx(_lemma2_matrix(profile, r).sum(axis=1).max(), rel=1e-12)


def test_region_of_the_paper_instance() -> None:
    """Table I violates the lemmas' assumption: rho_max = 41.35 over [0, 32768]^6."""
    b = _bounds(thinkq.paper_profile())
    assert b.region == "level-set"
    assert b.rho_max == pytest.approx(41.3545, rel=1e-5)
    assert b.rho_bar < 1
    # the fixed point is not certified contractive there (L_inf > 1), yet converges
    assert b.contraction > 1


# --------------------------------------------------------------------- Lemma 3


@pytest.mark.parametrize("profile", BOX, ids=lambda p: f"N{p.size}-lmax{p.max_tokens}")
def test_lemma3_on_the_box(profile: Profile) -> None:
    b = _bounds(profile)
    assert b.region == "box"
    bound = _lemma3_matrix(profile, _region(profile, b))
    rng = np.random.default_rng(profile.size)
    corners = [np.zeros(profile.size), np.full(profile.size, float(profile.max_tokens))]
    points = corners + [rng.uniform(0, profile.max_tokens, profile.size) for _ in range(30)]
    for ell in points:
        hess = model.hessian(profile, ell)
        assert np.all(np.abs(hess) <= bound * (1 + 1e-12))
        assert np.abs(hess).sum(axis=1).max() <= b.lipschitz * (1 + 1e-12)
    # at l_max the queue terms of the bound are attained: it is tight there
    hess = model.hessian(profile, corners[1])
    off = ~np.eye(profile.size, dtype=bool)
    np.testing.assert_allclose(np.abs(hess)[off], bound[off], rtol=1e-12)


def _level_set_points(p: Profile, rng: np.random.Generator) -> list[np.ndarray]:
    """Points with J >= J(0): sampled, on the segment [0, l*], and the Newton path."""
    floor = model.objective(p, np.zeros(p.size))
    optimum = thinkq.solve(p).continuous
    points = [s * optimum.budgets for s in rng.uniform(0, 1, 20)]
    for _ in range(200):
        x = random_stable_point(p, rng)
        if rng.random() < 0.5:  # near the optimum, where J is large
            noise = rng.normal(0, 1, p.size) * rng.uniform(0.01, 1) * (optimum.budgets + 1)
            x = np.clip(optimum.budgets + noise, 0, p.max_tokens)
        if model.objective(p, x) >= floor:
            points.append(x)
    for k in range(1, optimum.iterations + 1):  # the Newton iterates, one by one
        points.append(solve_continuous(p, max_iter=k).budgets)
    assert all(model.objective(p, x) >= floor for x in points)
    return points


@pytest.mark.parametrize("profile", LEVEL_SET, ids=lambda p: f"N{p.size}")
def test_lemma3_on_the_level_set(profile: Profile) -> None:
    b = _bounds(profile)
    assert b.region == "level-set"
    bound = _lemma3_matrix(profile, _region(profile, b))
    points = _level_set_points(profile, np.random.default_rng(profile.size))
    assert len(points) > 40
    for ell in points:
        assert model.utilization(profile, ell) <= b.rho_bar
        hess = model.hessian(profile, ell)
        assert np.all(np.abs(hess) <= bound * (1 + 1e-12))
        assert np.abs(hess).sum(axis=1).max() <= b.lipschitz * (1 + 1e-12)


def test_lemma3_with_service_time_variance() -> None:
    """With service-time variance the reported L_J must still be a bound (regression).

    P-K uses E[S^2] = sum pi t^2 + sum pi Var, and so does the Hessian's outer term
    lambda^3 E[S^2] / D^3; bounds.lemma_bounds once took E[S^2]_max = sum pi
    (t^max)^2 only. On this box instance (rho_max = 0.8) the queue terms of (31) are attained
    at l_max, so a variance of 0.25 s^2 (a standard deviation of a quarter of the
    2-second service time) puts ||Hess J(l_max)||_inf = 0.0026 above L_J = 0.0025.
    """
    p = Profile.from_arrays(
        names=["a", "b"],
        share=[1, 1],
        A=[0.5, 0.5],
        b=[1e-4, 1e-4],
        D=[0.2, 0.2],
        t0=[1.0, 1.0],
        c=[0.01, 0.01],
        rate=0.4,
        alpha=10.0,
        max_tokens=100,
    )
    ell = np.full(2, 100.0)
    b = _bounds(p)
    assert b.region == "box"
    assert np.abs(model.hessian(p, ell)).sum(axis=1).max() <= b.lipschitz  # no variance: fine
    noisy = p.with_variance([0.25, 0.25])
    b = _bounds(noisy)
    assert np.abs(model.hessian(noisy, ell)).sum(axis=1).max() <= b.lipschitz


# --------------------------------------------------------------------- Lemma 2


@pytest.mark.parametrize("profile", BOX + LEVEL_SET)
def test_lemma2_bounds_the_jacobian_of_the_best_response(profile: Profile) -> None:
    b = _bounds(profile)
    bound = _lemma2_matrix(profile, _region(profile, b))
    rng = np.random.default_rng(7 + profile.size)
    cap = b.rho_bar if b.region == "level-set" else 0.999
    for _ in range(10):
        ell = random_stable_point(profile, rng, max_load=cap)
        assert model.utilization(profile, ell) <= b.rho_bar
        jac = _jacobian(profile, ell)
        assert np.all(np.abs(jac) <= bound * (1 + 1e-6) + 1e-9)  # (25)
        assert np.abs(jac).sum(axis=1).max() <= b.contraction * (1 + 1e-6)  # (26)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(p=profiles())
def test_lemma2_condition_never_holds(p: Profile) -> None:
    """FINDING about the paper: L_inf of (26) is never < 1, so Lemma 2 certifies nothing.

    The first term of (26) alone is max_k (1/c_k) sum_j pi_j c_j >= sum_j pi_j c_j /
    min_k c_k >= 1: the bound |1 - a| <= 1 + a on dK_k/dl_j keeps the 1 that the
    derivative of -(1 - lambda E[S]) / (lambda c_k) contributes, and the lambda terms
    make the inequality strict. This holds for every profile, on the box and on the
    level set alike.
    """
    b = lemma_bounds(p, model.objective(p, np.zeros(p.size)))
    assert b.contraction >= float(np.dot(p.share, p.c)) / float(p.c.min()) * (1 - 1e-12)
    assert b.contraction > 1


def test_fixed_point_contracts_where_lemma2_cannot_tell() -> None:
    """On Table I the best response's Jacobian has norm < 1 near the optimum (so
    (24) converges, in 12 steps) while the certificate L_inf is 67."""
    p = thinkq.paper_profile()
    result = thinkq.solve(p, method="fixed-point").continuous
    assert result.converged
    assert result.bounds.contraction > 60
    for s in (0.5, 1.0):
        jac = _jacobian(p, s * result.budgets)
        assert np.abs(jac).sum(axis=1).max() < 1


# --------------------------------------------------------------------- eq. (41)


def _printed_lower_bound(p: Profile, ell: np.ndarray) -> float | None:
    """J-bar(l*) of eq. (41) exactly as printed (accuracy at l_k - 1, even if negative)."""
    m = model.moments(p, ell)
    c_max = float(p.c.max())
    slack = 1 - p.rate * (m.mean + c_max)
    if slack <= 0:
        return None
    acc = float(np.dot(p.share, p.A * (1 - np.exp(-p.b * (ell - 1))) + p.D))
    return p.alpha * acc - (p.rate * m.second + 2 * c_max) / (2 * slack) - m.mean


def _lower_bound_instances() -> list[Profile]:
    rng = np.random.default_rng(41)
    found = [thinkq.paper_profile(), *oracle_instances()]
    for _ in range(30):  # large c: c_max up to seconds per token
        p = random_profile(rng, n=int(rng.integers(2, 8)), max_tokens=int(rng.integers(2, 60)))
        columns = {key: getattr(p, key) for key in ("share", "A", "b", "D", "t0")}
        slow = Profile.from_arrays(
            names=p.names,
            c=p.c * 10 ** rng.uniform(0, 3, p.size),
            rate=p.rate * rng.uniform(0.01, 1),
            alpha=p.alpha,
            max_tokens=p.max_tokens,
            **columns,
        )
        found.append(slow)
    return found


@pytest.mark.parametrize("profile", _lower_bound_instances(), ids=lambda p: f"N{p.size}")
def test_paper_lower_bound_41(profile: Profile) -> None:
    result = thinkq.solve(profile)
    ell = result.continuous.budgets
    printed = _printed_lower_bound(profile, ell)
    if printed is None:
        assert result.lower_bound is None
        return
    assert result.lower_bound is not None
    # thinkq's J-bar takes the accuracy at max(l - 1, 0): equal where every l* >= 1
    if np.all(ell[profile.share > 0] >= 1):
        assert result.lower_bound == pytest.approx(printed, rel=1e-12)
    else:
        assert result.lower_bound >= printed
    tol = 1e-13 * term_scale(profile, ell)
    # the claim of section III-E: J(l*) >= J(l_int) >= J-bar(l*) for (39) and (40)
    for budgets in (result.budgets, round_budgets(profile, ell)):
        value = objective_value(profile, budgets)
        assert printed <= value + tol
        assert result.lower_bound <= value + tol
    assert result.lower_bound <= result.continuous.objective


@pytest.mark.parametrize("seed", range(8))
def test_lower_bound_41_holds_for_every_rounding(seed: int) -> None:
    """Stronger than the paper needs: J-bar(l*) <= J(l) for every floor/ceil choice."""
    rng = np.random.default_rng(seed)
    p = random_profile(rng, n=int(rng.integers(2, 9)), max_tokens=int(rng.integers(2, 400)))
    result = thinkq.solve(p)
    ell = result.continuous.budgets
    printed = _printed_lower_bound(p, ell)
    assert printed is not None
    floor = np.clip(np.floor(ell), 0, p.max_tokens)
    ceil = np.clip(np.ceil(ell), 0, p.max_tokens)
    worst = min(
        objective_value(p, combo)
        for combo in itertools.product(*[sorted({f, c}) for f, c in zip(floor, ceil, strict=True)])
    )
    assert printed <= worst + 1e-13 * term_scale(p, ell)
    assert result.lower_bound is not None
    assert result.lower_bound <= worst + 1e-13 * term_scale(p, ell)


def test_lower_bound_is_none_where_41_does_not_apply() -> None:
    """lambda (E[S] + c_max) >= 1: a rare type costing 20 s per token."""
    p = thinkq.paper_profile()
    slow = Profile.from_arrays(
        names=[*p.names, "slow"],
        share=[*p.share, 1e-6],
        A=[*p.A, 0.5],
        b=[*p.b, 1e-3],
        D=[*p.D, 0.1],
        t0=[*p.t0, 0.1],
        c=[*p.c, 20.0],
        rate=p.rate,
        alpha=p.alpha,
        max_tokens=p.max_tokens,
    )
    result = thinkq.solve(slow)
    assert result.continuous.converged
    assert _printed_lower_bound(slow, result.continuous.budgets) is None
    assert result.lower_bound is None
