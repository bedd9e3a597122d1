"""thinkq.model against hand computations and numerical derivatives (eqs. 1-22)."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as st

import thinkq
from instances import profiles, random_stable_point
from oracle import exact_context, exact_moments, exact_objective, term_scale
from thinkq import Profile, model

EPS = float(np.finfo(np.float64).eps)
SEEDS = st.integers(0, 2**32 - 1)
PROPERTY = settings(max_examples=60, deadline=None, derandomize=True)

# Table I of the paper, typed from the paper (not read from the package's data file).
TABLE_I = {
    "AIME": (0.6808, 1.59e-4, 0.0, 0.1380, 0.0120),
    "GSM8K": (0.7230, 3.20e-3, 0.277, 0.1459, 0.0141),
    "GPQA": (0.3552, 4.41e-4, 0.276, 0.1674, 0.0126),
    "CRUXEval": (0.4379, 5.63e-4, 0.0, 0.0176, 0.0124),
    "BBH": (0.7146, 1.75e-3, 0.148, 0.2073, 0.0127),
    "ARC-Challenge": (0.3933, 1.66e-1, 0.490, 0.0581, 0.0119),
}
RATE, ALPHA = 0.1, 30.0
POINT = (120.0, 340.0, 7.5, 0.0, 346.0, 30.0)


def _close(actual: float, expected: float, rel: float = 1e-13) -> bool:
    return abs(actual - expected) <= rel * abs(expected)


# --------------------------------------------------------------------- hand computations


def test_paper_profile_is_table_one() -> None:
    p = thinkq.paper_profile()
    assert p.names == tuple(TABLE_I)
    assert (p.rate, p.alpha, p.max_tokens) == (RATE, ALPHA, 32768)
    np.testing.assert_array_equal(p.share, np.full(6, 1 / 6))
    for k, (a, b, d, t0, c) in enumerate(TABLE_I.values()):
        assert (p.A[k], p.b[k], p.D[k], p.t0[k], p.c[k]) == (a, b, d, t0, c)


def test_formulas_by_hand_on_paper_profile() -> None:
    """Eqs. (1)-(7) at one budget vector, written out with plain floats and loops."""
    p = thinkq.paper_profile()
    t = [t0 + c * l for (_, _, _, t0, c), l in zip(TABLE_I.values(), POINT, strict=True)]
    acc = [
        a * (1 - math.exp(-b * l)) + d
        for (a, b, d, _, _), l in zip(TABLE_I.values(), POINT, strict=True)
    ]
    mean = sum(x / 6 for x in t)  # eq. (3)
    second = sum(x * x / 6 for x in t)
    wait = RATE * second / (2 * (1 - RATE * mean))  # eq. (5)
    j = ALPHA * sum(x / 6 for x in acc) - wait - mean  # eq. (7)

    np.testing.assert_allclose(model.service_time(p, POINT), t, rtol=1e-15)  # eq. (1)
    np.testing.assert_allclose(model.accuracy(p, POINT), acc, rtol=1e-13)  # eq. (2)
    assert _close(model.mean_accuracy(p, POINT), sum(acc) / 6)
    m = model.moments(p, POINT)
    assert _close(m.mean, mean)
    assert _close(m.second, second)
    assert _close(m.slack, 1 - RATE * mean)
    assert _close(model.utilization(p, POINT), RATE * mean)  # eq. (4)
    assert _close(model.waiting_time(p, POINT), wait)
    assert _close(model.system_time(p, POINT), wait + mean)  # eq. (6)
    assert _close(model.objective(p, POINT), j)
    assert 0 < RATE * mean < 1  # the point is a stable one, as the test intends


def test_gradient_and_hessian_by_hand_on_paper_profile() -> None:
    """Eqs. (10), (15) for the gradient and (11), (33) for the Hessian, by loops."""
    p = thinkq.paper_profile()
    rows = list(TABLE_I.values())
    t = [t0 + c * l for (_, _, _, t0, c), l in zip(rows, POINT, strict=True)]
    mean = sum(x / 6 for x in t)
    second = sum(x * x / 6 for x in t)
    d = 1 - RATE * mean
    grad, hess = [], [[0.0] * 6 for _ in range(6)]
    for k, (a, b, _, _, c) in enumerate(rows):
        dw = RATE / 6 * c * (t[k] / d + RATE * second / (2 * d * d))  # eq. (10)
        dp = a * b * math.exp(-b * POINT[k])  # eq. (15)
        grad.append(ALPHA / 6 * dp - dw - c / 6)
        for j, (_, _, _, _, cj) in enumerate(rows):
            if j == k:  # eq. (11), k = j, plus eq. (33)
                front = RATE / 6 * c**2 / d
                w2 = front * (2 * RATE / 6 * t[k] / d + RATE**2 / 6 * second / d**2 + 1)
                hess[k][j] = -w2 - ALPHA / 6 * a * b * b * math.exp(-b * POINT[k])
            else:  # eq. (11), k != j
                w2 = RATE**2 / 36 * c * cj / d**2 * (t[k] + t[j] + RATE * second / d)
                hess[k][j] = -w2
    np.testing.assert_allclose(model.gradient(p, POINT), grad, rtol=1e-12)
    np.testing.assert_allclose(model.hessian(p, POINT), hess, rtol=1e-12)


# --------------------------------------------------------------------- derivatives


def _terms(p: Profile, ell: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """|accuracy part| and |queue part| of each gradient component, and the slack."""
    t = p.t0 + p.c * ell
    mean = float(np.dot(p.share, t))
    second = float(np.dot(p.share * t, t))
    d = 1 - p.rate * mean
    gain = p.share * p.alpha * p.A * p.b * np.exp(-p.b * ell)
    cost = p.share * p.c * (1 + p.rate * t / d + p.rate**2 * second / (2 * d * d))
    return gain, cost, d


@PROPERTY
@given(p=profiles(max_n=8), seed=SEEDS)
def test_gradient_matches_central_differences(p: Profile, seed: int) -> None:
    """Central differences of J in 80-digit arithmetic with a 1e-20-token step.

    In Decimal the difference quotient has neither rounding error nor (at this step)
    truncation error worth the name, so it is the exact derivative to ~30 digits and
    the only error left is float64's in thinkq's gradient: a few ulps of the
    accuracy part plus a few ulps of the queue part amplified by 1/slack.
    """
    ell = random_stable_point(p, np.random.default_rng(seed))
    grad = model.gradient(p, ell)
    gain, cost, d = _terms(p, ell)
    h = Decimal("1e-20")
    for k in range(p.size):
        with exact_context():
            up = [Decimal(float(x)) for x in ell]
            down = list(up)
            up[k] += h
            down[k] -= h
            fd = (_exact_j(p, up) - _exact_j(p, down)) / (2 * h)
        tol = 64 * EPS * (gain[k] + cost[k] / d)
        assert abs(grad[k] - float(fd)) <= tol, (k, grad[k], float(fd))


def _exact_j(p: Profile, ell: list[Decimal]) -> Decimal:
    """J at Decimal budgets (not rounded to float64); the paper's model, no variance."""
    mean = second = acc = Decimal(0)
    for k, l_k in enumerate(ell):
        pi = Decimal(float(p.share[k]))
        t = Decimal(float(p.t0[k])) + Decimal(float(p.c[k])) * l_k
        mean += pi * t
        second += pi * t * t
        decay = (-Decimal(float(p.b[k])) * l_k).exp()
        acc += pi * (Decimal(float(p.A[k])) * (1 - decay) + Decimal(float(p.D[k])))
    rate = Decimal(p.rate)
    return Decimal(p.alpha) * acc - rate * second / (2 * (1 - rate * mean)) - mean


@PROPERTY
@given(p=profiles(max_n=8), seed=SEEDS)
def test_hessian_matches_differences_of_gradient(p: Profile, seed: int) -> None:
    """Column k of the Hessian against (grad(l + h e_k) - grad(l - h e_k)) / 2h.

    The step is 1e-4 of the shortest length on which column k changes: 1/b_k for the
    accuracy term, slack / (lambda pi_k c_k) for the 1/slack factors and
    sqrt(E[S^2] / pi_k) / c_k for E[S^2] (quadratic in l_k), so truncation is ~1e-9
    relative; rounding contributes ulps of the gradient's parts divided by h.
    """
    ell = random_stable_point(p, np.random.default_rng(seed), max_load=0.99)
    hess = model.hessian(p, ell)
    gain, cost, d = _terms(p, ell)
    second = model.moments(p, ell).second
    live = p.share > 0
    with np.errstate(divide="ignore", invalid="ignore"):  # share 0: lengths are inf
        queue_length = np.where(live, d / (p.rate * p.share * p.c), np.inf)
        square_length = np.where(live & (second > 0), np.sqrt(second / p.share) / p.c, np.inf)
    others = np.minimum(1.0 / p.b, queue_length)
    if second == 0:  # all t = 0: E[S^2] grows from 0 as pi_k c_k^2 h^2
        square_length = 1e-2 * others
    steps = 1e-4 * np.minimum(others, square_length)
    scale = np.sqrt(np.abs(np.diag(hess)))
    for k in range(p.size):
        e = np.zeros(p.size)
        e[k] = steps[k]
        fd = (model.gradient(p, ell + e) - model.gradient(p, ell - e)) / (2 * steps[k])
        rounding = 16 * EPS * (gain + cost / d) / steps[k]
        tol = 1e-7 * (np.abs(hess[:, k]) + scale * scale[k]) + rounding
        assert np.all(np.abs(hess[:, k] - fd) <= tol), (k, hess[:, k], fd)


@PROPERTY
@given(p=profiles(), seed=SEEDS)
def test_hessian_parts_rebuild_the_hessian(p: Profile, seed: int) -> None:
    ell = random_stable_point(p, np.random.default_rng(seed))
    parts = model.hessian_parts(p, ell)
    t = p.t0 + p.c * ell
    np.testing.assert_allclose(parts.u, p.share * p.c, rtol=1e-15)
    np.testing.assert_allclose(parts.v, p.share * p.c * t, rtol=1e-15)
    assert np.all(parts.diagonal >= 0)
    assert parts.cross >= 0
    assert parts.outer >= 0
    rebuilt = -np.diag(parts.diagonal) - parts.cross * (
        np.outer(parts.u, parts.v) + np.outer(parts.v, parts.u)
    )
    rebuilt -= parts.outer * np.outer(parts.u, parts.u)
    hess = model.hessian(p, ell)
    np.testing.assert_array_equal(hess, hess.T)
    scale = np.sqrt(np.outer(np.abs(np.diag(hess)), np.abs(np.diag(hess))))
    assert np.all(np.abs(hess - rebuilt) <= 1e-14 * scale)


# --------------------------------------------------------------------- concavity (Lemma 1)


@PROPERTY
@given(p=profiles(), seed=SEEDS)
def test_hessian_is_negative_definite(p: Profile, seed: int) -> None:
    """-Hess J is positive definite (Lemma 1) on the types with positive share.

    The check is a Cholesky factorisation of -H scaled to unit diagonal, which is
    well conditioned even when the entries span many orders of magnitude. Types with
    zero share do not enter J: their rows are zero.
    """
    ell = random_stable_point(p, np.random.default_rng(seed))
    hess = model.hessian(p, ell)
    live = p.share > 0
    idle = ~live
    assert np.all(hess[idle] == 0)
    neg = -hess[np.ix_(live, live)]
    scale = 1 / np.sqrt(np.diag(neg))
    np.linalg.cholesky(neg * np.outer(scale, scale))  # raises unless positive definite
    z = np.random.default_rng(seed).standard_normal(int(live.sum())) * scale
    assert z @ neg @ z > 0


@PROPERTY
@given(p=profiles(max_tokens_max=100_000), seed=SEEDS, s=st.floats(0.05, 0.95))
def test_objective_is_concave_along_segments(p: Profile, seed: int, s: float) -> None:
    """J(s x + (1-s) y) >= s J(x) + (1-s) J(y) for stable x, y (Decimal arithmetic)."""
    rng = np.random.default_rng(seed)
    x, y = random_stable_point(p, rng), random_stable_point(p, rng)
    with exact_context():
        jx, jy = exact_objective(p, x), exact_objective(p, y)
        w = Decimal(s)
        mid = [w * Decimal(a) + (1 - w) * Decimal(b) for a, b in zip(x, y, strict=True)]
        jm = _exact_j(p, mid)
        chord = Decimal(s) * jx + (1 - Decimal(s)) * jy
        rounding = Decimal("1e-70") * (abs(jx) + abs(jy) + Decimal(p.alpha) + 1)
        assert jm >= chord - rounding
        # strict (Lemma 1) where the second-order gap s (1 - s) / 2 * d'(-H)d is
        # resolvable at 80 digits
        d = y - x
        gap = s * (1 - s) / 2 * float(d @ -model.hessian(p, x) @ d)
        if gap > 1e-60 * float(abs(jx) + abs(jy) + Decimal(p.alpha) + 1):
            assert jm > chord + rounding
    # and the float64 objective agrees with the Decimal one (to ulps of J's terms)
    assert abs(model.objective(p, x) - float(jx)) <= 1e-13 * term_scale(p, x)


# --------------------------------------------------------------------- objective_change


def _first_order_size(p: Profile, ell: np.ndarray, step: np.ndarray) -> float:
    """sum_k (|accuracy part| + |queue part|) |d_k|: the size of J's first-order change."""
    gain, cost, _ = _terms(p, ell)
    return float(np.dot(gain + cost, np.abs(step)))


@PROPERTY
@given(p=profiles(), seed=SEEDS)
def test_objective_change_equals_difference_of_objectives(p: Profile, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, y = random_stable_point(p, rng), random_stable_point(p, rng)
    change = model.objective_change(p, x, y)
    with exact_context():
        exact = float(exact_objective(p, y) - exact_objective(p, x))
    naive = model.objective(p, y) - model.objective(p, x)
    scale = abs(model.objective(p, x)) + abs(model.objective(p, y)) + abs(exact)
    # where the difference is well-conditioned both forms are right
    assert abs(change - exact) <= 1e-12 * scale + 1e-300
    assert abs(naive - exact) <= 1e-12 * scale + 1e-300


@PROPERTY
@given(p=profiles(), seed=SEEDS)
def test_objective_change_keeps_digits_for_tiny_moves(p: Profile, seed: int) -> None:
    """A 1e-9-token move: the change is ~1e-9 of J's terms; keep it to 1e-10 of that."""
    rng = np.random.default_rng(seed)
    x = random_stable_point(p, rng, max_load=0.99)
    step = rng.choice([-1.0, 1.0], p.size) * rng.uniform(0.1, 1.0, p.size) * 1e-9
    y = np.clip(x + step, 0.0, p.max_tokens)
    change = model.objective_change(p, x, y)
    with exact_context():
        exact = float(exact_objective(p, y) - exact_objective(p, x))
    size = _first_order_size(p, x, y - x)
    assert abs(change - exact) <= 1e-10 * size + 1e-300


def test_objective_change_at_the_optimum_beats_subtraction() -> None:
    """At the paper's optimum a 1e-9-token move changes J by ~1e-20; J is ~10.

    Subtracting two objective values returns rounding noise of order 1e-15; the
    exact change (80-digit Decimal) and a second-order Taylor expansion agree, and
    objective_change keeps several digits of it.
    """
    p = thinkq.paper_profile()
    x = thinkq.solve(p).continuous.budgets
    step = np.array([0.0, 1e-9, 0.0, 0.0, -1e-9, 1e-9])
    y = x + step
    d = y - x  # the step actually taken in float64
    with exact_context():
        exact = float(exact_objective(p, y) - exact_objective(p, x))
    taylor = float(model.gradient(p, x) @ d + 0.5 * d @ model.hessian(p, x) @ d)
    assert exact == pytest.approx(taylor, rel=1e-3)
    assert 0 < abs(exact) < 1e-16
    change = model.objective_change(p, x, y)
    assert change == pytest.approx(exact, rel=1e-4)
    naive = model.objective(p, y) - model.objective(p, x)
    assert abs(naive - exact) > 100 * abs(change - exact)


def test_objective_change_when_a_saturated_budget_falls() -> None:
    """A saturated budget that falls keeps its digits (regression).

    exp(-b l) * expm1(-b dl) is 0 * inf once b l > 709 and -b dl > 709. b = 10 per
    token, a budget of 100 tokens cut to 0: J(0) - J(100) is an ordinary number
    (-14.898...); objective_change once overflowed in expm1 and returned nan. The
    solver meets this in its line search from a warm start at l_max (see
    test_solve.py::test_warm_start_at_a_saturated_budget).
    """
    p = Profile.from_arrays(
        names=["x"],
        share=[1.0],
        A=[0.5],
        b=[10.0],
        D=[0.2],
        t0=[0.1],
        c=[1e-3],
        rate=0.1,
        alpha=30.0,
        max_tokens=100,
    )
    with exact_context():
        exact = float(exact_objective(p, [0.0]) - exact_objective(p, [100.0]))
    change = model.objective_change(p, [100.0], [0.0])
    assert change == pytest.approx(exact, rel=1e-12)


def test_objective_change_to_unstable_budgets_is_minus_inf() -> None:
    p = thinkq.paper_profile()
    assert model.objective_change(p, np.zeros(6), np.full(6, 1000.0)) == float("-inf")


# --------------------------------------------------------------------- best response (19)-(22)


def _exact_l_k(p: Profile, ell: np.ndarray) -> tuple[list[Decimal], list[Decimal]]:
    """L_k (eq. 20) and K_k (eq. 21) at ``ell`` in Decimal arithmetic."""
    mean, second = exact_moments(p, ell)
    rate = Decimal(p.rate)
    slack = 1 - rate * mean
    big_l, big_k = [], []
    for k in range(p.size):
        a, b, c = (Decimal(float(getattr(p, key)[k])) for key in ("A", "b", "c"))
        t0 = Decimal(float(p.t0[k]))
        big_l.append(Decimal(p.alpha) * a * b / (rate * c * c) * slack)
        big_k.append(-t0 / c - slack / (rate * c) - rate * second / (2 * c * slack))
    return big_l, big_k


def _check_best_response(p: Profile, ell: np.ndarray) -> np.ndarray:
    """Assert that best_response solves l - L e^{-b l} = K (19) to relative precision.

    The error of a float64 root is measured as the Newton correction
    r / (1 + b L e^{-b l}) (f' >= 1), relative to the largest term of (19).
    """
    response = model.best_response(p, ell)
    assert np.all(np.isfinite(response))
    with exact_context():
        big_l, big_k = _exact_l_k(p, ell)
        for k, x in enumerate(response):
            b = Decimal(float(p.b[k]))
            pull = big_l[k] * (-b * Decimal(float(x))).exp()
            residual = Decimal(float(x)) - pull - big_k[k]
            correction = abs(residual) / (1 + b * pull)
            size = max(abs(Decimal(float(x))), abs(big_k[k]), pull)
            assert correction <= Decimal("1e-12") * size, (k, x, correction, size)
    return response


@PROPERTY
@given(p=profiles(), seed=SEEDS)
def test_best_response_solves_stationarity(p: Profile, seed: int) -> None:
    ell = random_stable_point(p, np.random.default_rng(seed))
    _check_best_response(p, ell)


def _profile(**kw: float) -> Profile:
    fields = {"A": 0.7, "b": 3e-3, "D": 0.2, "t0": 0.15, "c": 0.014}
    fields.update(kw)
    rate = fields.pop("rate", 0.1)
    alpha = fields.pop("alpha", 30.0)
    return Profile.from_arrays(
        names=["only"],
        share=[1.0],
        rate=rate,
        alpha=alpha,
        max_tokens=32768,
        **{key: [value] for key, value in fields.items()},
    )


@pytest.mark.parametrize(
    "extreme",
    [
        {"b": 10.0, "c": 1e-6, "rate": 0.01, "alpha": 1e4},  # -b K ~ 1e9
        {"b": 5.0, "c": 1e-4, "t0": 50.0, "rate": 0.001},  # t0 / c large
        {"b": 1.0, "c": 1e-5, "alpha": 1e-2, "rate": 1e-3},
    ],
)
def test_best_response_where_lambertw_overflows(extreme: dict[str, float]) -> None:
    """The paper's closed form (22) overflows (exp(-b K) = inf); best_response does not."""
    p = _profile(**extreme)
    ell = np.zeros(1)
    big_l, big_k = (np.array([float(v) for v in col]) for col in _decimal_lk(p, ell))
    with np.errstate(over="ignore"):
        z = p.b * big_l * np.exp(-p.b * big_k)
        plain = scipy.special.lambertw(z).real / p.b + big_k
    assert not np.all(np.isfinite(plain))  # the plain formula fails here ...
    response = _check_best_response(p, ell)  # ... and ours solves (19) all the same
    assert response[0] > 0


def _decimal_lk(p: Profile, ell: np.ndarray) -> tuple[list[Decimal], list[Decimal]]:
    with exact_context():
        return _exact_l_k(p, ell)


@PROPERTY
@given(p=profiles(max_tokens_max=10_000), seed=SEEDS)
def test_best_response_agrees_with_lambertw_where_it_is_finite(p: Profile, seed: int) -> None:
    ell = random_stable_point(p, np.random.default_rng(seed))
    big_l, big_k = (np.array([float(v) for v in col]) for col in _decimal_lk(p, ell))
    with np.errstate(over="ignore", under="ignore"):
        w = scipy.special.lambertw(p.b * big_l * np.exp(-p.b * big_k)).real
    ok = np.isfinite(w) & (w < 1e300)
    plain = w / p.b + big_k
    ours = model.best_response(p, ell)
    # the plain form loses digits to cancellation: absolute error ~ ulps of its terms
    tol = 1e-12 * (np.abs(big_k) + w / p.b)
    assert np.all(np.abs(ours - plain)[ok] <= tol[ok])


# --------------------------------------------------------------------- stability region


def test_outside_the_stability_region() -> None:
    p = thinkq.paper_profile()
    # E[S] = E[S(0)] + c l / ... : find the budget with rate E[S] exactly 1, go past it
    edge = (1 / p.rate - np.dot(p.share, p.t0)) / np.dot(p.share, p.c)
    for ell in (np.full(6, edge), np.full(6, 2 * edge), np.full(6, 1e9)):
        assert model.utilization(p, ell) >= 1 - 1e-15
        if model.moments(p, ell).slack > 0:
            continue  # rounding left it (just) stable
        assert model.objective(p, ell) == float("-inf")
        assert model.waiting_time(p, ell) == float("inf")
        assert model.system_time(p, ell) == float("inf")
        for f in (model.gradient, model.hessian, model.hessian_parts, model.best_response):
            with pytest.raises(ValueError, match="stability"):
                f(p, ell)
    # just inside: finite, and J falls as the slack vanishes
    inside = np.full(6, edge * (1 - 1e-9))
    assert np.isfinite(model.objective(p, inside))
    assert model.objective(p, inside) < model.objective(p, np.full(6, edge * 0.5))


def test_budgets_of_the_wrong_shape_are_rejected() -> None:
    p = thinkq.paper_profile()
    for f in (model.objective, model.gradient, model.service_time, model.best_response):
        with pytest.raises(ValueError, match="budgets"):
            f(p, np.zeros(5))
