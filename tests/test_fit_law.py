"""The bent step-time law tau(1) + beta (n^gamma - 1) / gamma (thinkq.fit.law)."""

from __future__ import annotations

import numpy as np
import pytest

from thinkq.fit.law import PowerLaw, fit_power, power_draws, power_held_out, power_z


def test_gamma_one_is_the_line_and_gamma_zero_the_logarithm() -> None:
    n = np.array([1.0, 2.0, 3.5, 8.0])
    assert np.allclose(power_z(n, 1.0), n - 1)
    assert np.allclose(power_z(n, 0.0), np.log(n))
    assert np.allclose(power_z(n, 1e-12), np.log(n))
    assert np.allclose(power_z(n, -1.0), 1 - 1 / n)
    # an array of shapes at one n, as the bootstrap uses it
    assert np.allclose(power_z(4.0, np.array([1.0, 0.0, 2.0])), [3.0, np.log(4.0), 7.5])


@pytest.mark.parametrize("gamma", [-1.5, -0.2, 0.0, 0.23, 1.0, 1.8])
def test_the_fit_recovers_an_exact_law(gamma: float) -> None:
    true = PowerLaw(0.008, 0.012, gamma)
    x = np.repeat([1.0, 2.0, 3.0, 5.0, 8.0], 4)
    law = fit_power(x, true(x), np.ones_like(x))
    assert law.step_1 == pytest.approx(true.step_1, rel=1e-5)
    assert law.beta == pytest.approx(true.beta, rel=1e-4)
    assert law.gamma == pytest.approx(gamma, abs=1e-3)


def test_a_law_that_falls_is_held_flat() -> None:
    x = np.array([1.0, 2.0, 4.0])
    law = fit_power(x, np.array([0.02, 0.015, 0.01]), np.ones(3))
    assert law.beta == 0.0
    assert law.step_1 == pytest.approx(0.015)


def test_steps_cover_every_n_then_a_geometric_grid_to_the_slots() -> None:
    law = PowerLaw(0.008, 0.01, 0.3)
    assert [n for n, _ in law.steps(4)] == [1, 2, 3, 4]
    many = law.steps(1000)
    ns = [n for n, _ in many]
    assert ns[:64] == list(range(1, 65))
    assert ns[-1] == 1000
    assert len(ns) <= 64 + 32
    assert ns == sorted(set(ns))
    times = [t for _, t in many]
    assert times == sorted(times)  # beta >= 0: never faster with more sequences
    assert times[0] == pytest.approx(0.008)


def test_held_out_needs_four_levels_and_predicts_an_exact_law() -> None:
    true = PowerLaw(0.0077, 0.011, 0.23)
    levels = np.array([1.0, 2.0, 4.0, 8.0])
    level = np.repeat(np.arange(4), 3)
    x = levels[level]
    errors = power_held_out(x, true(x), np.ones_like(x), level, levels, true(levels))
    assert np.all(np.abs(errors) < 1e-3)
    three = level < 3
    assert np.isnan(
        power_held_out(
            x[three], true(x[three]), np.ones(9), level[three], levels[:3], true(levels[:3])
        )
    ).all()


def test_draws_refit_each_row() -> None:
    true = PowerLaw(0.0077, 0.011, 0.2)
    x = np.tile(np.repeat([1.0, 2.0, 4.0, 8.0], 2), (5, 1))
    step_1, beta, gamma = power_draws(x, true(x), np.ones_like(x))
    assert np.allclose(step_1, 0.0077, rtol=1e-6)
    assert np.allclose(gamma, 0.2)
    assert np.allclose(beta, 0.011, rtol=1e-6)
