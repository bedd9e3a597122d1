"""The simulator against Pollaczek-Khinchine, a per-query loop, and its own promises."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy import stats

import thinkq
from thinkq import model
from thinkq.simulate import Deterministic, Empirical, Lognormal, simulate
from thinkq.simulate.queueing import Histogram, TypeSampler, lindley

PAPER_PK = 2.1784  # the P-K mean system time at the paper's optimum, seconds


@pytest.fixture(scope="module")
def paper() -> thinkq.Profile:
    return thinkq.paper_profile()


@pytest.fixture(scope="module")
def optimum(paper: thinkq.Profile) -> np.ndarray:
    return thinkq.solve(paper).continuous.budgets


def _busy(paper: thinkq.Profile) -> tuple[thinkq.Profile, np.ndarray]:
    """The paper's curves at a rate where the optimum runs at about 0.7 utilisation."""
    for rate in np.linspace(0.5, 8.0, 200):
        p = paper.replace(rate=float(rate))
        l = thinkq.solve(p).continuous.budgets
        if model.utilization(p, l) >= 0.7:
            return p, l
    raise AssertionError("no rate reaches utilisation 0.7")


def test_paper_optimum_matches_pk_within_one_percent(paper, optimum):
    assert model.system_time(paper, optimum) == pytest.approx(PAPER_PK, abs=5e-5)
    run = simulate(paper, optimum, queries=1_000_000, seed=11)
    assert run.analytic_mean_system_time == pytest.approx(PAPER_PK, abs=5e-5)
    assert abs(run.mean_system_time / PAPER_PK - 1) < 0.01
    assert run.utilization == pytest.approx(model.utilization(paper, optimum), rel=0.01)
    assert run.accuracy == pytest.approx(model.mean_accuracy(paper, optimum), abs=0.003)
    for task in run.tasks:
        assert task.queries == pytest.approx(run.queries / 6, rel=0.02)
        assert task.mean_system_time == pytest.approx(task.analytic_mean_system_time, rel=0.02)
        assert task.accuracy == pytest.approx(task.analytic_accuracy, abs=0.005)
    assert sum(t.queries for t in run.tasks) == run.queries


def test_confidence_intervals_cover_pk_at_about_their_level(paper, optimum):
    seeds = range(120)
    covered = [
        lo <= run.analytic_mean_system_time <= hi
        for run in (simulate(paper, optimum, queries=100_000, seed=s) for s in seeds)
        for lo, hi in [run.mean_system_time_ci]
    ]
    # 95% intervals: a binomial(120, 0.95) count lies in [106, 120] with prob. > 0.99
    assert 106 <= sum(covered) <= 120


def test_busy_operating_point_agrees_with_pk(paper):
    p, l = _busy(paper)
    run = simulate(p, l, queries=2_000_000, seed=5)
    assert 0.69 <= run.analytic_utilization <= 0.75
    lo, hi = run.mean_system_time_ci
    assert lo <= run.analytic_mean_system_time <= hi
    assert hi - lo < 0.05 * run.analytic_mean_system_time


def test_lognormal_answer_times_agree_with_pk_of_the_same_distributions(paper):
    p, l = _busy(paper)
    answers = [Lognormal(mean=float(t0), cv=1.5) for t0 in p.t0]
    varied = p.with_answer_times(answers)
    assert model.system_time(varied, l) > model.system_time(p, l)  # variance adds waiting
    run = simulate(varied, l, queries=2_000_000, seed=6, answer_times=answers)
    lo, hi = run.mean_system_time_ci
    assert lo <= run.analytic_mean_system_time <= hi
    assert run.analytic_mean_system_time == pytest.approx(model.system_time(varied, l))


def test_empirical_and_deterministic_distributions(paper, optimum):
    answers = [Empirical([0.5 * t0, 1.5 * t0]) for t0 in paper.t0]
    assert answers[1].mean == pytest.approx(paper.t0[1])
    assert answers[1].variance == pytest.approx((0.5 * paper.t0[1]) ** 2)
    run = simulate(paper, optimum, queries=200_000, seed=1, answer_times=answers)
    assert run.analytic_mean_system_time > model.system_time(paper, optimum)
    same = simulate(
        paper, optimum, queries=50_000, seed=2, answer_times=[Deterministic(t) for t in paper.t0]
    )
    plain = simulate(paper, optimum, queries=50_000, seed=2)
    assert same.analytic_mean_system_time == pytest.approx(plain.analytic_mean_system_time)


def test_answer_times_must_match_t0(paper, optimum):
    wrong = [Lognormal(mean=1.0, cv=0.5)] * 6
    with pytest.raises(ValueError, match=r"answer_times\[0\]"):
        simulate(paper, optimum, queries=1000, answer_times=wrong)
    with pytest.raises(ValueError, match="answer_times"):
        simulate(paper, optimum, queries=1000, answer_times=wrong[:2])


def test_reproducible_by_seed(paper, optimum):
    a = simulate(paper, optimum, queries=20_000, seed=3)
    b = simulate(paper, optimum, queries=20_000, seed=3)
    c = simulate(paper, optimum, queries=20_000, seed=4)
    assert a == b
    assert a.mean_system_time != c.mean_system_time


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"queries": 5}, "queries"),
        ({"queries": 1.5}, "queries"),
        ({"queries": 1000, "warmup": -1}, "warmup"),
    ],
)
def test_bad_arguments_name_the_argument(paper, optimum, kwargs, name):
    with pytest.raises(ValueError, match=name):
        simulate(paper, optimum, **kwargs)


def test_unstable_or_malformed_budgets(paper):
    with pytest.raises(ValueError, match="unstable"):
        simulate(paper, np.full(6, 32768.0), queries=1000)
    with pytest.raises(ValueError, match="budgets"):
        simulate(paper, np.zeros(5), queries=1000)


def test_lindley_blocks_equal_a_per_query_loop():
    rng = np.random.default_rng(0)
    gaps = rng.exponential(1.0, 5000)
    service = rng.exponential(0.9, 5000)
    expected = np.empty(5000)
    w = 0.0
    for n in range(5000):
        if n:
            w = max(0.0, w + service[n - 1] - gaps[n])
        expected[n] = w
    got, carry = lindley(gaps[:1234], service[:1234], (0.0, 0.0))
    rest, _ = lindley(gaps[1234:], service[1234:], carry)
    assert np.allclose(np.concatenate([got, rest]), expected, rtol=1e-12, atol=1e-9)
    assert np.all(expected >= 0)
    assert expected.max() > 5


def test_type_sampler_draws_the_shares():
    share = np.array([0.5, 0.2, 0.2, 0.1, 0.0])
    counts = np.bincount(TypeSampler(share).draw(np.random.default_rng(1), 200_000), minlength=5)
    assert counts[4] == 0
    result = stats.chisquare(counts[:4], 200_000 * share[:4])
    assert result.pvalue > 1e-3


def test_histogram_quantiles_are_within_their_resolution():
    values = np.random.default_rng(2).lognormal(0.0, 1.0, 100_000)
    hist = Histogram(256)
    hist.add(values)
    for q in (0.5, 0.95, 0.99):
        assert hist.quantile(q) == pytest.approx(np.quantile(values, q), rel=0.005)
    zeros = Histogram(256)
    zeros.add(np.zeros(10))
    assert zeros.quantile(0.5) == 0.0


def test_memory_does_not_grow_with_queries(paper, optimum):
    def peak(queries: int) -> int:
        tracemalloc.start()
        simulate(paper, optimum, queries=queries, seed=0)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    # both runs have batches longer than a block (2^18 queries): a fourfold longer run
    # must not need more memory, since the blocks bound it, not the run length
    small, large = peak(6_000_000), peak(24_000_000)
    assert large < 1.5 * small  # 4x the queries; memory proportional to them would be 4x


def test_to_dict_has_the_cli_keys(paper, optimum):
    data = simulate(paper, optimum, queries=10_000, seed=0).to_dict()
    for key in (
        "queries",
        "mean_waiting_time",
        "mean_system_time",
        "p95_system_time",
        "p99_system_time",
        "utilization",
        "accuracy",
        "analytic_mean_system_time",
        "tasks",
    ):
        assert key in data
    assert len(data["tasks"]) == 6
    assert {"name", "mean_system_time", "p95_system_time", "accuracy"} <= set(data["tasks"][0])


def test_profile_variance_is_simulated_by_default(paper):
    p, l = _busy(paper)
    varied = p.with_variance((0.8 * p.t0) ** 2)
    assert model.system_time(varied, l) > model.system_time(p, l)
    run = simulate(varied, l, queries=2_000_000, seed=8)
    assert run.analytic_mean_system_time == pytest.approx(model.system_time(varied, l))
    lo, hi = run.mean_system_time_ci
    assert lo <= run.analytic_mean_system_time <= hi
    plain = simulate(p, l, queries=2_000_000, seed=8)
    assert run.mean_system_time > plain.mean_system_time  # the variability really is there


def test_variance_around_a_zero_t0_is_refused(paper, optimum):
    zero = thinkq.Profile.from_arrays(
        names=["x"],
        share=[1],
        A=[0.5],
        b=[0.01],
        D=[0.1],
        t0=[0.0],
        c=[0.01],
        variance=[0.5],
        rate=0.1,
        alpha=30.0,
        max_tokens=100,
    )
    with pytest.raises(ValueError, match="task 'x'"):
        simulate(zero, [10.0], queries=1000)
