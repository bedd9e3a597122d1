"""The system-time distribution (thinkq.tails) against closed forms, P-K and simulation."""

from __future__ import annotations

import decimal
import math

import numpy as np
import pytest
from scipy import optimize

import thinkq
from thinkq import model
from thinkq.batching import Server
from thinkq.errors import UnstableLoadError
from thinkq.simulate import Empirical, Lognormal
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
    with pytest.raises(ValueError, match=r"^p: .*resolved tail"):
        times.percentile(99.9999999999)
    assert times.percentile(99.9999) > times.percentile(99.99)
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


def _simulated(profile, budgets, queries, seed, answers=None):
    """Exact system times and types of a FIFO M/G/1 run (Lindley, no histograms)."""
    from thinkq.simulate.queueing import TypeSampler, draw_answer_times, lindley

    rng = np.random.default_rng(seed)
    total = queries + queries // 10
    gaps = rng.exponential(1 / profile.rate, total)
    types = TypeSampler(profile.share).draw(rng, total)
    service = profile.c[types] * np.asarray(budgets)[types] + profile.t0[types]
    if answers is not None:
        service = profile.c[types] * np.asarray(budgets)[types] + draw_answer_times(
            answers, types, rng
        )
    system = lindley(gaps, service, (0.0, 0.0))[0] + service
    return system[-queries:], types[-queries:]


def _quantile_and_error(values, p, batches=20):
    """The sample p-quantile and its standard error from consecutive batches."""
    q = np.quantile(values, p / 100, method="inverted_cdf")
    each = [np.quantile(b, p / 100, method="inverted_cdf") for b in np.array_split(values, batches)]
    return float(q), float(np.std(each, ddof=1) / math.sqrt(batches))


@pytest.mark.parametrize(("cv", "rho"), [(0.5, 0.6), (1.5, 0.4)])
def test_a_lognormal_type_matches_simulation_within_its_noise(cv, rho):
    profile = _single(rho, t0=1.0, variance=cv**2)
    times = system_times(profile, [0.0])
    system, _ = _simulated(profile, [0.0], 1_000_000, seed=7, answers=[Lognormal(1.0, cv)])
    for p in [10.0, 50.0, 90.0, 95.0, 99.0]:
        sim, error = _quantile_and_error(system, p)
        assert error < 0.03 * sim  # the test can fail: the noise is small
        assert times.percentile(p) == pytest.approx(sim, abs=4 * error)


def test_per_type_percentiles_match_a_seeded_simulation(paper):
    profile, budgets = paper
    profile = profile.replace(rate=0.35)  # utilisation about 0.6
    times = system_times(profile, budgets)
    system, types = _simulated(profile, budgets, 1_000_000, seed=3)
    for k in range(profile.size):
        mine = system[types == k]
        for p in [50.0, 95.0, 99.0]:
            sim, error = _quantile_and_error(mine, p)
            assert error < 0.03 * sim
            assert times.percentile(p, k) == pytest.approx(sim, abs=4 * error + 1e-12)
    for p in [50.0, 95.0, 99.0]:
        sim, error = _quantile_and_error(system, p)
        assert times.percentile(p) == pytest.approx(sim, abs=4 * error + 1e-12)


def test_the_batched_interval_holds_the_simulators_own_percentile(paper):
    profile, budgets = paper
    batched = profile.replace(rate=0.5).with_server(Server(slots=4, tau0=1.0, tau1=0.5))
    times = system_times(batched, budgets, queries=100_000, seed=5)
    run = thinkq.simulate(batched, budgets, queries=100_000, seed=5)
    assert times.method == "simulation"
    assert times.queries == run.queries
    assert times.mean == pytest.approx(run.mean_system_time, rel=1e-12)  # the same stream
    for p, value in [(50, run.p50_system_time), (95, run.p95_system_time),
                     (99, run.p99_system_time)]:  # fmt: skip
        low, high = times.interval(p)
        assert low < times.percentile(p) < high
        # the simulator reports the middle of its histogram bin (256 per doubling)
        assert low * 2 ** (-1 / 512) <= value <= high * 2 ** (1 / 512)
        assert high - low < 0.2 * value  # informative, not vacuous
    for k, task in enumerate(run.tasks):
        low, high = times.interval(95, k)
        assert low * 2 ** (-1 / 128) <= task.p95_system_time <= high * 2 ** (1 / 128)
    assert times.cdf(times.percentile(95)) >= 0.95
    overall, per_task = times.percentiles([50, 99])
    assert overall.shape == (2,)
    assert per_task.shape == (6, 2)


def test_an_empirical_answer_time_is_its_atoms():
    two = thinkq.Profile.from_tasks(
        [
            thinkq.Task(name="a", share=0.5, A=0.5, b=1e-3, D=0.1, t0=0.5, c=1e-2),
            thinkq.Task(name="b", share=0.5, A=0.5, b=1e-3, D=0.1, t0=3.0, c=1e-2),
        ],
        rate=0.3, alpha=1.0, max_tokens=1000,
    )  # fmt: skip
    one = _single(0.3, t0=1.75)
    as_atoms = system_times(two, [0.0, 0.0])
    as_samples = system_times(one, [0.0], answer_times=[Empirical([0.5, 3.0])])
    for t in [0.6, 0.8, 1.5, 3.3, 5.0, 9.0, 20.0]:
        assert as_samples.cdf(t) == pytest.approx(as_atoms.cdf(t), abs=1e-12)
    assert as_samples.mean == pytest.approx(as_atoms.mean, rel=1e-12)


def test_zero_service_zero_share_and_scale():
    tasks = [
        thinkq.Task(name="instant", share=0.5, A=0.5, b=1e-3, D=0.1, t0=0.0, c=1e-3),
        thinkq.Task(name="slow", share=0.5, A=0.5, b=1e-3, D=0.1, t0=1.0, c=1e-3),
        thinkq.Task(name="never", share=0.0, A=0.5, b=1e-3, D=0.1, t0=5.0, c=1e-3),
    ]
    profile = thinkq.Profile.from_tasks(tasks, rate=0.8, alpha=1.0, max_tokens=1000)
    times = system_times(profile, [0.0, 0.0, 0.0])
    rho = times.utilization
    assert rho == pytest.approx(0.4)
    # the instant type's system time is the wait: its atom 1 - rho at 0
    assert times.percentile(100 * (1 - rho) - 1, 0) == 0.0
    assert times.percentile(100 * (1 - rho) + 1, 0) > 0.0
    for t in [0.0, 0.3, 1.0, 2.5, 7.0]:
        assert times.cdf(t + 1.0, 1) == pytest.approx(times.cdf(t, 0), abs=1e-12)
        assert times.cdf(t + 5.0, 2) == pytest.approx(times.cdf(t, 0), abs=1e-12)
    assert times.cdf(4.9, 2) == 0.0
    # scale-free: every time times 1e-5 (and the rate divided) gives percentiles times 1e-5
    for factor in [1e-5, 1e4]:
        scaled = [thinkq.Task(**{**vars_of(t), "t0": t.t0 * factor}) for t in tasks]
        small = thinkq.Profile.from_tasks(scaled, rate=0.8 / factor, alpha=1.0, max_tokens=1000)
        other = system_times(small, [0.0, 0.0, 0.0])
        for p in [30.0, 70.0, 99.0]:
            assert other.percentile(p) == pytest.approx(factor * times.percentile(p), rel=1e-9)
            assert other.percentile(p, 1) == pytest.approx(
                factor * times.percentile(p, 1), rel=1e-9
            )


def vars_of(task: thinkq.Task) -> dict[str, object]:
    return {f: getattr(task, f) for f in ("name", "share", "A", "b", "D", "t0", "c", "variance")}


def test_utilisation_099_still_works():
    times = system_times(_single(0.99), [0.0])
    for x in [0.5, 3.0, 20.0, 45.0]:
        assert times.cdf(1.0 + x) == pytest.approx(_md1_wait_cdf(x, 0.99), abs=1e-7)
    wait = times.law.wait
    mean = float(np.trapezoid(wait.rho - wait.G, wait.h * np.arange(wait.G.size)))
    assert mean == pytest.approx(0.99 / (2 * 0.01), rel=1e-6)  # M/D/1: rho / (2 (1 - rho))
    assert times.percentile(99) > times.percentile(95) > 100


def test_many_lognormal_types_take_the_slice_route_and_agree(monkeypatch):
    rng = np.random.default_rng(4)
    n = 34  # distinct lognormals: 34 x 2^16 cells, more than EXACT_CELLS
    profile = thinkq.Profile.from_arrays(
        names=[f"k{i}" for i in range(n)], share=rng.dirichlet(np.ones(n)),
        A=np.full(n, 0.5), b=np.full(n, 1e-3), D=np.full(n, 0.1),
        t0=rng.uniform(0.1, 3.0, n), c=np.full(n, 1e-3), variance=np.zeros(n),
        rate=0.3, alpha=1.0, max_tokens=1000,
    )  # fmt: skip
    profile = profile.with_variance((rng.uniform(0.2, 1.5, n) * profile.t0) ** 2)
    budgets = np.zeros(n)
    sliced = system_times(profile, budgets)
    monkeypatch.setattr("thinkq.tails.residual.EXACT_CELLS", 1 << 40)
    exact = system_times(profile, budgets)
    assert sliced.mean == exact.mean == pytest.approx(model.system_time(profile, budgets))
    overall_s, per_s = sliced.percentiles([50, 95, 99])
    overall_e, per_e = exact.percentiles([50, 95, 99])
    assert overall_s == pytest.approx(overall_e, rel=1e-6)
    assert per_s == pytest.approx(per_e, rel=1e-5)
