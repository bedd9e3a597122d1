"""The system-time distribution (thinkq.tails) against closed forms, P-K and simulation."""

from __future__ import annotations

import decimal
import math

import numpy as np
import pytest
from scipy import optimize

import thinkq
from thinkq import model
from thinkq.errors import UnstableLoadError
from thinkq.tails import SystemTimes, system_times


def _single(rate: float, t0: float = 1.0, variance: float = 0.0) -> thinkq.Profile:
    """One type, no thinking (budget 0): service t0, deterministic or lognormal."""
    task = thinkq.Task(name="only", share=1.0, A=0.5, b=1e-3, D=0.1, t0=t0, c=1e-3,
                       variance=variance)  # fmt: skip
    return thinkq.Profile.from_tasks([task], rate=rate, alpha=1.0, max_tokens=1000)


def _md1_wait_cdf(x: float, rho: float) -> float:
    """Erlang's M/D/1 waiting-time CDF, service 1: (1-rho) sum_k (rho(k-x))^k/k! e^{-rho(k-x)}.

    The terms alternate and grow like e^{2 rho x}: summed in 80-digit decimals.
    """
    with decimal.localcontext() as context:
        context.prec = 80
        r, y = decimal.Decimal(rho), decimal.Decimal(x)
        total = sum(
            ((r * (k - y)) ** k if k else decimal.Decimal(1))
            / math.factorial(k)
            * (-r * (k - y)).exp()
            for k in range(math.floor(x) + 1)
        )
        return float((1 - r) * total)


@pytest.fixture(scope="module")
def paper() -> tuple[thinkq.Profile, np.ndarray]:
    profile = thinkq.paper_profile()
    return profile, thinkq.solve(profile).budgets


@pytest.mark.parametrize("rho", [0.3, 0.7, 0.9])
def test_md1_matches_erlangs_formula(rho):
    times = system_times(_single(rho), [0.0])
    assert times.method == "pk-transform"
    for x in [0.0, 0.25, 0.5, 0.999, 1.001, 1.5, 2.7, 4.0, 7.3]:
        assert times.cdf(1.0 + x) == pytest.approx(_md1_wait_cdf(x, rho), abs=2e-7)
    # at the kink of W's CDF (the density jumps by rho (1 - rho) at x = 1) the lattice
    # is first-order: h jump / 4 with h = 1/1024
    assert times.cdf(2.0) == pytest.approx(_md1_wait_cdf(1.0, rho), abs=rho * (1 - rho) / 4096)
    assert times.cdf(0.999) == 0.0
    for p in [50.0, 95.0, 99.0]:
        q = p / 100
        if q <= 1 - rho:
            expected = 1.0  # the atom: no wait
        else:
            expected = 1 + optimize.brentq(lambda x, q=q: _md1_wait_cdf(x, rho) - q, 0.0, 60.0)
        assert times.percentile(p) == pytest.approx(expected, rel=1e-5)


def test_mean_equals_pollaczek_khinchine(paper):
    profile, budgets = paper
    for rate, cv in [(0.1, 0.0), (0.4, 0.0), (0.4, 1.5), (0.5, 0.5)]:
        p = profile.replace(rate=rate).with_variance((cv * profile.t0) ** 2)
        times = system_times(p, budgets)
        assert times.mean == pytest.approx(model.system_time(p, budgets), rel=1e-12)
        # the mean of the computed law itself: E[W] is the integral of P(W > x)
        wait = times.law.wait
        x = wait.h * np.arange(wait.G.size)
        computed = float(np.trapezoid(wait.rho - wait.G, x))
        assert computed == pytest.approx(model.waiting_time(p, budgets), rel=1e-6)
    # and the system time's, by its CDF over a fine grid (atoms at the services)
    times = system_times(profile.replace(rate=0.3), budgets)
    top = times.percentile(99.99999)
    t = np.linspace(0.0, top, 400_001)
    survival = 1.0 - times.law.overall_cdf(t)
    mean = float(np.sum(survival[:-1]) * (t[1] - t[0]))  # right-continuous steps: exact at atoms
    assert mean == pytest.approx(model.system_time(profile.replace(rate=0.3), budgets), rel=1e-4)


def test_bad_arguments_are_value_errors_naming_them(paper):
    profile, budgets = paper
    times = system_times(profile, budgets)
    for p in [0.0, 100.0, -1.0, 150.0, math.nan, math.inf]:
        with pytest.raises(ValueError, match=r"^p: "):
            times.percentile(p)
    with pytest.raises(ValueError, match=r"^p: "):
        times.percentiles([50.0, 100.0])
    for task in [-1, 6, True, 1.5]:
        with pytest.raises(ValueError, match=r"^task: "):
            times.percentile(50.0, task)
    with pytest.raises(ValueError, match=r"^budgets: "):
        system_times(profile, budgets[:3])


def test_an_unstable_load_raises_unstable_load_error(paper):
    profile, _ = paper
    with pytest.raises(UnstableLoadError):
        system_times(profile, np.full(6, 5000.0))


def test_the_api_shapes(paper):
    profile, budgets = paper
    times = system_times(profile, budgets)
    assert isinstance(times, SystemTimes)
    overall, per_task = times.percentiles([50, 95, 99])
    assert overall.shape == (3,)
    assert per_task.shape == (6, 3)
    assert np.all(np.diff(overall) > 0)
    assert overall[1] == pytest.approx(times.percentile(95), rel=1e-11)
    assert per_task[4, 2] == pytest.approx(times.percentile(99, 4), rel=1e-11)
    low, high = times.interval(95)
    assert low == high == pytest.approx(overall[1], rel=1e-11)
